"""ASHRAE Guideline 14 statistics, coefficient t-statistics and savings uncertainty.

With n periods, p model parameters (change points included), y the measured and ŷ the
modelled energy, ȳ the mean of y:

    CV(RMSE) = 100·√(Σ(y−ŷ)²/(n−p)) / |ȳ|                   [%]
    NMBE     = 100·Σ(y−ŷ) / ((n−p)·|ȳ|)                       [%]
    R²       = 1 − Σ(y−ŷ)² / Σ(y−ȳ)²
    adj. R²  = 1 − (1−R²)·(n−1)/(n−p)

G14 Annex B's approximation of the fractional savings uncertainty is kept for comparison
(:func:`savings_uncertainty`):

    ΔE/E = t·1.26·CV·√((n/n′)(1 + 2/n′)(1/m)) / F,   n′ = n(1−ρ)/(1+ρ)

The savings uncertainty the engine reports is the exact one of ordinary least squares
(:class:`UncertaintyModel`): the error of the summed reporting-period savings is
gᵀ(β̂ − β) − Σ εᵣ, with g the summed reporting-period design row. Its variance is

    Var = wᵀ Γ w + 1ᵀ Γᵣ 1,   w = X(XᵀX)⁻¹g

where Γ is the residual autocovariance: AR(1) (γₖ = s²ρᵏ) for daily and monthly data; for
hourly data the larger of the empirical autocovariance with Bartlett weights up to two weeks and
an AR(1) of the daily residual sums. The first
term is the model's parameter error, the second the meter's own scatter over the reporting
period. X holds, besides the linear columns, ∂ŷ/∂θ for each searched change point θ
(``FittedModel.variance_design``). The band is k·√Var, two-sided, k the quantile of the
studentized error in a parametric bootstrap (:func:`studentized_quantiles`); n′ ≤ p is refused
(:class:`DegreesOfFreedomError`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from epcwatch.savings.models import Array, Frequency, ModelError
from epcwatch.savings.numerics import t_ppf, t_two_sided_p

#: ASHRAE Guideline 14 calibrated-simulation limits (Option D; CV(RMSE) %, |NMBE| %). Monthly
#: and hourly only; daily data are held to the hourly limits. Reported for reference: they
#: are not the test for a regression baseline.
G14_LIMITS: dict[Frequency, tuple[float, float]] = {
    Frequency.MONTHLY: (15.0, 5.0),
    Frequency.DAILY: (30.0, 10.0),
    Frequency.HOURLY: (30.0, 10.0),
}
#: G14-2014 whole-building regression path (Options B/C) as summarised in the project's
#: reference notes: baseline CV(RMSE) ≤ 20 % with under 12 months of reporting data, ≤ 25 %
#: for 12–60 months, ≤ 30 % beyond; net determination bias 0.005 %. This is the test applied.
G14_REGRESSION_CV = ((12, 20.0), (60, 25.0), (10**9, 30.0))
G14_REGRESSION_BIAS = 0.005
G14_REGRESSION_SOURCE = (
    "ASHRAE Guideline 14-2014 whole-building regression path (Options B/C): baseline CV(RMSE) "
    "≤ 20 % (< 12 reporting months), ≤ 25 % (12–60), ≤ 30 % (> 60); net determination bias "
    "≤ 0.005 %"
)
G14_SIMULATION_SOURCE = (
    "ASHRAE Guideline 14-2014 calibrated simulation (Option D): monthly CV(RMSE) ≤ 15 %, "
    "NMBE ± 5 %; hourly CV(RMSE) ≤ 30 %, NMBE ± 10 % (shown for reference only)"
)
CONFIDENCE_LEVELS = (0.68, 0.80, 0.90)
FSU_FACTOR = 1.26


class DegreesOfFreedomError(ModelError):
    """Too few effective observations for the parameters: n′ ≤ p (after autocorrelation)."""


@dataclass(frozen=True)
class FitStats:
    """Goodness of fit of a model on n periods with p parameters (CV(RMSE), NMBE in %)."""

    n: int
    p: int
    r2: float
    adj_r2: float
    cvrmse: float
    nmbe: float
    rmse: float
    mean: float
    autocorrelation: float
    n_effective: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class G14Verdict:
    frequency: Frequency
    cvrmse_limit: float
    nmbe_limit: float
    cvrmse_pass: bool
    nmbe_pass: bool
    path: str = "regression"
    source: str = G14_REGRESSION_SOURCE

    @property
    def passed(self) -> bool:
        return self.cvrmse_pass and self.nmbe_pass

    def to_dict(self) -> dict[str, Any]:
        return {
            "frequency": self.frequency.value,
            "cvrmse_limit": self.cvrmse_limit,
            "nmbe_limit": self.nmbe_limit,
            "cvrmse_pass": self.cvrmse_pass,
            "nmbe_pass": self.nmbe_pass,
            "pass": self.passed,
            "path": self.path,
            "source": self.source,
        }


@dataclass(frozen=True)
class Coefficient:
    name: str
    value: float
    std_error: float
    t: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lag1_autocorrelation(resid: Array) -> float:
    """ρ = Σ(eₜ−ē)(eₜ₋₁−ē) / Σ(eₜ−ē)² over consecutive residuals."""
    e = np.asarray(resid, dtype=np.float64)
    if len(e) < 3:
        return 0.0
    d = e - e.mean()
    den = float(d @ d)
    if den == 0.0:
        return 0.0
    return float(d[1:] @ d[:-1]) / den


def effective_n(n: int, rho: float) -> float:
    """n′ = n(1−ρ)/(1+ρ); no correction for negative ρ (it would claim more information)."""
    if rho <= 0.0:
        return float(n)
    return n * (1.0 - rho) / (1.0 + rho)


def fit_stats(y: Array, yhat: Array, p: int) -> FitStats:
    """G14 statistics of ``yhat`` against ``y`` (time order matters for ρ only)."""
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n <= p:
        raise ValueError(f"{n} periods cannot support {p} parameters")
    resid = y - yhat
    sse = float(resid @ resid)
    ybar = float(y.mean())
    sst = float(((y - ybar) ** 2).sum())
    # a constant series has SST = 0 up to rounding: R² is then undefined, reported as 0
    r2 = 1.0 - sse / sst if sst > 1e-12 * max(float(y @ y), 1e-300) else 0.0
    adj = 1.0 - (1.0 - r2) * (n - 1) / (n - p)
    rmse = math.sqrt(sse / (n - p))
    scale = abs(ybar)  # |ȳ|: a net-export site has ȳ < 0 and must not get a negative CV
    cv = 100.0 * rmse / scale if scale != 0 else math.inf
    nmbe = 100.0 * float(resid.sum()) / ((n - p) * scale) if scale != 0 else math.inf
    rho = lag1_autocorrelation(resid)
    return FitStats(
        n=n,
        p=p,
        r2=r2,
        adj_r2=adj,
        cvrmse=cv,
        nmbe=nmbe,
        rmse=rmse,
        mean=ybar,
        autocorrelation=rho,
        n_effective=effective_n(n, rho),
    )


def regression_cv_limit(reporting_months: float) -> float:
    """G14 regression-path CV(RMSE) limit for a reporting period of this many months
    (rounded to whole months: a 365-day year is 12 months)."""
    months_whole = round(reporting_months)
    for months, lim in G14_REGRESSION_CV:
        if months_whole < months:
            return lim
    return G14_REGRESSION_CV[-1][1]


def g14_verdict(stats: FitStats, frequency: Frequency, reporting_months: float = 12.0) -> G14Verdict:
    """The regression-path verdict (the test for an Option B/C baseline)."""
    cv_lim = regression_cv_limit(reporting_months)
    return G14Verdict(
        frequency=frequency,
        cvrmse_limit=cv_lim,
        nmbe_limit=G14_REGRESSION_BIAS,
        cvrmse_pass=stats.cvrmse <= cv_lim,
        nmbe_pass=abs(stats.nmbe) <= G14_REGRESSION_BIAS,
    )


def g14_simulation_verdict(stats: FitStats, frequency: Frequency) -> G14Verdict:
    """The calibrated-simulation limits (Option D), for reference."""
    cv_lim, nmbe_lim = G14_LIMITS[frequency]
    return G14Verdict(
        frequency=frequency,
        cvrmse_limit=cv_lim,
        nmbe_limit=nmbe_lim,
        cvrmse_pass=stats.cvrmse <= cv_lim,
        nmbe_pass=abs(stats.nmbe) <= nmbe_lim,
        path="calibrated_simulation",
        source=G14_SIMULATION_SOURCE,
    )


def coefficient_table(
    x: Array, y: Array, beta: Array, names: list[str], p_total: int, *, xtx_pinv: Array | None = None
) -> list[Coefficient]:
    """Standard errors, t-statistics and two-sided p-values of linear coefficients.

    σ² = SSE/(n − p_total), where p_total also counts the change points searched, so the
    coefficients are tested conditional on the change points (as the Inverse Modeling
    Toolkit reports them).
    """
    n = len(y)
    dof = n - p_total
    if dof <= 0:
        raise DegreesOfFreedomError(f"{n} periods cannot support {p_total} parameters")
    resid = y - x @ beta
    s2 = float(resid @ resid) / dof if dof > 0 else math.nan
    cov = (np.linalg.pinv(x.T @ x) if xtx_pinv is None else xtx_pinv) * s2
    se_all = np.sqrt(np.maximum(np.diag(cov), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_all = np.where(
            se_all > 0, beta / np.where(se_all > 0, se_all, 1.0), np.where(beta != 0, np.inf, 0.0)
        )
    p_all = t_two_sided_p(t_all, dof)
    out = []
    for i, name in enumerate(names):
        t = float(t_all[i])
        pv = float(p_all[i]) if math.isfinite(t) else 0.0
        out.append(Coefficient(name=name, value=float(beta[i]), std_error=float(se_all[i]), t=t, p_value=pv))
    return out


def t_quantile(confidence: float, dof: float) -> float:
    """Two-sided Student t quantile (e.g. 1.0 at 68 %, 1.645 at 90 % for large dof).

    Raises :class:`DegreesOfFreedomError` when ``dof`` ≤ 0 (n′ ≤ p): no interval exists."""
    if not dof > 0:
        raise DegreesOfFreedomError(
            f"no degrees of freedom left (n′ − p = {dof:.1f}): too few independent periods for "
            "the model's parameters"
        )
    return t_ppf(0.5 + confidence / 2.0, dof)


def savings_uncertainty(
    *, cvrmse_pct: float, n: int, n_eff: float, p: int, m: int, baseline_total: float, confidence: float
) -> float:
    """Absolute uncertainty of savings over m reporting periods (energy units):
    t·1.26·CV·√((n/n′)(1 + 2/n′)(1/m))·E_baseline. Divide by the savings for ΔE/E."""
    if m <= 0:
        return math.nan
    t = t_quantile(confidence, n_eff - p)
    cv = cvrmse_pct / 100.0
    return t * FSU_FACTOR * cv * math.sqrt((n / n_eff) * (1.0 + 2.0 / n_eff) / m) * abs(baseline_total)


def fractional_savings_uncertainty(
    *, cvrmse_pct: float, n: int, n_eff: float, p: int, m: int, fraction: float, confidence: float
) -> float:
    """ΔE/E = t·1.26·CV·√((n/n′)(1 + 2/n′)(1/m)) / F (infinite when F = 0)."""
    if fraction == 0:
        return math.inf
    u = savings_uncertainty(
        cvrmse_pct=cvrmse_pct, n=n, n_eff=n_eff, p=p, m=m, baseline_total=1.0, confidence=confidence
    )
    return u / abs(fraction)


#: hourly residuals: empirical autocovariance with Bartlett weights up to two weeks of lags
HAC_LAGS_HOURLY = 336
AR1_MAX = 0.99

UNCERTAINTY_METHOD = {
    "ar1": (
        "Exact least-squares prediction variance of the summed reporting-period baseline, with "
        "the baseline residuals treated as an AR(1) series (lag-1 autocorrelation ρ, small-sample "
        "corrected): it counts the error of the fitted coefficients and change points and the "
        "meter's own day-to-day scatter over the reporting period, both widened for "
        "autocorrelation. The band's width at each level comes from a bootstrap that repeats "
        "the estimate on simulated years, so the 68 % and 90 % bands hold their coverage."
    ),
    "hac": (
        "Exact least-squares prediction variance of the summed reporting-period baseline, with "
        "the residual autocorrelation measured directly up to two weeks of lags (Bartlett "
        "weights) and, where larger, the day-to-day persistence of daily residual sums (AR(1)): "
        "it counts the error of the fitted coefficients and the meter's own scatter over the "
        "reporting period, both widened for autocorrelation. The band's width at each level comes "
        "from a bootstrap that repeats the estimate on simulated years."
    ),
}
UNCERTAINTY_SCOPE = (
    "Covered: the random error of the baseline model's coefficients and change points and of "
    "the meter's scatter around the model, with autocorrelation. Not covered: a wrong model "
    "form, changes in the building not captured by the model or the adjustments (non-routine "
    "events), weather outside "
    "the baseline's temperature range, meter calibration error, and the choice among candidate "
    "models."
)


@dataclass(frozen=True)
class Segment:
    """One model of a segmented fit (month-segmented TOWT): its window's ``rows`` (indices into
    the baseline), their least-squares ``weights``, their design ``x``, (XᵀWX)⁺ ``pinv``, the
    rows of the segment's own month (``own``, predicted by it) and the first column of its
    coefficients in the stacked summed design."""

    rows: Any
    weights: Array
    x: Array
    pinv: Array
    own: Any
    offset: int


@dataclass(frozen=True)
class UncertaintyModel:
    """What the savings uncertainty needs from a baseline fit.

    ``x`` the baseline design (n × q, time order), ``xtx_pinv`` (XᵀX)⁺, ``gamma`` the residual
    autocovariances γ₀…γ_K (kernel weights applied, energy units²), ``method`` ``ar1`` or
    ``hac``. For hourly data ``gamma_block`` is the AR(1) autocovariance of the residuals summed
    over blocks of ``block`` (24) consecutive hours: day-to-day persistence that the two-week
    Bartlett window would truncate; each variance is the larger of the two estimates.
    ``n_effective`` is G14's n′ = n(1−ρ)/(1+ρ) with ρ the lag-1 autocorrelation, used for the
    degrees of freedom and the n′ ≤ p refusal.
    """

    x: Array
    xtx_pinv: Array
    gamma: Array
    n: int
    p: int
    rho: float
    method: str
    block: int = 1
    gamma_block: Array | None = None
    #: segmented fits (month-segmented TOWT): the error of gᵀβ̂ is wᵀε with
    #: w = Σₘ WₘXₘ(XₘᵀWₘXₘ)⁺gₘ; ``x``/``xtx_pinv`` are then unused
    segments: tuple[Segment, ...] | None = None
    _cache: dict[tuple[float, int, bool, bytes], dict[float, float]] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    @property
    def n_effective(self) -> float:
        return effective_n(self.n, self.rho)

    @property
    def dof(self) -> float:
        return self.n_effective - self.p

    @staticmethod
    def _quad(w: Array, gamma: Array) -> Array:
        v = gamma[0] * np.einsum("nj,nj->j", w, w)
        for k in range(1, min(len(gamma), len(w))):
            v = v + 2.0 * gamma[k] * np.einsum("nj,nj->j", w[:-k], w[k:])
        return np.asarray(v, dtype=np.float64)

    @staticmethod
    def _sum_var(m: float, gamma: Array) -> float:
        if m <= 0:
            return 0.0
        k = np.arange(1, min(len(gamma), math.ceil(m)))
        return float(m * gamma[0] + 2.0 * ((m - k) * gamma[k]).sum())

    def var_param_many(self, g: Array) -> Array:
        """Variance of gⱼᵀ(β̂ − β) for each column gⱼ of ``g`` (q × J)."""
        w = self.weights(g)  # n × J
        v = self._quad(w, self.gamma)
        if self.gamma_block is not None and self.block > 1:
            nb = len(w) // self.block
            # Σₜ wₜεₜ ≈ Σ_d w̄_d·D_d with D_d the block sum of the errors: block means of w
            wb = w[: nb * self.block].reshape(nb, self.block, -1).mean(axis=1)
            v = np.maximum(v, self._quad(wb, self.gamma_block))
        return np.asarray(np.maximum(v, 0.0), dtype=np.float64)

    def weights(self, g: Array) -> Array:
        """w (n × J) with gⱼᵀ(β̂ − β) = wⱼᵀε: X(XᵀX)⁺g, or the sum over segments."""
        if self.segments is None:
            return np.asarray(self.x @ (self.xtx_pinv @ g), dtype=np.float64)
        out = np.zeros((self.n, g.shape[1]))
        for s in self.segments:
            q = s.x.shape[1]
            out[s.rows] += s.weights[:, None] * (s.x @ (s.pinv @ g[s.offset : s.offset + q]))
        return out

    def block_operators(self, g: Array, block: int) -> tuple[Array, Array]:
        """(wb, hat) of :func:`studentized_quantiles`: the block means of w and the map from
        the blocks' summed errors to the blocks' summed fitted errors."""
        if self.segments is None:
            return block_operators(self.x, self.xtx_pinv, g, block)
        nb = self.n // block
        w = self.weights(np.asarray(g, dtype=np.float64).reshape(-1, 1))[:, 0]
        wb = w[: nb * block].reshape(nb, block).mean(axis=1) if block > 1 else w
        hat = np.zeros((nb, nb))
        for s in self.segments:
            blk = np.asarray(s.rows) // block
            keep = blk < nb
            q = s.x.shape[1]
            own = np.asarray(s.own) & keep
            psum = np.zeros((nb, q))
            np.add.at(psum, blk[own], s.x[own])
            emean = np.zeros((nb, q))
            np.add.at(emean, blk[keep], s.x[keep] * s.weights[keep, None] / block)
            hat += (psum @ s.pinv) @ emean.T
        return np.asarray(wb, dtype=np.float64), hat

    def var_noise(self, m: float) -> float:
        """Variance of the sum of m consecutive residuals: Σ_{|k|<m} (m − |k|)·γₖ."""
        v = self._sum_var(m, self.gamma)
        if self.gamma_block is not None and self.block > 1:
            v = max(v, self._sum_var(m / self.block, self.gamma_block))
        return v

    def standard_error(self, g: Array, m: float) -> float:
        """Standard error of the summed savings over m reporting periods with summed design g."""
        vp = float(self.var_param_many(np.asarray(g, dtype=np.float64).reshape(-1, 1))[0])
        return math.sqrt(vp + self.var_noise(m))

    def multipliers(self, g: Array, m: float, *, noise: bool = True) -> dict[float, float]:
        """Two-sided multipliers k of the standard error at each of :data:`CONFIDENCE_LEVELS`:
        the quantiles of |error| / estimated SE in a parametric bootstrap (see
        :func:`studentized_quantiles`), so the band holds its coverage at every level. Refuses
        n′ ≤ p. ``noise=False``: the parameter error alone (normalised savings)."""
        if not self.dof > 0:
            t_quantile(0.9, self.dof)  # raises DegreesOfFreedomError
        gb = self.gamma_block if self.gamma_block is not None and self.block > 1 else None
        gam = gb if gb is not None else self.gamma
        rho0 = float(gam[1] / gam[0]) if len(gam) > 1 and gam[0] > 0 else 0.0
        block = self.block if gb is not None else 1
        key = (rho0, round(m), noise, np.asarray(g, dtype=np.float64).tobytes())
        cached = self._cache.get(key)
        if cached is None:
            wb, hat = self.block_operators(np.asarray(g, dtype=np.float64), block)
            cached = bootstrap_quantiles(
                wb,
                hat,
                m if noise else 0.0,
                rho=rho0,
                block=block,
                scale=self.n / (self.n - self.p),
            )
            self._cache[key] = cached
        return cached

    def multiplier(self, g: Array, m: float, confidence: float, *, noise: bool = True) -> float:
        return self.multipliers(g, m, noise=noise)[confidence]

    def half_width(self, g: Array, m: float, confidence: float) -> float:
        """Two-sided interval half-width at ``confidence`` (refuses n′ ≤ p)."""
        return self.multiplier(g, m, confidence) * self.standard_error(g, m)


#: parametric bootstrap of the studentized savings error: replicates and a fixed seed (the
#: same data give the same band)
BOOTSTRAP_REPLICATES = 1000
BOOTSTRAP_SEED = 14_2026


def _ar1_rho_corrected(r: Array) -> Array:
    """Row-wise lag-1 autocorrelation with the small-sample correction of :func:`_ar1_gamma`."""
    d = r - r.mean(axis=1, keepdims=True)
    den = np.einsum("bn,bn->b", d, d)
    raw = np.einsum("bn,bn->b", d[:, 1:], d[:, :-1]) / np.where(den > 0, den, 1.0)
    n = r.shape[1]
    return np.asarray(np.where(raw <= 0, 0.0, np.minimum(AR1_MAX, raw + (1.0 + 3.0 * raw) / n)))


def _ar1_quad(w: Array, rho: Array) -> Array:
    """Σₜ Σₛ wₜ wₛ ρ^|t−s| for each ρ (unit marginal variance), by one forward recursion."""
    f = np.zeros_like(rho)
    acc = np.zeros_like(rho)
    for wt in w:
        f = rho * f + wt
        acc += wt * f
    return np.asarray(2.0 * acc - float(w @ w))


def _ar1_sum_var(m: int, rho: Array) -> Array:
    """Variance of the sum of m consecutive AR(1) values of unit variance."""
    if m <= 0:
        return np.zeros_like(rho)
    one = 1.0 - rho
    return np.asarray(m * (1.0 + rho) / one - 2.0 * rho * (1.0 - rho**m) / one**2)


def _ndtr(x: Array) -> Array:
    """Standard normal CDF (Abramowitz & Stegun 7.1.26 for erf, |error| < 1.5e-7): numpy only,
    so a fit does not load scipy."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-z * z)
    return np.asarray(0.5 * (1.0 + np.sign(x) * erf))


