"""Fitting candidates, judging them and choosing one (``model: auto``).

The stated criterion: among candidates whose slope coefficients are significant (two-sided
p < 0.10, CalTRACK's threshold) and physically signed (heating and cooling slopes positive,
the 4P curve convex, a non-working-day shift significant), the one with the **lowest CV(RMSE)
computed with n − p** wins, change points counted in p. On one data set this is the same
ranking as the highest adjusted R², so extra parameters must earn their place. Ties go to
the model with fewer parameters. The mean model always qualifies, so there is always a winner.

Candidates for daily and monthly data: mean, 2P, 3PC, 3PH, 4P, 5P and HDD/CDD; for daily data
each also with a non-working-day shift when both day types have at least 10 valid days.
TOWT is hourly-only and chosen explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from epcwatch.savings import changepoint, degreeday, towt
from epcwatch.savings.models import FittedModel, Frequency, ModelError, Observations
from epcwatch.savings.stats import (
    Coefficient,
    FitStats,
    G14Verdict,
    coefficient_table,
    fit_stats,
    g14_verdict,
)

P_MAX = 0.10
AUTO_TYPES = ("mean", "2p", "3pc", "3ph", "4p", "5p", "hdd_cdd")
CRITERION = (
    "lowest CV(RMSE) with n − p (equivalently highest adjusted R²) among candidates whose slopes "
    "are significant (p < 0.10) and physically signed; ties to fewer parameters"
)


@dataclass(frozen=True)
class FitResult:
    model: FittedModel
    stats: FitStats
    verdict: G14Verdict
    coefficients: list[Coefficient]
    qualified: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.model.type + ("+daytype" if self.model.day_type else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.label,
            "qualified": self.qualified,
            "reasons": self.reasons,
            "cvrmse": self.stats.cvrmse,
            "adj_r2": self.stats.adj_r2,
            "p": self.stats.p,
        }


@dataclass(frozen=True)
class Selection:
    chosen: FitResult
    candidates: list[FitResult]
    criterion: str = CRITERION


def fit_one(kind: str, obs: Observations, day_type: bool) -> FittedModel:
    if kind in changepoint.TYPES:
        return changepoint.fit(kind, obs, day_type)[0]
    if kind == "hdd_cdd":
        return degreeday.fit(obs, day_type)[0]
    if kind == "towt":
        return towt.fit(obs)[0]
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
    return out


def evaluate(model: FittedModel, obs: Observations) -> FitResult:
    """Statistics, coefficient table and qualification of a fitted model on ``obs``."""
    x, names = model.design(obs)
    beta = np.array([model.coefficients[n] for n in names])
    yhat = x @ beta
    p = towt.effective_params(model, obs) if model.type == "towt" else model.n_params
    st = fit_stats(obs.energy, yhat, p)
    coefs = coefficient_table(x, obs.energy, beta, names, p)
    by_name = {c.name: c for c in coefs}
    reasons = [] if model.type == "towt" else _reasons(model, by_name)
    return FitResult(
        model=model,
        stats=st,
        verdict=g14_verdict(st, obs.frequency),
        coefficients=coefs,
        qualified=not reasons,
        reasons=reasons,
    )


def _day_type_possible(obs: Observations) -> bool:
    if obs.frequency != Frequency.DAILY:
        return False
    nw = int(np.count_nonzero(obs.nonworking > 0.5))
    return nw >= 10 and len(obs) - nw >= 10


def select(obs: Observations, model: str = "auto", day_type: bool | None = None) -> Selection:
    """Fit ``model`` (or every auto candidate) on valid observations and choose.

    ``day_type`` None tries both with and without a non-working-day shift (daily data).
    An explicitly named model is returned even if it does not qualify; its reasons say why.
    """
    obs = obs.select(obs.valid())
    if len(obs) < 3:
        raise ModelError(f"only {len(obs)} periods with both energy and temperature")
    kinds = AUTO_TYPES if model == "auto" else (model,)
    if model == "towt" or obs.frequency == Frequency.HOURLY:
        if model not in ("towt", "auto"):
            raise ModelError(f"{model} is fitted on daily or monthly data; use towt for hourly data")
        fr = evaluate(fit_one("towt", obs, False), obs)
        return Selection(chosen=fr, candidates=[fr], criterion="TOWT (hourly)")
    both = [False, True] if _day_type_possible(obs) else [False]
    variants = both if day_type is None else [day_type]
    results: list[FitResult] = []
    errors: list[str] = []
    for kind in kinds:
        for dt in variants:
            try:
                results.append(evaluate(fit_one(kind, obs, dt), obs))
            except ModelError as exc:
                errors.append(f"{kind}: {exc}")
    if not results:
        raise ModelError("; ".join(errors) or "no model could be fitted")
    pool = [r for r in results if r.qualified] or results
    chosen = min(pool, key=lambda r: (r.stats.cvrmse, r.stats.p))
    return Selection(chosen=chosen, candidates=results)
