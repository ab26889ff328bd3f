"""Savings: avoided energy use, normalised savings, uncertainty, guarantee, cost, tce and CO2.

Avoided energy use (IPMVP "adjusted baseline"): the baseline model predicts what the facility
would have used under the reporting period's conditions; non-routine adjustments are added to
that prediction; savings = adjusted baseline + adjustments − actual, per period and cumulated.
Only periods with valid actual energy and temperature count.

Uncertainty: every band is **two-sided** (a central interval: the truth lies below the lower
bound with half the remaining probability), computed from the exact least-squares prediction
variance of the summed baseline with an autocorrelation correction (:mod:`stats`). It is not
scaled by the adjusted baseline, so a non-routine adjustment does not inflate it; each
adjustment brings its own stated standard uncertainty, added in quadrature.

Normalised savings: the baseline model and a model fitted on the reporting period both predict
a normal weather year; savings = baseline(normal) − reporting(normal). Their uncertainty combines
both models' parameter uncertainties in quadrature (no meter scatter: the normal year is not
metered).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from epcwatch.savings.models import Array, FittedModel, Observations
from epcwatch.savings.stats import (
    CONFIDENCE_LEVELS,
    UNCERTAINTY_METHOD,
    FitStats,
    UncertaintyModel,
    savings_uncertainty,
)

#: GB/T 2589-2020 calorific equivalent of electricity
TCE_CALORIFIC_KGCE_PER_KWH = 0.1229


def _pct(conf: float) -> str:
    return f"{round(conf * 100):d}"


def _uncertainty(stats: FitStats, m: int, total: float, conf: float) -> float:
    return savings_uncertainty(
        cvrmse_pct=stats.cvrmse,
        n=stats.n,
        n_eff=stats.n_effective,
        p=stats.p,
        m=m,
        baseline_total=total,
        confidence=conf,
    )


@dataclass(frozen=True)
class SavingsSeries:
    """Per reporting period (NaN where the period has no valid data)."""

    adjusted_baseline: Array
    adjustments: Array
    actual: Array
    savings: Array
    cumulative: Array
    valid: Array


@dataclass(frozen=True)
class SavingsSummary:
    adjusted_baseline: float
    adjustments: float
    actual: float
    avoided_energy_use: float
    fractional: float
    periods: int
    uncertainty: dict[str, float]
    fsu: dict[str, float]
    standard_error: float = math.nan
    adjustment_standard_uncertainty: float = 0.0
    uncertainty_method: str = "g14_approximation"
    uncertainty_g14_approximation: dict[str, float] | None = None
    sided: str = "two-sided"
    #: the band's multiplier of the standard error at each level (bootstrap quantiles)
    multipliers: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["uncertainty_description"] = UNCERTAINTY_METHOD.get(
            self.uncertainty_method, "ASHRAE Guideline 14 Annex B approximation"
        )
        for k, v in self.fsu.items():
            d[f"fsu_{k}"] = v
        for k, v in self.uncertainty.items():
            d[f"uncertainty_{k}"] = v
        return d


def summed_design(
    model: FittedModel, reporting: Observations, valid: NDArray[np.bool_], weights: Array | None = None
) -> Array:
    """Column sums of the reporting-period design over valid periods (optionally weighted)."""
    ok = np.asarray(valid, dtype=bool)
    w = np.ones(int(ok.sum())) if weights is None else np.asarray(weights, dtype=np.float64)[ok]
    return model.summed_design(reporting.select(ok), w)


def avoided_energy(
    model: FittedModel,
    stats: FitStats,
    reporting: Observations,
    adjustments: Array | None = None,
    adjustment_fractions: Array | None = None,
    *,
    uncertainty: UncertaintyModel | None = None,
    adjustment_uncertainty: list[tuple[Array, float]] | None = None,
) -> tuple[SavingsSeries, SavingsSummary]:
    """Savings over the reporting period with two-sided uncertainty at 68, 80 and 90 %.

    Non-routine adjustments per period: ``adjustments`` in energy units plus
    ``adjustment_fractions`` times the model's prediction; both add to the adjusted baseline.
    ``adjustment_uncertainty`` lists (periods mask, standard uncertainty as a share of the amount
    applied there) per adjustment; independent adjustments add in quadrature.
    With ``uncertainty`` the exact prediction variance is used, else G14's approximation
    (applied to the unadjusted baseline).
    """
    n = len(reporting)
    valid = reporting.valid() & (reporting.energy >= 0)
    pred = np.full(n, np.nan)
    if valid.any():
        pred[valid] = model.predict(reporting.select(valid))
    adj = np.zeros(n) if adjustments is None else np.asarray(adjustments, dtype=np.float64)
    if adjustment_fractions is not None:
        adj = adj + np.asarray(adjustment_fractions, dtype=np.float64) * np.nan_to_num(pred)
    base = np.where(valid, pred, np.nan)
    adj = np.where(valid, adj, np.nan)
    actual = np.where(valid, reporting.energy, np.nan)
    sav = base + adj - actual
    cum = np.cumsum(np.where(valid, sav, 0.0))
    cum = np.where(np.cumsum(valid) > 0, cum, np.nan)
    m = int(valid.sum())
    base_total = float(np.nansum(base))
    adj_total = float(np.nansum(adj))
    actual_total = float(np.nansum(actual))
    avoided = base_total + adj_total - actual_total
    adjusted = base_total + adj_total
    frac = avoided / adjusted if adjusted else math.nan
    unc: dict[str, float] = {}
    fsu: dict[str, float] = {}
    approx = {_pct(c): _uncertainty(stats, m, base_total, c) for c in CONFIDENCE_LEVELS} if m else None
    adjustment_sd = math.sqrt(
        sum(
            (share * float(np.nansum(adj[np.asarray(mask, dtype=bool)]))) ** 2
            for mask, share in adjustment_uncertainty or []
        )
    )
    se = math.nan
    k: dict[float, float] = {}
    if uncertainty is not None and m:
        weights = 1.0 + (
            np.zeros(n)
            if adjustment_fractions is None
            else np.asarray(adjustment_fractions, dtype=np.float64)
        )
        g = summed_design(model, reporting, valid, weights)
        se = uncertainty.standard_error(g, m)
        k = uncertainty.multipliers(g, m)
    for conf in CONFIDENCE_LEVELS:
        if uncertainty is not None and m:
            u = k[conf] * math.hypot(se, adjustment_sd)
        else:
            u = math.hypot(_uncertainty(stats, m, base_total, conf), adjustment_sd) if m else math.nan
        unc[_pct(conf)] = u
        fsu[_pct(conf)] = u / abs(avoided) if avoided else math.inf
    series = SavingsSeries(base, adj, actual, sav, cum, valid.astype(np.float64))
    summary = SavingsSummary(
        adjusted_baseline=base_total,
        adjustments=adj_total,
        actual=actual_total,
        avoided_energy_use=avoided,
        fractional=frac,
        periods=m,
        uncertainty=unc,
        fsu=fsu,
        standard_error=se,
        adjustment_standard_uncertainty=adjustment_sd,
        uncertainty_method=uncertainty.method if uncertainty is not None else "g14_approximation",
        uncertainty_g14_approximation=approx,
        multipliers={_pct(c): v for c, v in k.items()} or None,
    )
    return series, summary


#: a cumulative band over more reporting periods than this is computed at this many
#: checkpoints (parameter variance interpolated between them; the last period exact)
CUMULATIVE_POINTS = 1000


def _span(n: int, a: int, b: int) -> NDArray[np.bool_]:
    out = np.zeros(n, dtype=bool)
    out[a:b] = True
    return out


def cumulative_uncertainty(
    model: FittedModel,
    uncertainty: UncertaintyModel,
    reporting: Observations,
    valid: Array,
    confidence: float,
    *,
    adjustment_fractions: Array | None = None,
) -> Array:
    """Two-sided half-width of the cumulative savings after each reporting period."""
    n = len(reporting)
    ok = np.asarray(valid, dtype=bool)
    out = np.zeros(n)
    if not ok.any():
        return out
    w = 1.0 + (np.zeros(n) if adjustment_fractions is None else np.asarray(adjustment_fractions))[ok]
    mv = int(ok.sum())
    if mv <= CUMULATIVE_POINTS:
        x = model.variance_design(reporting.select(ok))
        g = np.cumsum(x * w[:, None], axis=0).T  # q × m_valid
        vp = uncertainty.var_param_many(g)
    else:  # long hourly series: the parameter variance at checkpoints, interpolated between
        ends = np.unique(np.linspace(0, mv, CUMULATIVE_POINTS + 1).round().astype(int))[1:]
        rep = reporting.select(ok)
        starts = np.concatenate([[0], ends[:-1]])
        inc = [
            model.summed_design(rep.select(_span(mv, a, b)), w[a:b])
            for a, b in zip(starts, ends, strict=True)
        ]
        g = np.cumsum(np.column_stack(inc), axis=1)
        vp = np.interp(np.arange(1, mv + 1), ends, uncertainty.var_param_many(g))
    m = np.arange(1, ok.sum() + 1)
    vn = np.array([uncertainty.var_noise(float(k)) for k in m])
    # the multiplier of the whole reporting period (the band's end, where the guarantee is judged)
    t = uncertainty.multiplier(g[:, -1], float(ok.sum()), confidence)
    half = t * np.sqrt(vp + vn)
    idx = np.cumsum(ok) - 1
    return np.asarray(np.where(np.cumsum(ok) > 0, half[np.maximum(idx, 0)], 0.0), dtype=np.float64)


@dataclass(frozen=True)
class NormalisedSavings:
    baseline: float
    reporting: float
    savings: float
    fractional: float
    uncertainty: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalised(
    baseline_model: FittedModel,
    baseline_stats: FitStats,
    reporting_model: FittedModel,
    reporting_stats: FitStats,
    normal: Observations,
    *,
    baseline_unc: UncertaintyModel | None = None,
    reporting_unc: UncertaintyModel | None = None,
) -> NormalisedSavings:
    """Both models on the normal year; uncertainty = √(U_baseline² + U_reporting²).

    With both uncertainty models, each U is the parameter error of the model's summed
    normal-year prediction (two-sided); otherwise G14's approximation."""
    b = float(np.sum(baseline_model.predict(normal)))
    r = float(np.sum(reporting_model.predict(normal)))
    m = len(normal)
    unc = {}
    every = np.ones(m, dtype=bool)
    for conf in CONFIDENCE_LEVELS:
        if baseline_unc is not None and reporting_unc is not None:
            parts = []
            for mod, um in ((baseline_model, baseline_unc), (reporting_model, reporting_unc)):
                g = summed_design(mod, normal, every)
                k = um.multiplier(g, m, conf, noise=False)
                parts.append(k * math.sqrt(float(um.var_param_many(g[:, None])[0])))
            unc[_pct(conf)] = math.hypot(*parts)
        else:
            unc[_pct(conf)] = math.hypot(
                _uncertainty(baseline_stats, m, b, conf), _uncertainty(reporting_stats, m, r, conf)
            )
    return NormalisedSavings(
        baseline=b, reporting=r, savings=b - r, fractional=(b - r) / b if b else math.nan, uncertainty=unc
    )


