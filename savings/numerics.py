"""Student t tail and quantile, and the first-order lag filter, with numpy and the math module.

The fit path needs three functions of scipy: ``stats.t.sf``, ``stats.t.ppf`` and
``signal.lfilter`` for a first-order lag. Importing ``scipy.stats`` costs about 0.8 s and
``scipy.signal`` 0.1–0.3 s of a fresh process, more than the fit itself, so they are computed
here (issue 18: a year of hourly data fits in ≤ 1 s in a fresh process). The unit tests check
them against scipy.

Student t: the two-sided tail is the regularized incomplete beta function,

    P(|T| > t) = I_x(ν/2, 1/2),   x = ν/(ν + t²),

evaluated with its continued fraction (modified Lentz), vectorised over t. The quantile is
found by safeguarded Newton steps on that tail, with the t density as derivative.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

_TINY = 1e-300
_EPS = 1e-16
_MAX_TERMS = 100_000


def _betacf1(a: float, b: float, x: float) -> float:
    """:func:`_betacf` for one x, with Python floats (a few µs a term instead of numpy's ~20)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) >= _TINY else _TINY)
    h = d
    for m in range(1, _MAX_TERMS + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) >= _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) >= _TINY else _TINY
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) >= _TINY else _TINY)
        c = 1.0 + aa / c
        c = c if abs(c) >= _TINY else _TINY
        de = d * c
        h *= de
        if abs(de - 1.0) <= _EPS:
            return h
    raise ArithmeticError("incomplete beta: continued fraction did not converge")  # pragma: no cover


