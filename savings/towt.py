"""Time-of-week-and-temperature model (LBNL TOWT, as in CalTRACK's hourly method), with
thermal lag.

Hourly energy = α(time of week) + Σ βᵢ·Tᵢ, with one indicator per hour of the week (168) and
a piecewise-linear temperature response. LBNL's knots are 55, 65, 75 and 90 °F (12.8, 18.3,
23.9, 32.2 °C; saved models fitted with them still load); models fitted now use a knot every
2.5 °C inside the central 96 % of the temperatures. Hours of the week are classed occupied or
unoccupied first (LBNL): a load-vs-temperature fit with heating and cooling hinges (HDD/CDD at
15.5 and 21 °C) is made, and an hour of the week whose residuals are positive more than 65 % of
the time is occupied. Occupied and unoccupied hours get separate temperature slopes.
Coefficients are per hour. Public holidays take a Sunday's hours of the week and make-up
working days a Wednesday's (see ``engine.hourly_observations``).

Thermal lag: a building responds to the temperature its envelope and mass have seen, not to the
hour's reading. The temperature feature is the outdoor temperature through a first-order lag
of 0 (none), 2, 4, 8, 12, 24 or 48 hours; the lag with the lowest AICc is used (all have the
same number of parameters, so this is the best in-sample fit among physically plausible
responses). CalTRACK's month segmentation is :mod:`towt_monthly`; LBNL's time weighting is not
implemented.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from numpy.typing import NDArray

from epcwatch.savings.models import LAG_HOURS, Array, FittedModel, Frequency, ModelError, Observations

KNOTS_C = (12.8, 18.3, 23.9, 32.2)
#: finer knots (every 2.5 °C) used by fits made since lagged features were added: the response
#: between LBNL's four knots is rarely linear around a building's balance points
FINE_KNOTS_C = tuple(float(k) for k in np.arange(0.0, 35.01, 2.5))
OCCUPIED_SHARE = 0.65
HOURS_OF_WEEK = 168
OCCUPANCY_HINGES_C = (15.5, 21.0)
FEATURES = ("temp", *(f"lag{int(h)}" for h in LAG_HOURS))


def feature(obs: Observations, name: str) -> Array:
    """The temperature a TOWT model responds to: the hour's reading or a lagged one."""
    if name == "temp":
        return obs.temp
    j = FEATURES.index(name) - 1
    return np.asarray(obs.lagged[:, j], dtype=np.float64)


def temperature_basis(temp: Array, knots: list[float]) -> Array:
    """Piecewise-linear basis: one column per segment between knots; the columns sum to T."""
    if not knots:
        return np.asarray(temp[:, None], dtype=np.float64)
    cols = [np.minimum(temp, knots[0])]
    cols += [np.clip(temp, a, b) - a for a, b in itertools.pairwise(knots)]
    cols.append(np.maximum(temp - knots[-1], 0.0))
    return np.asarray(np.column_stack(cols), dtype=np.float64)


def design(obs: Observations, extra: dict[str, Any]) -> tuple[Array, list[str]]:
    knots = [float(k) for k in extra["knots"]]
    occupied = np.asarray(extra["occupied"], dtype=bool)
    how = obs.hour_of_week
    tow = np.zeros((len(obs), HOURS_OF_WEEK))
    tow[np.arange(len(obs)), how] = 1.0
    occ = occupied[how].astype(np.float64)[:, None]
    basis = temperature_basis(feature(obs, str(extra.get("feature", "temp"))), knots)
    x = np.hstack([tow, basis * occ, basis * (1.0 - occ)])
    nseg = basis.shape[1]
    names = [f"tow_{h:03d}" for h in range(HOURS_OF_WEEK)]
    names += [f"occupied_temp_{i}" for i in range(nseg)] + [f"unoccupied_temp_{i}" for i in range(nseg)]
    return np.asarray(x, dtype=np.float64), names


def _parts(obs: Observations, extra: dict[str, Any]) -> tuple[NDArray[np.int64], Array]:
    """Hour-of-week index and the occupied/unoccupied temperature columns of the design."""
    knots = [float(k) for k in extra["knots"]]
    occ = np.asarray(extra["occupied"], dtype=bool)[obs.hour_of_week].astype(np.float64)[:, None]
    basis = temperature_basis(feature(obs, str(extra.get("feature", "temp"))), knots)
    return obs.hour_of_week, np.asarray(np.hstack([basis * occ, basis * (1.0 - occ)]), dtype=np.float64)