@dataclass(frozen=True)
class Guarantee:
    guaranteed: float
    achieved: float
    met: bool
    met_at_90: bool
    shortfall: float
    #: days the guarantee is pro-rated over: the valid reporting days, the same days as the savings
    days: int = 0
    lower_bound_90: float = math.nan
    test: str = (
        "met_at_90: the one-sided lower 90 % confidence bound of the savings (the lower end of "
        "the two-sided 80 % interval) reaches the guarantee"
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def guarantee(annual: float, valid_days: int, summary: SavingsSummary) -> Guarantee:
    """The guarantee pro-rated to the valid reporting days (those the savings cover).

    ``met_at_90`` is one-sided: savings minus the two-sided 80 % half-width (= the one-sided
    90 % lower confidence bound) must reach the pro-rated guarantee."""
    g = annual * valid_days / 365.0
    a = summary.avoided_energy_use
    lower = a - summary.uncertainty.get("80", 0.0)
    return Guarantee(
        guaranteed=g,
        achieved=a,
        met=a >= g,
        met_at_90=lower >= g,
        shortfall=max(g - a, 0.0),
        days=valid_days,
        lower_bound_90=lower,
    )


def to_tce(kwh: float, kgce_per_kwh: float = TCE_CALORIFIC_KGCE_PER_KWH) -> float:
    """Tonnes of standard coal equivalent."""
    return kwh * kgce_per_kwh / 1000.0


def to_co2_tonnes(kwh: float, kg_per_kwh: float) -> float:
    return kwh * kg_per_kwh / 1000.0