def _betacf(a: float, b: float, x: Array) -> Array:
    """The continued fraction of I_x(a, b) (Numerical Recipes' betacf), elementwise; x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = np.where(np.abs(d) < _TINY, _TINY, d)
    d = 1.0 / d
    if x.size <= 8:
        return np.array([_betacf1(a, b, v) for v in x.tolist()], dtype=np.float64)
    h = d.copy()
    active = np.ones(x.shape, dtype=bool)
    m = 1
    while active.any():
        if m > _MAX_TERMS:  # pragma: no cover - converges in O(√max(a, b)) terms
            raise ArithmeticError("incomplete beta: continued fraction did not converge")
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < _TINY, _TINY, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < _TINY, _TINY, c)
        d = 1.0 / d
        h = np.where(active, h * d * c, h)
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = np.where(np.abs(d) < _TINY, _TINY, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < _TINY, _TINY, c)
        d = 1.0 / d
        de = d * c
        h = np.where(active, h * de, h)
        active &= np.abs(de - 1.0) > _EPS
        m += 1
    return h


def _log_gamma_ratio_half(a: float) -> float:
    """ln Γ(a + ½) − ln Γ(a); for large a by its asymptotic series (the difference of two
    lgamma values near a·ln a would lose ~log10(a·ln a) digits)."""
    if a < 30.0:
        return math.lgamma(a + 0.5) - math.lgamma(a)
    return 0.5 * math.log(a) - 1 / (8 * a) + 1 / (192 * a**3) - 1 / (640 * a**5) + 17 / (14336 * a**7)


def _ibeta_half(a: float, x: Array, one_minus_x: Array, log_x: Array) -> Array:
    """Regularized incomplete beta I_x(a, ½) for x in [0, 1]; ``one_minus_x`` and ``log_x`` are
    1 − x and ln x computed without cancellation by the caller."""
    b = 0.5
    out = np.empty_like(x)
    lbeta = _log_gamma_ratio_half(a) - 0.5 * math.log(math.pi)  # ln 1/B(a, ½)
    zero, one = x <= 0.0, one_minus_x <= 0.0
    inner = ~(zero | one)
    out[zero], out[one] = 0.0, 1.0
    xi, yi = x[inner], one_minus_x[inner]
    with np.errstate(divide="ignore"):
        front = np.exp(lbeta + a * log_x[inner] + b * np.log(yi))
    direct = xi < (a + 1.0) / (a + b + 2.0)
    res = np.empty_like(xi)
    if direct.any():
        res[direct] = front[direct] * _betacf(a, b, xi[direct]) / a
    flip = ~direct
    if flip.any():
        res[flip] = 1.0 - front[flip] * _betacf(b, a, yi[flip]) / b
    out[inner] = res
    return out


def t_two_sided_p(t: npt.ArrayLike, dof: float) -> Array:
    """P(|T| > |t|) for Student's T with ``dof`` degrees of freedom (= 2·scipy.stats.t.sf(|t|, dof)).

    NaN stays NaN; ±inf gives 0."""
    if not dof > 0:
        raise ValueError(f"degrees of freedom must be > 0, not {dof}")
    tt = np.abs(np.asarray(t, dtype=np.float64))
    shape = tt.shape
    tt = tt.reshape(-1)
    out = np.full(tt.shape, np.nan)
    ok = ~np.isnan(tt)
    t2 = tt[ok] ** 2
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        den = dof + t2
        x = np.where(np.isinf(t2), 0.0, dof / den)
        y = np.where(np.isinf(t2), 1.0, t2 / den)
        log_x = -np.log1p(t2 / dof)
    out[ok] = _ibeta_half(dof / 2.0, x, y, log_x)
    return out.reshape(shape)


def t_sf(t: float, dof: float) -> float:
    """P(T > t), one-sided upper tail (= scipy.stats.t.sf)."""
    if not dof > 0:
        raise ValueError(f"degrees of freedom must be > 0, not {dof}")
    if math.isnan(t):
        return math.nan
    t2 = t * t
    if math.isinf(t2):
        p = 0.0
    elif t2 == 0.0:
        p = 1.0
    else:
        a = dof / 2.0
        x, y = dof / (dof + t2), t2 / (dof + t2)
        front = math.exp(
            _log_gamma_ratio_half(a) - 0.5 * math.log(math.pi) - a * math.log1p(t2 / dof) + 0.5 * math.log(y)
        )
        if x < (a + 1.0) / (a + 2.5):
            p = front * _betacf1(a, 0.5, x) / a
        else:
            p = 1.0 - front * _betacf1(0.5, a, y) / 0.5
    p /= 2.0
    return p if t >= 0 else 1.0 - p


def _log_pdf(t: float, dof: float) -> float:
    return (
        _log_gamma_ratio_half(dof / 2.0)
        - 0.5 * math.log(dof * math.pi)
        - (dof + 1.0) / 2.0 * math.log1p(t * t / dof)
    )


def t_ppf(q: float, dof: float) -> float:
    """The quantile of Student's t: the t with P(T ≤ t) = q (= scipy.stats.t.ppf)."""
    if not dof > 0:
        raise ValueError(f"degrees of freedom must be > 0, not {dof}")
    if not 0.0 <= q <= 1.0:
        return math.nan
    if q == 0.5:
        return 0.0
    if q in (0.0, 1.0):
        return math.inf if q == 1.0 else -math.inf
    sign = 1.0 if q > 0.5 else -1.0
    tail = (1.0 - q) if q > 0.5 else q  # P(T > t) wanted, t > 0
    # bracket [lo, hi] with sf(lo) > tail > sf(hi); start from the normal quantile
    lo, hi = 0.0, 1.0
    while t_sf(hi, dof) > tail:
        lo, hi = hi, hi * 2.0
        if hi > 1e300:  # pragma: no cover - tail underflows
            return sign * math.inf
    z = _normal_upper(tail)
    t = min(max(z, lo), hi) if lo < z < hi else (lo + hi) / 2.0
    for _ in range(200):
        f = t_sf(t, dof) - tail
        if f == 0.0:
            break
        if f > 0:
            lo = t
        else:
            hi = t
        step = f / math.exp(_log_pdf(t, dof))  # sf′ = −pdf, Newton: t + f/pdf
        nxt = t + step
        if not lo <= nxt <= hi:
            nxt = (lo + hi) / 2.0
        done = abs(nxt - t) <= 1e-15 * nxt or hi - lo <= 1e-15 * hi
        t = nxt
        if done:
            break
    return sign * t


def _normal_upper(p: float) -> float:
    """A starting point: the standard normal upper quantile (Acklam-free: bisection on erfc)."""
    lo, hi = 0.0, 40.0
    for _ in range(60):
        mid = (lo + hi) / 2.0
        if 0.5 * math.erfc(mid / math.sqrt(2.0)) > p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


def first_order_lag(x: Array, a: float) -> Array:
    """y[n] = a·x[n] + (1 − a)·y[n−1], y[−1] = 0: scipy.signal.lfilter([a], [1, a − 1], x),
    with the same floating-point operations in the same order."""
    a = float(a)
    r = 1.0 - a
    out: list[float] = []
    append = out.append
    y = 0.0
    for v in x.tolist():
        y = a * v + r * y
        append(y)
    return np.array(out, dtype=np.float64)
