"""Change-point models of ASHRAE's Inverse Modeling Toolkit on daily or monthly data.

With T the period's mean outdoor temperature and (x)+ = max(x, 0), energy per day is

    mean   β0
    2P     β0 + β1·T
    3PC    β0 + βc·(T − Tc)+                      (cooling)
    3PH    β0 + βh·(Th − T)+                      (heating)
    4P     β0 + βh·(Tcp − T)+ + βc·(T − Tcp)+     (one change point, two slopes)
    5P     β0 + βh·(Th − T)+ + βc·(T − Tc)+        Th ≤ Tc

optionally plus a shift on non-working days, and optionally (``split``) separate slopes on
non-working days (an office's cooling on a Sunday is not a weekday's). The temperature is the
day's mean, or (``feature: lag1d``) the daily means through a first-order lag of one day, for
buildings whose mass delays their response. Change points are found by an exhaustive grid
search (0.5 °C) refined twice around the best point (0.05 °C, then 0.01 °C for 5P's pairs),
each candidate solved by least squares; every segment keeps at least 5 % of the periods (and
at least 3) strictly on its side, so a change point never sits on a handful of extreme days.
Slope signs are constrained inside the search: a candidate whose heating or cooling slope is
negative (or a 4P curve that is not convex) is not a candidate. A temperature spread below
``MIN_TEMP_SPREAD`` (or a rank-deficient design) refuses every model with a slope: least
squares would otherwise report a meaningless slope with a huge t-statistic.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from epcwatch.savings.models import Array, FittedModel, ModelError, Observations

TYPES = ("mean", "2p", "3pc", "3ph", "4p", "5p")
#: standard deviation of the periods' temperatures below which no slope is fitted (°C)
MIN_TEMP_SPREAD = 0.5

NONLINEAR = {
    "mean": (),
    "2p": (),
    "3pc": ("cooling_change_point",),
    "3ph": ("heating_change_point",),
    "4p": ("change_point",),
    "5p": ("heating_change_point", "cooling_change_point"),
}


def _pos(x: Array) -> Array:
    return np.maximum(x, 0.0)


def columns(kind: str, temp: Array, cps: tuple[float, ...]) -> tuple[list[Array], list[str]]:
    """Per-day regressors of ``kind`` for change points ``cps`` (no day-type, no period length)."""
    one = np.ones_like(temp)
    if kind == "mean":
        return [one], ["intercept"]
    if kind == "2p":
        return [one, temp], ["intercept", "slope"]
    if kind == "3pc":
        return [one, _pos(temp - cps[0])], ["intercept", "cooling_slope"]
    if kind == "3ph":
        return [one, _pos(cps[0] - temp)], ["intercept", "heating_slope"]
    if kind == "4p":
        return (
            [one, _pos(cps[0] - temp), _pos(temp - cps[0])],
            ["intercept", "heating_slope", "cooling_slope"],
        )
    if kind == "5p":
        return (
            [one, _pos(cps[0] - temp), _pos(temp - cps[1])],
            ["intercept", "heating_slope", "cooling_slope"],
        )
    raise ModelError(f"unknown change-point model {kind!r}")


def temperature(obs: Observations, extra: dict[str, Any] | None) -> Array:
    """The temperature a daily model responds to: the day's mean or its lagged version."""
    if extra and extra.get("feature") == "lag1d":
        if obs.lagged.shape[1] < 1:
            raise ModelError("lagged daily temperature unavailable for these periods")
        return np.asarray(obs.lagged[:, 0], dtype=np.float64)
    return obs.temp


