"""Out-of-sample evidence for an M&V report: what a reviewer checks before trusting a baseline.

- **Blocked cross-validation by calendar month**: the chosen model form is refitted twelve
  times (change points and balance points searched again), each time without one month, and
  predicts the month it did not see. CV(RMSE) and NMBE of those predictions are out of sample
  (an OLS fit with an intercept has NMBE ≈ 0 in sample by construction, so only these say
  anything about bias). TOWT refits its coefficients with the chosen lag, knots and occupancy.
- **Per-month NMBE** of the same out-of-sample predictions.
- **Temperature range**: the share of reporting periods colder or warmer than any baseline
  period (the model extrapolates there).
- **Placebo test** (where the data hold a year before the baseline): the model form fitted on
  that earlier year predicts the baseline year, where the true savings are zero.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from epcwatch.savings import changepoint, degreeday, towt, towt_monthly
from epcwatch.savings.models import Array, FittedModel, ModelError, Observations


def refit(model: FittedModel, train: Observations) -> FittedModel:
    """The same model form fitted on other data (non-linear parameters searched again)."""
    if model.type in changepoint.TYPES:
        return changepoint.fit(model.type, train, model.day_type, model.extra)[0]
    if model.type == "hdd_cdd":
        return degreeday.fit(train, model.day_type)[0]
    if model.type == "towt":
        beta, _ = towt.solve(*towt.gram(train, model.extra, train.energy))
        _, names = towt.design(train.select(np.zeros(len(train), dtype=bool)), model.extra)
        coefs = {n: float(b) for n, b in zip(names, beta, strict=True)}
        return FittedModel(type="towt", frequency=model.frequency, coefficients=coefs, extra=model.extra)
    if model.type == "towt-monthly":
        return towt_monthly.refit(model, train)
    raise ModelError(f"cannot refit {model.type}")


def blocked_cv(model: FittedModel, obs: Observations, labels: pd.DatetimeIndex) -> dict[str, Any]:
    """Leave-one-calendar-month-out predictions of ``obs`` (valid rows, time order)."""
    months = np.asarray(pd.DatetimeIndex(labels).to_period("M").astype(str))
    pred = np.full(len(obs), np.nan)
    skipped = []
    for m in np.unique(months):
        test = months == m
        train = ~test
        if train.sum() < 0.5 * len(obs) or test.sum() == 0:
            continue
        try:
            fm = refit(model, obs.select(train))
            pred[test] = fm.predict(obs.select(test))
        except ModelError as exc:
            skipped.append({"month": str(m), "reason": str(exc)})
    ok = np.isfinite(pred)
    y = obs.energy
    e = (y - pred)[ok]
    ybar = abs(float(y[ok].mean())) if ok.any() else math.nan
    per_month = []
    for m in np.unique(months):
        sel = ok & (months == m)
        if sel.any():
            tot = float(y[sel].sum())
            per_month.append(
                {
                    "month": str(m),
                    "nmbe": 100.0 * float((y[sel] - pred[sel]).sum()) / abs(tot) if tot else None,
                    "periods": int(sel.sum()),
                }
            )
    return {
        "method": "leave one calendar month out; the model form refitted on the rest",
        "folds": len(per_month),
        "cvrmse": 100.0 * math.sqrt(float(e @ e) / len(e)) / ybar if len(e) and ybar else None,
        "nmbe": 100.0 * float(e.sum()) / (len(e) * ybar) if len(e) and ybar else None,
        "per_month_nmbe": per_month,
        "skipped": skipped,
    }


def cv_score(model: FittedModel, obs: Observations) -> float:
    """Out-of-sample CV(RMSE) (%) of ``model``'s form, leaving one calendar month out at a
    time (``obs.month``; hourly model choice). Infinite when no fold can be scored."""
    if len(obs.month) != len(obs):
        return math.inf
    pred = np.full(len(obs), np.nan)
    for m in np.unique(obs.month):
        test = obs.month == m
        try:
            pred[test] = refit(model, obs.select(~test)).predict(obs.select(test))
        except ModelError:
            continue
    ok = np.isfinite(pred)
    if not ok.any():
        return math.inf
    e = (obs.energy - pred)[ok]
    ybar = abs(float(obs.energy[ok].mean()))
    return 100.0 * math.sqrt(float(e @ e) / len(e)) / ybar if ybar else math.inf


def temperature_range(baseline_temp: Array, reporting_temp: Array) -> dict[str, Any]:
    b = baseline_temp[np.isfinite(baseline_temp)]
    r = reporting_temp[np.isfinite(reporting_temp)]
    if not len(b) or not len(r):
        return {"share_outside": None}
    lo, hi = float(b.min()), float(b.max())
    return {
        "baseline_min": lo,
        "baseline_max": hi,
        "share_outside": float(np.mean((r < lo) | (r > hi))),
        "below": int(np.sum(r < lo)),
        "above": int(np.sum(r > hi)),
    }


def evidence(
    model: FittedModel,
    baseline: Observations,
    baseline_labels: pd.DatetimeIndex | None,
    reporting: Observations,
) -> dict[str, Any]:
    """Blocked CV, per-month NMBE and the temperature-range check (placebo added by callers)."""
    valid = baseline.valid() & ~(baseline.energy < 0)
    out: dict[str, Any] = {}
    if baseline_labels is not None and len(baseline_labels) == len(baseline):
        out["blocked_cv"] = blocked_cv(
            model, baseline.select(valid), pd.DatetimeIndex(baseline_labels)[valid]
        )
    else:
        out["blocked_cv"] = None
    rv = reporting.valid()
    out["temperature_range"] = temperature_range(baseline.temp[valid], reporting.temp[rv])
    out["placebo"] = {"available": False, "reason": "the data hold no full year before the baseline"}
    return out


def placebo(model: FittedModel, prior: Observations, baseline: Observations) -> dict[str, Any]:
    """Fit the model form on the year before the baseline, predict the baseline year (no
    retrofit in between: the true savings are zero); ``within_90`` if 0 lies in the 90 % band."""
    from epcwatch.savings.savings import summed_design
    from epcwatch.savings.selection import evaluate

    pv = prior.valid() & ~(prior.energy < 0)
    bv = baseline.valid() & ~(baseline.energy < 0)
    if pv.sum() < 0.9 * len(prior):
        return {"available": False, "reason": "the year before the baseline has under 90 % valid periods"}
    train = prior.select(pv)
    try:
        fm = refit(model, train)
        fr = evaluate(fm, train)
    except ModelError as exc:
        return {"available": False, "reason": f"the model form cannot be fitted on the earlier year ({exc})"}
    test = baseline.select(bv)
    pred = fm.predict(test)
    sav = float((pred - test.energy).sum())
    u90 = math.nan
    if fr.uncertainty is not None:
        g = summed_design(fm, test, np.ones(len(test), dtype=bool))
        u90 = fr.uncertainty.half_width(g, len(test), 0.90)
    total = float(test.energy.sum())
    return {
        "available": True,
        "method": "the model form fitted on the year before the baseline predicts the baseline year",
        "savings": sav,
        "fraction": sav / total if total else None,
        "uncertainty_90": u90,
        "within_90": bool(abs(sav) <= u90) if math.isfinite(u90) else None,
    }