def block_operators(x: Array, xtx_pinv: Array, g: Array, block: int) -> tuple[Array, Array]:
    """For ordinary least squares: the block means of w = X(XᵀX)⁺g and the map from the
    blocks' summed errors to the blocks' summed fitted errors."""
    nb = len(x) // block
    xb = x[: nb * block].reshape(nb, block, -1).mean(axis=1) if block > 1 else x
    wb = xb @ (xtx_pinv @ g)  # error of gᵀβ̂ ≈ Σ_d wb_d·D_d
    hat = block * (xb @ xtx_pinv @ xb.T)  # block sums of the fitted errors ≈ hat @ D
    return np.asarray(wb, dtype=np.float64), np.asarray(hat, dtype=np.float64)


def studentized_quantiles(
    x: Array, xtx_pinv: Array, g: Array, m: float, *, rho: float, block: int = 1, scale: float = 1.0
) -> dict[float, float]:
    """:func:`bootstrap_quantiles` of an ordinary least-squares fit with design ``x``."""
    wb, hat = block_operators(x, xtx_pinv, g, block)
    return bootstrap_quantiles(wb, hat, m, rho=rho, block=block, scale=scale)


def bootstrap_quantiles(
    wb: Array, hat: Array, m: float, *, rho: float, block: int = 1, scale: float = 1.0
) -> dict[float, float]:
    """Quantiles of |savings error| / estimated standard error, by a parametric bootstrap.

    The baseline errors are simulated as the fitted AR(1) (of the periods, or for hourly data
    of the residual sums over ``block`` hours), followed by m reporting periods; each replicate
    projects its errors onto the design's residual space, re-estimates ρ (with the same
    small-sample correction) and the variance, and forms the standard error the engine would
    state. Given a replicate's residuals the savings error is Gaussian with a known mean and
    variance, so each replicate contributes its exact probability of |error| ≤ k·SE (a
    Rao–Blackwellised bootstrap: far less Monte Carlo noise than counting). The k at which
    the mean probability reaches each confidence level is the band's multiplier:
    it replaces Student's t, whose tails fit neither the downward bias of an estimated ρ nor
    its scatter, so the stated coverage holds at 68 % as well as at 90 %.

    ``wb`` weighs the blocks' summed baseline errors into the error of gᵀβ̂; ``hat`` maps them
    to the blocks' summed fitted errors (see :func:`block_operators`)."""
    nb = len(wb)
    mb = round(m / block)
    total = nb + mb
    lag = np.abs(np.subtract.outer(np.arange(total), np.arange(total)))
    sigma = rho**lag if rho > 0 else np.eye(total)
    a = np.concatenate([wb, -np.ones(mb)])  # error = aᵀD
    resid_op = np.eye(nb) - hat  # residuals = resid_op @ D_baseline
    # the error given the residuals is Gaussian: mean βᵀ·resid, variance v_cond (exact)
    c = resid_op @ (sigma[:nb] @ a)
    cov_r = resid_op @ sigma[:nb, :nb] @ resid_op.T
    beta = np.linalg.pinv(cov_r, hermitian=True, rcond=1e-10) @ c
    v_cond = max(float(a @ sigma @ a - c @ beta), 1e-12 * float(a @ sigma @ a))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    z = rng.standard_normal((nb, BOOTSTRAP_REPLICATES))
    d = np.empty_like(z)
    d[0] = z[0]
    innov = math.sqrt(max(1.0 - rho * rho, 0.0))
    for t in range(1, nb):
        d[t] = rho * d[t - 1] + innov * z[t]
    resid = (resid_op @ d).T  # replicates × nb
    mu = resid @ beta
    v = np.einsum("bn,bn->b", resid, resid) / nb * scale
    rho_hat = _ar1_rho_corrected(resid)
    se = np.sqrt(np.maximum(v * (_ar1_quad(wb, rho_hat) + _ar1_sum_var(mb, rho_hat)), 1e-300))
    sd = math.sqrt(v_cond)

    def coverage(k: float) -> float:
        return float(np.mean(_ndtr((k * se - mu) / sd) - _ndtr((-k * se - mu) / sd)))

    out = {}
    for conf in CONFIDENCE_LEVELS:
        lo, hi = 0.0, 1.0
        while coverage(hi) < conf and hi < 1e3:
            hi *= 2.0
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if coverage(mid) < conf else (lo, mid)
        out[conf] = hi
    return out