def design(
    kind: str,
    obs: Observations,
    nonlinear: dict[str, float],
    day_type: bool,
    extra: dict[str, Any] | None = None,
) -> tuple[Array, list[str]]:
    """Design matrix for period totals: per-day regressors times the period length."""
    cps = tuple(nonlinear[k] for k in NONLINEAR[kind])
    cols, names = columns(kind, temperature(obs, extra), cps)
    if extra and extra.get("split"):
        for c, nm in list(zip(cols[1:], names[1:], strict=True)):
            cols.append(c * obs.nonworking)
            names.append(f"nonworking_{nm}")
    if day_type:
        cols.append(obs.nonworking)
        names.append("nonworking_shift")
    for v in (extra or {}).get("variables", []):
        if v not in obs.extra_names:
            raise ModelError(f"the model needs the independent variable {v!r}, which these data lack")
        cols.append(obs.extra[:, obs.extra_names.index(v)])
        names.append(f"variable_{v}")
    x = np.column_stack(cols) * obs.days[:, None]
    return np.asarray(x, dtype=np.float64), names


def _batched_sse(xs: Array, y: Array) -> tuple[Array, Array]:
    """Least squares for a stack of design matrices ``xs`` (K, n, q): (SSE (K,), β (K, q))."""
    xt = np.swapaxes(xs, 1, 2)
    xtx = xt @ xs
    xty = (xt @ y)[..., None]
    try:
        beta = np.linalg.solve(xtx, xty)[..., 0]
    except np.linalg.LinAlgError:
        beta = (np.linalg.pinv(xtx) @ xty)[..., 0]
    resid = y[None, :] - (xs @ beta[..., None])[..., 0]
    return np.asarray(np.einsum("kn,kn->k", resid, resid)), np.asarray(beta)


def search_bounds(temp: Array) -> tuple[float, float]:
    """Range a change point may take: ≥ 5 % of periods (≥ 3) lie strictly on each side."""
    t = np.sort(temp)
    k = max(3, math.ceil(0.05 * len(t)))
    if len(t) < 2 * k + 2:
        raise ModelError(f"too few periods ({len(t)}) to place a change point")
    return float(t[k]), float(t[len(t) - k - 1])


def check_identifiable(x: Array, temp: Array, has_slope: bool) -> None:
    """Refuse a design whose columns are (near) linearly dependent, or a slope on a
    temperature that hardly varies."""
    if has_slope and float(np.std(temp)) < MIN_TEMP_SPREAD:
        raise ModelError(
            f"outdoor temperature hardly varies (standard deviation {float(np.std(temp)):.2f} °C "
            f"< {MIN_TEMP_SPREAD} °C): no temperature slope can be estimated"
        )
    norms = np.linalg.norm(x, axis=0)
    if np.any(norms == 0):
        raise ModelError("the design has an all-zero column: a coefficient cannot be estimated")
    sv = np.linalg.svd(x / norms, compute_uv=False)
    if sv[-1] < 1e-8 * sv[0]:
        raise ModelError("the design is singular (a coefficient cannot be separated from the others)")


def _sign_ok(kind: str, beta: Array) -> Array:
    """Candidates whose slope signs are physical (columns 1 and 2 of the design)."""
    if kind in ("3pc", "3ph"):
        return np.asarray(beta[:, 1] >= 0)
    if kind == "5p":
        return np.asarray((beta[:, 1] >= 0) & (beta[:, 2] >= 0))
    if kind == "4p":
        return np.asarray(beta[:, 1] + beta[:, 2] > 0)
    return np.ones(len(beta), dtype=bool)


def _grid(lo: float, hi: float, step: float) -> Array:
    n = max(1, round((hi - lo) / step))
    return np.asarray(np.linspace(lo, hi, n + 1), dtype=np.float64)


