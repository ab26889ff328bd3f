"""TOWT with month segmentation, as CalTRACK's hourly method (2.0, section 3) fits it.

One TOWT model per calendar month. The model of month m is fitted by weighted least squares on
the hours of month m at weight 1 and the hours of the two adjacent calendar months (cyclic:
December's neighbours are November and January) at weight 0.5; the prediction for an hour is
made by the model of its own month. A building whose weekly schedule or temperature response
changes with the season (a summer-only occupancy, a school's holidays) is then seen month by
month, while the half-weighted neighbours keep each month's model from resting on one month.

Per segment, as CalTRACK: occupancy is detected on the segment's own hours (a weighted
load-vs-temperature fit with heating and cooling hinges at 15.5 and 21 °C; an hour of the week
is occupied when more than 65 % of the segment's residuals there are positive), and the
temperature knots are those of :mod:`towt` (every 2.5 °C) inside the central 96 % of the
segment's temperatures. The temperature feature (the hour's reading or a first-order lag) is
the one the unsegmented TOWT chooses on the whole baseline.

Each month's model must have more effective hours than parameters: with ρ the lag-1
autocorrelation of the hourly residuals, n′ = n_w(1−ρ)/(1+ρ) with n_w = (Σw)²/Σw² the
weighted window's effective size, and n′ ≤ p (the rank of the month's weighted design) is
refused with :class:`DegreesOfFreedomError`, so a model choice falls back to the unsegmented
TOWT.

Uncertainty: the estimate of the summed reporting-period baseline is Σₘ gₘᵀβ̂ₘ, with gₘ the
summed design of the reporting hours of month m and β̂ₘ = (XₘᵀWₘXₘ)⁺XₘᵀWₘy. Its error is a
linear form wᵀε of the baseline errors with w = Σₘ WₘXₘ(XₘᵀWₘXₘ)⁺gₘ (months overlap, so the
covariance of neighbouring months' models is counted), and the existing machinery
(autocorrelation-corrected variance, bootstrap multipliers) is applied to that w; the
effective number of parameters is the trace of the fit's hat matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from epcwatch.savings import towt
from epcwatch.savings.models import Array, FittedModel, Frequency, ModelError, Observations

TYPE = "towt-monthly"
#: weights of a month's own hours and of its two neighbours' hours in its model
OWN_WEIGHT, NEIGHBOUR_WEIGHT = 1.0, 0.5
SEGMENTATION = (
    "one TOWT model per calendar month, fitted on that month at weight 1 and the two adjacent "
    "months at weight 0.5 (CalTRACK hourly, weighted least squares); occupancy detected per month"
)
MONTHS = range(1, 13)


def window_weights(month: NDArray[np.int64], m: int) -> Array:
    """Weight of each period in the model of calendar month ``m`` (1–12)."""
    prev, nxt = (m - 2) % 12 + 1, m % 12 + 1
    near = (month == prev) | (month == nxt)
    return np.asarray(
        np.where(month == m, OWN_WEIGHT, np.where(near, NEIGHBOUR_WEIGHT, 0.0)), dtype=np.float64
    )


def _months(obs: Observations) -> NDArray[np.int64]:
    if len(obs.month) != len(obs):
        raise ModelError("month-segmented TOWT needs the calendar month of each hour")
    return obs.month


def wgram(obs: Observations, extra: dict[str, Any], y: Array, w: Array) -> tuple[Array, Array]:
    """XᵀWX and XᵀWy of the TOWT design (W = diag(w)) without forming the indicator columns."""
    how, b = towt._parts(obs, extra)
    h = towt.HOURS_OF_WEEK
    q = h + b.shape[1]
    xtx = np.zeros((q, q))
    xtx[np.arange(h), np.arange(h)] = np.bincount(how, weights=w, minlength=h)
    bw = b * w[:, None]
    tb = np.stack([np.bincount(how, weights=bw[:, j], minlength=h) for j in range(b.shape[1])], axis=1)
    xtx[:h, h:] = tb
    xtx[h:, :h] = tb.T
    xtx[h:, h:] = b.T @ bw
    xty = np.concatenate([np.bincount(how, weights=w * y, minlength=h), bw.T @ y])
    return xtx, np.asarray(xty, dtype=np.float64)


def occupancy(obs: Observations, w: Array) -> list[bool]:
    """CalTRACK's per-segment occupancy: weighted fit with HDD/CDD hinges, then an hour of the
    week is occupied when > 65 % of the segment's residuals there are positive."""
    hh, cc = towt.OCCUPANCY_HINGES_C
    x = np.column_stack([np.ones(len(obs)), np.maximum(hh - obs.temp, 0.0), np.maximum(obs.temp - cc, 0.0)])
    sw = np.sqrt(w)
    beta = np.linalg.lstsq(x * sw[:, None], obs.energy * sw, rcond=None)[0]
    positive = (obs.energy - x @ beta) > 0
    n = np.bincount(obs.hour_of_week, minlength=towt.HOURS_OF_WEEK)
    pos = np.bincount(obs.hour_of_week, weights=positive.astype(np.float64), minlength=towt.HOURS_OF_WEEK)
    return [bool(n[h] > 0 and pos[h] / n[h] > towt.OCCUPIED_SHARE) for h in range(towt.HOURS_OF_WEEK)]