def _ar1_gamma(e: Array, s2: float) -> Array:
    """AR(1) autocovariances s²·ρᵏ of a series, ρ its lag-1 autocorrelation with Kendall's
    small-sample bias correction (0 when negative), down to 1e-8."""
    n = len(e)
    r = lag1_autocorrelation(e)
    rho = 0.0 if r <= 0 else min(AR1_MAX, r + (1.0 + 3.0 * r) / n)
    if rho <= 0:
        return np.array([s2])
    k_max = min(n - 1, math.ceil(math.log(1e-8) / math.log(rho)))
    return np.asarray(s2 * rho ** np.arange(k_max + 1, dtype=np.float64), dtype=np.float64)


def uncertainty_model(
    x: Array, resid: Array, p: int, frequency: Frequency, xtx_pinv: Array | None = None
) -> UncertaintyModel:
    """Build the :class:`UncertaintyModel` of a fit from its design and residuals.

    Raises :class:`DegreesOfFreedomError` when n′ ≤ p."""
    e = np.asarray(resid, dtype=np.float64)
    n = len(e)
    if n <= p:
        raise DegreesOfFreedomError(f"{n} periods cannot support {p} parameters")
    s2 = float(e @ e) / (n - p)
    if xtx_pinv is None:
        xtx_pinv = np.asarray(np.linalg.pinv(x.T @ x, hermitian=True), dtype=np.float64)
    if frequency == Frequency.HOURLY:
        d = e - e.mean()
        lags = min(HAC_LAGS_HOURLY, n - 1)
        nfft = 1 << math.ceil(math.log2(2 * n))
        f = np.fft.rfft(d, nfft)
        acov = np.fft.irfft(f * np.conj(f), nfft)[: lags + 1] / n
        weights = 1.0 - np.arange(lags + 1) / (lags + 1.0)
        gamma = acov * weights * (s2 / acov[0] if acov[0] > 0 else 0.0)
        rho = max(0.0, float(acov[1] / acov[0])) if acov[0] > 0 and lags >= 1 else 0.0
        nb = n // 24
        gb = None
        if nb >= 10:
            sums = e[: nb * 24].reshape(nb, 24).sum(axis=1)
            gb = _ar1_gamma(sums, float(sums @ sums) / nb * n / (n - p))
        um = UncertaintyModel(x, xtx_pinv, np.asarray(gamma), n, p, rho, "hac", 24, gb)
    else:
        gamma = _ar1_gamma(e, s2)
        rho = float(gamma[1] / gamma[0]) if len(gamma) > 1 and gamma[0] > 0 else 0.0
        um = UncertaintyModel(x, xtx_pinv, gamma, n, p, rho, "ar1")
    if um.n_effective <= p:
        raise DegreesOfFreedomError(
            f"only {um.n_effective:.1f} effective periods (n = {n}, autocorrelation {rho:.2f}) "
            f"for {p} parameters: n′ ≤ p, no savings uncertainty can be stated"
        )
    return um
