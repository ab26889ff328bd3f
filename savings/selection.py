"""Fitting candidates, judging them and choosing one (``model: auto``).

The stated criterion: among candidates that qualify — slope coefficients significant
(two-sided p < 0.10, CalTRACK's threshold) and physically signed (heating and cooling slopes
positive, the 4P curve convex, a non-working-day shift significant), enough effective periods
for their parameters (n′ > p) and the G14 regression-path CV(RMSE) met — the one with the
**lowest AICc** is found, and the candidate with the fewest parameters within
``AICC_TOLERANCE`` of it wins (a parsimony tolerance: an extra parameter must buy a clear
improvement). Change points count as parameters. The mean model qualifies unless its
CV(RMSE) fails G14; when nothing qualifies the best of the rest is returned with its reasons.

Daily data first choose their temperature: the day's mean or its one-day lag, whichever a 5P
model fits better. Candidates for daily and monthly data: mean, 2P, 3PC, 3PH, 4P, 5P and
HDD/CDD; for daily data change-point models also with separate non-working-day slopes, and
each also with a non-working-day shift when both day types have at least 10 valid days.
TOWT is hourly-only and chosen explicitly; ``towt-monthly`` also fits CalTRACK's
month-segmented TOWT and keeps it when it predicts held-out calendar months better
(:data:`HOURLY_CRITERION`), else falls back to TOWT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from epcwatch.savings import changepoint, degreeday, towt, towt_monthly
from epcwatch.savings.models import HOURLY_TYPES, FittedModel, Frequency, ModelError, Observations
from epcwatch.savings.stats import (
    Coefficient,
    DegreesOfFreedomError,
    FitStats,
    G14Verdict,
    UncertaintyModel,
    coefficient_table,
    fit_stats,
    g14_simulation_verdict,
    g14_verdict,
    uncertainty_model,
)

P_MAX = 0.10
AICC_TOLERANCE = 2.0
AUTO_TYPES = ("mean", "2p", "3pc", "3ph", "4p", "5p", "hdd_cdd")
CRITERION = (
    "among candidates with significant (p < 0.10), physically signed slopes, n′ > p and the G14 "
    "regression-path CV(RMSE) met: the fewest parameters within 2 AICc units of the lowest AICc"
)


@dataclass(frozen=True)
class FitResult:
    model: FittedModel
    stats: FitStats
    verdict: G14Verdict
    coefficients: list[Coefficient]
    qualified: bool
    reasons: list[str] = field(default_factory=list)
    uncertainty: UncertaintyModel | None = None
    simulation_verdict: G14Verdict | None = None

    @property
    def label(self) -> str:
        m = self.model
        return (
            m.type
            + ("+daytype" if m.day_type else "")
            + ("+split" if m.extra.get("split") else "")
            + ("+lag1d" if m.extra.get("feature") == "lag1d" else "")
        )

    @property
    def aicc(self) -> float:
        n, p = self.stats.n, self.stats.p
        sse = self.stats.rmse**2 * (n - p)
        if n - p - 1 <= 0 or sse <= 0:
            return math.inf if sse > 0 else -math.inf
        return n * math.log(sse / n) + 2 * p + 2 * p * (p + 1) / (n - p - 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.label,
            "qualified": self.qualified,
            "reasons": self.reasons,
            "cvrmse": self.stats.cvrmse,
            "adj_r2": self.stats.adj_r2,
            "p": self.stats.p,
            "aicc": self.aicc,
        }


@dataclass(frozen=True)
class Selection:
    chosen: FitResult
    candidates: list[FitResult]
    criterion: str = CRITERION


def fit_one(kind: str, obs: Observations, day_type: bool, extra: dict[str, Any] | None = None) -> FittedModel:
    if kind in changepoint.TYPES:
        return changepoint.fit(kind, obs, day_type, extra)[0]
    if kind == "hdd_cdd":
        return degreeday.fit(obs, day_type)[0]
    if kind == "towt":
        return towt.fit(obs)[0]
    if kind == "towt-monthly":
        return towt_monthly.fit(obs)
    raise ModelError(f"unknown model {kind!r}")


def _reasons(model: FittedModel, coefs: dict[str, Coefficient]) -> list[str]:
    out = []
    slopes = [n for n in coefs if n.endswith("_slope") or n in {"slope", "nonworking_shift"}]
    for n in slopes:
        if coefs[n].p_value >= P_MAX:
            out.append(f"{n} not significant (p = {coefs[n].p_value:.3f})")
    positive = {"cooling_slope", "heating_slope", "hdd_slope", "cdd_slope"}
    if model.type == "4p":
        if coefs["heating_slope"].value + coefs["cooling_slope"].value <= 0:
            out.append("4P curve not convex (energy must fall then rise with temperature)")
    else:
        for n in positive & set(coefs):
            if coefs[n].value <= 0:
                out.append(f"{n} has the wrong sign ({coefs[n].value:.4g})")
            nw = coefs.get(f"nonworking_{n}")
            if nw is not None and coefs[n].value + nw.value < 0:
                out.append(f"{n} on non-working days has the wrong sign ({coefs[n].value + nw.value:.4g})")
    return out


def evaluate(model: FittedModel, obs: Observations, reporting_months: float = 12.0) -> FitResult:
    """Statistics, coefficient table and qualification of a fitted model on ``obs``."""
    if model.type == "towt-monthly":
        return _evaluate_segmented(model, obs, reporting_months)
    x, names = model.design(obs)
    beta = np.array([model.coefficients[n] for n in names])
    yhat = x @ beta
    xtx = towt.gram(obs, model.extra, obs.energy)[0] if model.type == "towt" else x.T @ x
    xtx_pinv = np.asarray(np.linalg.pinv(xtx, hermitian=True), dtype=np.float64)
    p = towt.solve(xtx, np.zeros(len(xtx)))[1] if model.type == "towt" else model.n_params
    st = fit_stats(obs.energy, yhat, p)
    coefs = coefficient_table(x, obs.energy, beta, names, p, xtx_pinv=xtx_pinv)
    by_name = {c.name: c for c in coefs}
    reasons = [] if model.type == "towt" else _reasons(model, by_name)
    um: UncertaintyModel | None = None
    try:
        xv = model.variance_design(obs)
        xv_pinv = xtx_pinv if xv is x else np.asarray(np.linalg.pinv(xv.T @ xv, hermitian=True))
        um = uncertainty_model(xv, obs.energy - yhat, p, obs.frequency, xv_pinv)
    except DegreesOfFreedomError as exc:
        reasons.append(str(exc))
    verdict = g14_verdict(st, obs.frequency, reporting_months)
    return FitResult(
        model=model,
        stats=st,
        verdict=verdict,
        coefficients=coefs,
        qualified=not reasons,
        reasons=reasons,
        uncertainty=um,
        simulation_verdict=g14_simulation_verdict(st, obs.frequency),
    )


def _evaluate_segmented(model: FittedModel, obs: Observations, reporting_months: float) -> FitResult:
    """Month-segmented TOWT: p is the effective number of parameters (trace of the hat
    matrix); the uncertainty is the segments' (see :mod:`towt_monthly`). No coefficient table
    (twelve models of ~200 coefficients each)."""
    yhat = model.predict(obs)
    segments, trace = towt_monthly.uncertainty_parts(model, obs)
    p = max(1, round(trace))
    st = fit_stats(obs.energy, yhat, p)
    reasons: list[str] = []
    um: UncertaintyModel | None = None
    try:
        base = uncertainty_model(
            np.empty((len(obs), 0)), obs.energy - yhat, p, obs.frequency, np.empty((0, 0))
        )
        um = replace(base, segments=tuple(segments))
    except DegreesOfFreedomError as exc:
        reasons.append(str(exc))
    return FitResult(
        model=model,
        stats=st,
        verdict=g14_verdict(st, obs.frequency, reporting_months),
        coefficients=[],
        qualified=not reasons,
        reasons=reasons,
        uncertainty=um,
        simulation_verdict=g14_simulation_verdict(st, obs.frequency),
    )


#: month-segmented TOWT replaces TOWT only when it predicts held-out months this much better
#: (relative CV(RMSE), leave-one-calendar-month-out)
SEGMENTED_GAIN = 0.02
HOURLY_CRITERION = (
    "TOWT and month-segmented TOWT compared out of sample (leave one calendar month out, model "
    "form refitted); the segmented model is chosen when it qualifies (n′ > p in every month and "
    "overall) and its out-of-sample CV(RMSE) is at least 2 % lower"
)


def _hourly(obs: Observations, model: str, reporting_months: float) -> Selection:
    base = evaluate(fit_one("towt", obs, False), obs, reporting_months)
    if model == "towt":
        return Selection(chosen=base, candidates=[base], criterion="TOWT (hourly)")
    from epcwatch.savings.evidence import cv_score

    try:
        seg = evaluate(
            towt_monthly.fit(obs, str(base.model.extra.get("feature", "temp"))), obs, reporting_months
        )
    except ModelError as exc:
        return Selection(
            chosen=base,
            candidates=[base],
            criterion=f"{HOURLY_CRITERION}; month-segmented TOWT refused: {exc}",
        )
    cv_base, cv_seg = cv_score(base.model, obs), cv_score(seg.model, obs)
    scores = f"out-of-sample CV(RMSE) TOWT {cv_base:.2f} %, month-segmented {cv_seg:.2f} %"
    better = cv_seg < (1.0 - SEGMENTED_GAIN) * cv_base
    chosen = seg if seg.uncertainty is not None and seg.qualified and better else base
    return Selection(chosen=chosen, candidates=[base, seg], criterion=f"{HOURLY_CRITERION} ({scores})")


def choose(results: list[FitResult]) -> FitResult:
    """The stated criterion (module docstring) applied to fitted candidates."""
    pool = [r for r in results if r.qualified and r.verdict.cvrmse_pass]
    pool = pool or [r for r in results if r.qualified] or [r for r in results if r.uncertainty] or results
    best = min(r.aicc for r in pool)
    near = [r for r in pool if r.aicc <= best + AICC_TOLERANCE]
    return min(near, key=lambda r: (r.stats.p, r.aicc))


def _day_type_possible(obs: Observations) -> bool:
    if obs.frequency != Frequency.DAILY:
        return False
    nw = int(np.count_nonzero(obs.nonworking > 0.5))
    return nw >= 10 and len(obs) - nw >= 10


def _daily_feature(obs: Observations, day_type: bool) -> str:
    """Same-day or one-day-lagged temperature: whichever a 5P model fits better (equal p)."""
    best = ("temp", np.inf)
    for feat in ("temp", "lag1d"):
        try:
            _, sse = changepoint.fit(
                "5p", obs, day_type, {"feature": feat, "variables": list(obs.extra_names)}
            )
        except ModelError:
            continue
        if sse < best[1]:
            best = (feat, sse)
    return best[0]


def select(
    obs: Observations, model: str = "auto", day_type: bool | None = None, reporting_months: float = 12.0
) -> Selection:
    """Fit ``model`` (or every auto candidate) on valid observations and choose.

    Negative energy is treated as missing (as the sufficiency warning says). ``day_type`` None
    tries both with and without a non-working-day shift (daily data). An explicitly named
    model is returned even if it does not qualify; its reasons say why.
    """
    obs = obs.select(obs.valid() & ~(obs.energy < 0))
    if len(obs) < 3:
        raise ModelError(f"only {len(obs)} periods with both energy and temperature")
    kinds = AUTO_TYPES if model == "auto" else (model,)
    if model in HOURLY_TYPES or obs.frequency == Frequency.HOURLY:
        if model not in (*HOURLY_TYPES, "auto"):
            raise ModelError(f"{model} is fitted on daily or monthly data; use towt for hourly data")
        if obs.frequency != Frequency.HOURLY:
            raise ModelError(f"{model} needs hourly data")
        return _hourly(obs, "towt" if model == "auto" else model, reporting_months)
    possible = _day_type_possible(obs)
    both = [False, True] if possible else [False]
    variants: list[tuple[bool, bool]] = [(dt, False) for dt in (both if day_type is None else [day_type])]
    if possible and day_type is not False:
        variants.append((True, True))
    feature = _daily_feature(obs, possible) if obs.frequency == Frequency.DAILY else "temp"
    results: list[FitResult] = []
    errors: list[str] = []
    for kind in kinds:
        for dt, split in variants:
            if split and kind not in changepoint.TYPES[1:]:
                continue
            if kind not in changepoint.TYPES and obs.extra_names:
                continue  # degree-day and TOWT models take no extra variables
            extra = (
                {"feature": feature, "split": split, "variables": list(obs.extra_names)}
                if kind in changepoint.TYPES
                else None
            )
            try:
                results.append(evaluate(fit_one(kind, obs, dt, extra), obs, reporting_months))
            except ModelError as exc:
                errors.append(f"{kind}: {exc}")
    if not results:
        raise ModelError("; ".join(errors) or "no model could be fitted")
    return Selection(chosen=choose(results), candidates=results)