def gram(obs: Observations, extra: dict[str, Any], y: Array) -> tuple[Array, Array]:
    """XᵀX and Xᵀy of the design without forming the 168 indicator columns (O(n·k))."""
    how, b = _parts(obs, extra)
    h = HOURS_OF_WEEK
    q = h + b.shape[1]
    xtx = np.zeros((q, q))
    xtx[np.arange(h), np.arange(h)] = np.bincount(how, minlength=h)
    tb = np.stack([np.bincount(how, weights=b[:, j], minlength=h) for j in range(b.shape[1])], axis=1)
    xtx[:h, h:] = tb
    xtx[h:, :h] = tb.T
    xtx[h:, h:] = b.T @ b
    xty = np.concatenate([np.bincount(how, weights=y, minlength=h), b.T @ y])
    return xtx, np.asarray(xty, dtype=np.float64)


def solve(xtx: Array, xty: Array) -> tuple[Array, int]:
    """Minimum-norm solution of the normal equations and the design's rank: eigenvalues below
    1e-10 of the largest count as zero. A full-rank system (the usual case) is solved directly;
    its eigenvalues alone cost a third of a full decomposition."""
    w = np.linalg.eigvalsh(xtx)
    tol = max(float(w.max()), 1e-300) * 1e-10
    if bool(np.all(w > tol)):
        return np.asarray(np.linalg.solve(xtx, xty), dtype=np.float64), len(w)
    w, v = np.linalg.eigh(xtx)
    keep = w > tol
    beta = v[:, keep] @ ((v[:, keep].T @ xty) / w[keep])
    return np.asarray(beta, dtype=np.float64), int(keep.sum())


def predict_parts(obs: Observations, extra: dict[str, Any], beta: Array) -> Array:
    how, b = _parts(obs, extra)
    return np.asarray(beta[:HOURS_OF_WEEK][how] + b @ beta[HOURS_OF_WEEK:], dtype=np.float64)


def occupancy(obs: Observations) -> list[bool]:
    """Occupied hours of the week from the sign of residuals of a fit with HDD/CDD hinges."""
    h, c = OCCUPANCY_HINGES_C
    x = np.column_stack([np.ones(len(obs)), np.maximum(h - obs.temp, 0.0), np.maximum(obs.temp - c, 0.0)])
    beta = np.linalg.lstsq(x, obs.energy, rcond=None)[0]
    positive = (obs.energy - x @ beta) > 0
    out = []
    for h in range(HOURS_OF_WEEK):
        sel = obs.hour_of_week == h
        out.append(bool(sel.any() and positive[sel].mean() > OCCUPIED_SHARE))
    return out


def fit(obs: Observations) -> tuple[FittedModel, float]:
    if obs.frequency != Frequency.HOURLY:
        raise ModelError("TOWT needs hourly data")
    if len(obs) < 2 * HOURS_OF_WEEK:
        raise ModelError("TOWT needs at least two weeks of hourly data")
    occupied = occupancy(obs)
    y = obs.energy
    n = len(y)
    best: tuple[float, dict[str, Any]] | None = None
    for name in FEATURES:
        f = feature(obs, name)
        lo, hi = float(np.min(f)), float(np.max(f))
        inner = [k for k in FINE_KNOTS_C if lo < k < hi]
        # keep ≥ 2 % of the hours beyond the outer knots, so the end segments are estimable
        q_lo, q_hi = np.quantile(f, [0.02, 0.98])
        cand: dict[str, Any] = {
            "knots": [k for k in inner if q_lo < k < q_hi],
            "occupied": occupied,
            "feature": name,
        }
        xtx, xty = gram(obs, cand, y)
        b, p = solve(xtx, xty)
        r = y - predict_parts(obs, cand, b)
        sse = float(r @ r)
        penalty = 2 * p * (p + 1) / (n - p - 1) if n - p - 1 > 0 else np.inf
        aicc = n * np.log(max(sse, 1e-300) / n) + 2 * p + penalty
        if best is None or aicc < best[0]:
            best = (float(aicc), cand)
    assert best is not None
    extra = best[1]
    _, names = design(obs.select(np.zeros(len(obs), dtype=bool)), extra)
    beta, _ = solve(*gram(obs, extra, y))
    resid = y - predict_parts(obs, extra, beta)
    model = FittedModel(
        type="towt",
        frequency=Frequency.HOURLY,
        coefficients={n: float(b) for n, b in zip(names, beta, strict=True)},
        extra=extra,
    )
    return model, float(resid @ resid)


def effective_params(model: FittedModel, obs: Observations) -> int:
    """Parameters actually identified by the data (empty hours of the week and unused
    temperature segments contribute nothing)."""
    return solve(*gram(obs, model.extra, np.zeros(len(obs))))[1]
