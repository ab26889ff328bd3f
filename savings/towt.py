"""Time-of-week-and-temperature model (LBNL TOWT, as in CalTRACK's hourly method).

Hourly energy = α(time of week) + Σ βᵢ·Tᵢ, with one indicator per hour of the week (168) and
a piecewise-linear temperature response split at knots of 55, 65, 75 and 90 °F (12.8, 18.3, 23.9,
32.2 °C; knots outside the data's range are dropped). Hours of the week are classed occupied or
unoccupied first: a simple linear load-vs-temperature fit is made, and an hour of the week whose
residuals are positive more than 65 % of the time is occupied. Occupied and unoccupied hours get
separate temperature slopes. Coefficients are per hour.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from epcwatch.savings.models import Array, FittedModel, Frequency, ModelError, Observations

KNOTS_C = (12.8, 18.3, 23.9, 32.2)
OCCUPIED_SHARE = 0.65
HOURS_OF_WEEK = 168


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
    basis = temperature_basis(obs.temp, knots)
    x = np.hstack([tow, basis * occ, basis * (1.0 - occ)])
    nseg = basis.shape[1]
    names = [f"tow_{h:03d}" for h in range(HOURS_OF_WEEK)]
    names += [f"occupied_temp_{i}" for i in range(nseg)] + [f"unoccupied_temp_{i}" for i in range(nseg)]
    return np.asarray(x, dtype=np.float64), names


def occupancy(obs: Observations) -> list[bool]:
    """Occupied hours of the week from the sign of residuals of a simple temperature fit."""
    x = np.column_stack([np.ones(len(obs)), obs.temp])
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
    lo, hi = float(np.min(obs.temp)), float(np.max(obs.temp))
    knots = [k for k in KNOTS_C if lo < k < hi]
    extra: dict[str, Any] = {"knots": knots, "occupied": occupancy(obs)}
    x, names = design(obs, extra)
    beta = np.linalg.lstsq(x, obs.energy, rcond=None)[0]
    resid = obs.energy - x @ beta
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
    x, _ = design(obs, model.extra)
    return int(np.linalg.matrix_rank(x))