class _Hinges:
    """Least squares for many change points at once, from sums over the sorted temperatures.

    A candidate's design is ``design()``'s: the intercept, one hinge column per change point
    (``(c − T)+`` heating, ``(T − c)+`` cooling), the hinges times the non-working share
    (``split``), the non-working shift and the named variables, each times the period length.
    Every entry of XᵀX and Xᵀy is a sum over the periods on one side of a change point of a
    weight times a power of (T − c), so prefix sums over the periods sorted by temperature give
    each candidate's normal equations without building its design: O(K) for K candidates,
    not O(K·n·q²). The heating and cooling hinges of 4P and 5P (c_h ≤ c_c) are never both
    non-zero on one period, so their cross products vanish.
    """

    def __init__(
        self,
        *,
        kind: str,
        temp: Array,
        obs: Observations,
        y: Array,
        split: bool,
        day_type: bool,
        variables: list[str],
    ) -> None:
        order = np.argsort(temp, kind="stable")
        t = np.asarray(temp[order], dtype=np.float64)
        days, nw, ys = obs.days[order], obs.nonworking[order], y[order]
        n = len(t)
        fixed = [np.ones(n)]  # columns with no hinge: intercept, shift, variables
        n_hinge = 1 if kind in ("3pc", "3ph") else 2
        mods = [np.ones(n), nw]
        hcols = [(h, 0) for h in range(n_hinge)] + ([(h, 1) for h in range(n_hinge)] if split else [])
        fixed_pos = [0]
        if day_type:
            fixed.append(nw)
        fixed += [obs.extra[order, obs.extra_names.index(v)] for v in variables]
        fixed_pos += list(range(1 + len(hcols), 1 + len(hcols) + len(fixed) - 1))
        self.q = 1 + len(hcols) + len(fixed) - 1
        self.t = t
        #: per hinge: is it a heating hinge, which candidate column holds its change point
        self.hinges = [
            (kind == "3ph" or (kind in ("4p", "5p") and h == 0), h if kind == "5p" else 0)
            for h in range(n_hinge)
        ]
        w = days * days  # XᵀX weights; Xᵀy's are the period lengths
        self.const = np.zeros((self.q, self.q))
        self.const_y = np.zeros(self.q)
        for i, (pa, fa) in enumerate(zip(fixed_pos, fixed, strict=True)):
            self.const_y[pa] = float(np.sum(days * fa * ys))
            for pb, fb in zip(fixed_pos[i:], fixed[i:], strict=True):
                self.const[pa, pb] = self.const[pb, pa] = float(np.sum(w * fa * fb))
        # (row, column, hinge, prefix sums of g·T^k for k ≤ the power); column -1 is Xᵀy
        self.terms: list[tuple[int, int, int, list[Array]]] = []
        for i, (h, m) in enumerate(hcols):
            pi = 1 + i
            for pa, fa in zip(fixed_pos, fixed, strict=True):
                self.terms.append((pi, pa, h, self._prefix(w * mods[m] * fa, 1)))
            self.terms.append((pi, -1, h, self._prefix(days * mods[m] * ys, 1)))
            for j, (h2, m2) in enumerate(hcols[i:], start=i):
                if h2 == h:  # opposite hinges never overlap: their entries stay zero
                    self.terms.append((pi, 1 + j, h, self._prefix(w * mods[m] * mods[m2], 2)))
        self.yy = float(ys @ ys)

    def _prefix(self, g: Array, power: int) -> list[Array]:
        return [np.concatenate(([0.0], np.cumsum(g * self.t**k))) for k in range(power + 1)]

    @staticmethod
    def _side(
        cums: list[Array], below: NDArray[np.intp], above: NDArray[np.intp], c: Array, heating: bool
    ) -> Array:
        """Σ g·(c − T)^p over T < c (heating) or Σ g·(T − c)^p over T > c (cooling)."""
        if heating:
            s = [cum[below] for cum in cums]  # Σ over T < c of g·T^k
            if len(s) == 2:
                return np.asarray(c * s[0] - s[1])
            return np.asarray(c * c * s[0] - 2 * c * s[1] + s[2])
        s = [cum[-1] - cum[above] for cum in cums]  # Σ over T > c of g·T^k
        if len(s) == 2:
            return np.asarray(s[1] - c * s[0])
        return np.asarray(s[2] - 2 * c * s[1] + c * c * s[0])

    def sse(self, cands: Array) -> tuple[Array, Array]:
        """(SSE (K,), β (K, q)) of every candidate's least-squares fit."""
        k = len(cands)
        xtx = np.broadcast_to(self.const, (k, self.q, self.q)).copy()
        xty = np.broadcast_to(self.const_y, (k, self.q)).copy()
        sides = []
        for heating, col in self.hinges:
            c = cands[:, col]
            sides.append(
                (
                    c,
                    np.searchsorted(self.t, c, side="left"),
                    np.searchsorted(self.t, c, side="right"),
                    heating,
                )
            )
        for row, column, h, cums in self.terms:
            c, below, above, heating = sides[h]
            v = self._side(cums, below, above, c, heating)
            if column < 0:
                xty[:, row] = v
            else:
                xtx[:, row, column] = v
                xtx[:, column, row] = v
        try:
            beta = np.linalg.solve(xtx, xty[..., None])[..., 0]
        except np.linalg.LinAlgError:
            beta = (np.linalg.pinv(xtx) @ xty[..., None])[..., 0]
        # SSE = yᵀy − 2βᵀXᵀy + βᵀXᵀXβ (exact at any β, not only at the solution)
        sse = self.yy - 2 * np.einsum("ki,ki->k", beta, xty) + np.einsum("ki,kij,kj->k", beta, xtx, beta)
        return np.asarray(np.maximum(sse, 0.0)), np.asarray(beta)


