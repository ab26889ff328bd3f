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
    nw = obs.nonworking
    days = obs.days

    def stack(cands: list[tuple[float, ...]]) -> Array:
        """The designs of ``design`` for every candidate at once (K × n × q), by broadcasting."""
        c = np.asarray(cands, dtype=np.float64)  # K × len(names_nl)
        k = len(c)
        one = np.ones((k, len(temp)))
        t = temp[None, :]
        if kind == "3pc":
            slopes = [_pos(t - c[:, :1])]
        elif kind == "3ph":
            slopes = [_pos(c[:, :1] - t)]
        elif kind == "4p":
            slopes = [_pos(c[:, :1] - t), _pos(t - c[:, :1])]
        else:  # 5p
            slopes = [_pos(c[:, :1] - t), _pos(t - c[:, 1:2])]
        cols = [one, *slopes]
        if split:
            cols += [sl * nw[None, :] for sl in slopes]
        if day_type:
            cols.append(np.broadcast_to(nw[None, :], (k, len(temp))))
        for v in extra.get("variables", []):
            cols.append(np.broadcast_to(obs.extra[:, obs.extra_names.index(v)][None, :], (k, len(temp))))
        return np.asarray(np.stack(cols, axis=2) * days[None, :, None], dtype=np.float64)

    def best(cands: list[tuple[float, ...]]) -> tuple[tuple[float, ...], float]:
        sse, beta = _batched_sse(stack(cands), y)
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
