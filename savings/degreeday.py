"""HDD/CDD degree-day regression with balance-point search, as in CalTRACK.

Energy per day = β0 + βH·HDD(Th) + βC·CDD(Tc) (optionally plus a non-working-day shift), where
HDD and CDD are the average daily degree days of the period computed from *daily* mean
temperatures (so monthly bills use the days inside the month, not the month's mean).

Candidates: intercept only, HDD only, CDD only and HDD + CDD, with balance points every 0.5 °C
from −1 °C to 32 °C (CalTRACK's 30–90 °F). A balance point needs ≥ 10 days with non-zero degree
days and ≥ 11.1 °C·days (20 °F·days) in total, counted over days. A candidate qualifies when
its slopes are positive with p < 0.10; the qualified candidate with the highest adjusted R² wins.

Periods longer than a day without their daily temperatures (monthly bills with only the month's
mean) are refused: degree days from a monthly mean are not degree days.
"""

from __future__ import annotations

import numpy as np

from epcwatch.savings.models import Array, FittedModel, Frequency, ModelError, Observations
from epcwatch.savings.numerics import t_two_sided_p

BALANCE_POINTS = np.round(np.arange(-1.0, 32.0001, 0.5), 2)
MIN_DD_DAYS = 10
MIN_DD_TOTAL = 20.0 / 1.8
P_MAX = 0.10


def _degree_days(obs: Observations, bp: float, heating: bool) -> Array:
    d = obs.day_temps
    if d.shape[1] == 1:  # one temperature per period (daily data): no averaging needed
        t = d[:, 0]
        return np.asarray(np.maximum(bp - t, 0.0) if heating else np.maximum(t - bp, 0.0), dtype=np.float64)
    dd = np.maximum(bp - d, 0.0) if heating else np.maximum(d - bp, 0.0)
    with np.errstate(invalid="ignore"):
        out = np.nanmean(np.where(np.isfinite(d), dd, np.nan), axis=1)
    return np.asarray(out, dtype=np.float64)


def design(obs: Observations, nonlinear: dict[str, float], day_type: bool) -> tuple[Array, list[str]]:
    cols = [np.ones(len(obs))]
    names = ["intercept"]
    if "heating_balance_point" in nonlinear:
        cols.append(_degree_days(obs, nonlinear["heating_balance_point"], heating=True))
        names.append("hdd_slope")
    if "cooling_balance_point" in nonlinear:
        cols.append(_degree_days(obs, nonlinear["cooling_balance_point"], heating=False))
        names.append("cdd_slope")
    if day_type:
        cols.append(obs.nonworking)
        names.append("nonworking_shift")
    x = np.column_stack(cols) * obs.days[:, None]
    return np.asarray(x, dtype=np.float64), names


def _designs(
    obs: Observations, group: list[dict[str, float]], day_type: bool, columns: dict[str, dict[float, Array]]
) -> Array:
    """``design`` of every candidate of one shape at once (K × n × q), from each balance point's
    degree days computed once: the same columns, multiplied by the same day counts."""
    shape = ("heating_balance_point", "cooling_balance_point")
    names = [nm for nm in shape if nm in group[0]]
    xs = np.empty((len(group), len(obs), 1 + len(names) + int(day_type)), dtype=np.float64)
    xs[:, :, 0] = 1.0
    for j, nm in enumerate(names, start=1):
        by_bp = columns[nm]
        xs[:, :, j] = np.stack([by_bp[c[nm]] for c in group])
    if day_type:
        xs[:, :, -1] = obs.nonworking
    xs *= obs.days[None, :, None]
    return xs


def _enough(obs: Observations, bp: float, heating: bool) -> bool:
    d = obs.day_temps[np.isfinite(obs.day_temps)]
    dd = np.maximum(bp - d, 0.0) if heating else np.maximum(d - bp, 0.0)
    return int(np.count_nonzero(dd)) >= MIN_DD_DAYS and float(dd.sum()) >= MIN_DD_TOTAL


def _score(xs: Array, y: Array, slope_idx: list[int]) -> tuple[Array, Array]:
    """(SSE/(n−q) for each stacked design, or +inf where a slope fails) and the betas."""
    k, n, q = xs.shape
    xt = np.swapaxes(xs, 1, 2)
    xtx = xt @ xs
    xty = (xt @ y)[..., None]
    inv = np.linalg.pinv(xtx)
    beta = (inv @ xty)[..., 0]
    resid = y[None, :] - (xs @ beta[..., None])[..., 0]
    sse = np.einsum("kn,kn->k", resid, resid)
    dof = n - q
    mse = sse / dof
    ok = np.ones(k, dtype=bool)
    for j in slope_idx:
        se = np.sqrt(np.maximum(mse * inv[:, j, j], 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            t = beta[:, j] / se
        p = t_two_sided_p(t, dof)
        ok &= (beta[:, j] > 0) & (p < P_MAX)
    return np.where(ok, mse, np.inf), beta


def fit(obs: Observations, day_type: bool = False) -> tuple[FittedModel, float]:
    """Fit the CalTRACK candidates; returns the winning model and its SSE."""
    y = obs.energy
    if len(y) < 4:
        raise ModelError("too few periods for a degree-day regression")
    if obs.frequency == Frequency.MONTHLY:
        per_period = np.count_nonzero(np.isfinite(obs.day_temps), axis=1)
        if np.any(per_period < 0.9 * obs.days):
            raise ModelError(
                "degree days need daily temperatures; these monthly periods carry only a mean "
                "temperature (give daily rows, or use a change-point model)"
            )
    heat = [float(b) for b in BALANCE_POINTS if _enough(obs, float(b), heating=True)]
    cool = [float(b) for b in BALANCE_POINTS if _enough(obs, float(b), heating=False)]
    candidates: list[dict[str, float]] = [{}]
    candidates += [{"heating_balance_point": h} for h in heat]
    candidates += [{"cooling_balance_point": c} for c in cool]
    candidates += [
        {"heating_balance_point": h, "cooling_balance_point": c} for h in heat for c in cool if h <= c
    ]
    # adjusted R² ranks like SSE/(n − p) with p counting the balance points as well
    best: tuple[float, dict[str, float]] = (np.inf, {})
    by_shape: dict[tuple[str, ...], list[dict[str, float]]] = {}
    for c in candidates:
        by_shape.setdefault(tuple(sorted(c)), []).append(c)
    n = len(y)
    columns = {
        "heating_balance_point": {h: _degree_days(obs, h, heating=True) for h in heat},
        "cooling_balance_point": {c: _degree_days(obs, c, heating=False) for c in cool},
    }
    for shape, group in by_shape.items():
        xs = _designs(obs, group, day_type, columns)
        slope_idx = list(range(1, 1 + len(shape)))
        mse, _ = _score(xs, y, slope_idx)
        p_total = xs.shape[2] + len(shape)
        crit = mse * (n - xs.shape[2]) / max(n - p_total, 1)
        i = int(np.argmin(crit))
        if crit[i] < best[0]:
            best = (float(crit[i]), group[i])
    nonlinear = best[1]
    x, names = design(obs, nonlinear, day_type)
    from epcwatch.savings.changepoint import check_identifiable

    check_identifiable(x, obs.temp, bool(nonlinear))
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = y - x @ beta
    model = FittedModel(
        type="hdd_cdd",
        frequency=obs.frequency,
        coefficients={nm: float(b) for nm, b in zip(names, beta, strict=True)},
        nonlinear=dict(nonlinear),
        day_type=day_type,
    )
    return model, float(resid @ resid)