def fit(
    kind: str, obs: Observations, day_type: bool = False, extra: dict[str, Any] | None = None
) -> tuple[FittedModel, float]:
    """Least-squares fit of ``kind`` to valid observations; returns the model and its SSE."""
    if kind not in TYPES:
        raise ModelError(f"unknown change-point model {kind!r}")
    if extra and extra.get("split") and not day_type:
        raise ModelError("separate non-working-day slopes need the non-working-day shift too")
    extra = dict(extra or {})
    y = obs.energy
    names_nl = NONLINEAR[kind]
    temp = temperature(obs, extra)

    split = bool(extra.get("split"))
    variables = list(extra.get("variables", []))
    hinges = (
        _Hinges(kind=kind, temp=temp, obs=obs, y=y, split=split, day_type=day_type, variables=variables)
        if names_nl
        else None
    )

    def best(cands: list[tuple[float, ...]]) -> tuple[tuple[float, ...], float]:
        assert hinges is not None
        sse, beta = hinges.sse(np.asarray(cands, dtype=np.float64))
        ok = _sign_ok(kind, beta)
        if not ok.any():
            raise ModelError(f"{kind}: no change point gives physically signed slopes")
        sse = np.where(ok, sse, np.inf)
        i = int(np.argmin(sse))
        return cands[i], float(sse[i])

    if not names_nl:
        chosen: tuple[float, ...] = ()
    else:
        lo, hi = search_bounds(temp)
        if len(names_nl) == 1:
            chosen, _ = best([(c,) for c in _grid(lo, hi, 0.5)])
            for step, half in ((0.05, 0.5), (0.01, 0.05)):
                c0 = chosen[0]
                chosen, _ = best([(c,) for c in _grid(max(lo, c0 - half), min(hi, c0 + half), step)])
        else:
            g = _grid(lo, hi, 0.5)
            chosen, _ = best([(a, b) for a in g for b in g if a <= b])
            for step, half in ((0.1, 0.5), (0.01, 0.1)):
                ga = _grid(max(lo, chosen[0] - half), min(hi, chosen[0] + half), step)
                gb = _grid(max(lo, chosen[1] - half), min(hi, chosen[1] + half), step)
                chosen, _ = best([(a, b) for a in ga for b in gb if a <= b])
    nonlinear = dict(zip(names_nl, chosen, strict=True))
    x, names = design(kind, obs, nonlinear, day_type, extra)
    check_identifiable(x, temp, kind != "mean")
    sse, beta = _batched_sse(x[None, ...], y)
    model = FittedModel(
        type=kind,
        frequency=obs.frequency,
        coefficients={n: float(b) for n, b in zip(names, beta[0], strict=True)},
        nonlinear={k: float(v) for k, v in nonlinear.items()},
        day_type=day_type,
        extra=extra,
    )
    return model, float(sse[0])