def segment_extra(model: FittedModel, m: int) -> dict[str, Any]:
    seg = model.extra["segments"][str(m)]
    return {"knots": seg["knots"], "occupied": seg["occupied"], "feature": model.extra["feature"]}


def segment_names(extra: dict[str, Any]) -> list[str]:
    nseg = len(extra["knots"]) + 1
    names = [f"tow_{h:03d}" for h in range(towt.HOURS_OF_WEEK)]
    return names + [f"occupied_temp_{i}" for i in range(nseg)] + [f"unoccupied_temp_{i}" for i in range(nseg)]


def segment_beta(model: FittedModel, m: int) -> Array:
    names = segment_names(segment_extra(model, m))
    return np.array([model.coefficients[f"m{m:02d}_{n}"] for n in names], dtype=np.float64)


def _knots(f: Array) -> list[float]:
    lo, hi = float(np.min(f)), float(np.max(f))
    q_lo, q_hi = np.quantile(f, [0.02, 0.98])
    return [k for k in towt.FINE_KNOTS_C if lo < k < hi and q_lo < k < q_hi]


def fit_coefficients(obs: Observations, extra: dict[str, Any]) -> dict[str, float]:
    """Weighted least-squares coefficients of every month's model, its non-linear parameters
    (feature, knots, occupancy per month) fixed as in ``extra``."""
    month = _months(obs)
    coefs: dict[str, float] = {}
    for m in MONTHS:
        w = window_weights(month, m)
        rows = w > 0
        if not rows.any():
            raise ModelError(f"no hours in calendar month {m} or its neighbours")
        sub = obs.select(rows)
        ex = {**extra["segments"][str(m)], "feature": extra["feature"]}
        beta, _ = towt.solve(*wgram(sub, ex, sub.energy, w[rows]))
        coefs.update({f"m{m:02d}_{n}": float(b) for n, b in zip(segment_names(ex), beta, strict=True)})
    return coefs


def fit(obs: Observations, feature: str | None = None) -> FittedModel:
    """Fit the twelve month models; refuses (``DegreesOfFreedomError``) a month with n′ ≤ p."""
    from epcwatch.savings.stats import DegreesOfFreedomError, effective_n, lag1_autocorrelation

    if obs.frequency != Frequency.HOURLY:
        raise ModelError("month-segmented TOWT needs hourly data")
    month = _months(obs)
    if feature is None:
        feature = str(towt.fit(obs)[0].extra.get("feature", "temp"))
    segments: dict[str, dict[str, Any]] = {}
    for m in MONTHS:
        w = window_weights(month, m)
        rows = w > 0
        if np.count_nonzero(month == m) == 0 or rows.sum() < 2 * towt.HOURS_OF_WEEK:
            raise ModelError(
                f"calendar month {m}: too few hours for its own TOWT model (CalTRACK needs a full year)"
            )
        sub = obs.select(rows)
        segments[str(m)] = {
            "knots": _knots(towt.feature(sub, feature)),
            "occupied": occupancy(sub, w[rows]),
        }
    extra: dict[str, Any] = {"feature": feature, "segmentation": "month", "segments": segments}
    model = FittedModel(
        type=TYPE, frequency=Frequency.HOURLY, coefficients=fit_coefficients(obs, extra), extra=extra
    )
    rho = lag1_autocorrelation(obs.energy - predict(model, obs))
    for m in MONTHS:
        w = window_weights(month, m)
        rows = w > 0
        sub = obs.select(rows)
        p = towt.solve(*wgram(sub, segment_extra(model, m), np.zeros(len(sub)), w[rows]))[1]
        n_w = float(w.sum() ** 2 / (w @ w))
        n_eff = effective_n(round(n_w), rho)
        if n_eff <= p:
            raise DegreesOfFreedomError(
                f"calendar month {m}: {n_eff:.0f} effective hours (weighted {n_w:.0f}, autocorrelation "
                f"{rho:.2f}) for {p} parameters: n′ ≤ p, the month's model cannot be stated"
            )
    return model


def predict(model: FittedModel, obs: Observations) -> Array:
    """Each hour predicted by the model of its calendar month."""
    month = _months(obs)
    out = np.full(len(obs), np.nan)
    for m in MONTHS:
        sel = month == m
        if sel.any():
            out[sel] = towt.predict_parts(obs.select(sel), segment_extra(model, m), segment_beta(model, m))
    return out


def _offsets(model: FittedModel) -> list[tuple[int, int]]:
    out, start = [], 0
    for m in MONTHS:
        q = len(segment_names(segment_extra(model, m)))
        out.append((start, q))
        start += q
    return out


def design(model: FittedModel, obs: Observations) -> tuple[Array, list[str]]:
    """The stacked prediction design (each hour's row in its month's columns; dense, so for
    small data and tests only)."""
    month = _months(obs)
    offs = _offsets(model)
    total = offs[-1][0] + offs[-1][1]
    x = np.zeros((len(obs), total))
    names: list[str] = []
    for m, (start, q) in zip(MONTHS, offs, strict=True):
        ex = segment_extra(model, m)
        names += [f"m{m:02d}_{n}" for n in segment_names(ex)]
        sel = month == m
        if sel.any():
            x[np.flatnonzero(sel), start : start + q] = towt.design(obs.select(sel), ex)[0]
    return x, names


def summed_design(model: FittedModel, obs: Observations, weights: Array) -> Array:
    """Σₜ wₜ·xₜ per month model, stacked in month order (the layout of :func:`uncertainty_parts`)."""
    month = _months(obs)
    w = np.asarray(weights, dtype=np.float64)
    parts = []
    for m in MONTHS:
        ex = segment_extra(model, m)
        sel = month == m
        if sel.any():
            parts.append(w[sel] @ towt.design(obs.select(sel), ex)[0])
        else:
            parts.append(np.zeros(len(segment_names(ex))))
    return np.asarray(np.concatenate(parts), dtype=np.float64)


def uncertainty_parts(model: FittedModel, obs: Observations) -> tuple[list[Any], float]:
    """Per month: (window rows, their weights, their design, (XᵀWX)⁺, own-month mask, column
    offset), and the effective number of parameters (trace of the hat matrix)."""
    from epcwatch.savings.stats import Segment

    month = _months(obs)
    segs: list[Any] = []
    trace = 0.0
    for m, (start, _q) in zip(MONTHS, _offsets(model), strict=True):
        w = window_weights(month, m)
        rows = np.flatnonzero(w > 0)
        sub = obs.select(w > 0)
        ex = segment_extra(model, m)
        x = towt.design(sub, ex)[0]
        pinv = np.asarray(np.linalg.pinv(wgram(sub, ex, np.zeros(len(sub)), w[rows])[0], hermitian=True))
        own = month[rows] == m
        xo = x[own]
        trace += float(np.einsum("ij,jk,ik->", xo, pinv, xo))
        segs.append(Segment(rows=rows, weights=w[rows], x=x, pinv=pinv, own=own, offset=start))
    return segs, trace


def refit(model: FittedModel, train: Observations) -> FittedModel:
    """The same segmentation, knots, occupancy and feature; coefficients fitted on ``train``."""
    coefs = fit_coefficients(train, model.extra)
    return FittedModel(type=TYPE, frequency=Frequency.HOURLY, coefficients=coefs, extra=model.extra)
