"""Savings: avoided energy use, normalised savings, uncertainty, guarantee, cost, tce and CO2.

Avoided energy use (IPMVP "adjusted baseline"): the baseline model predicts what the facility
would have used under the reporting period's conditions; non-routine adjustments are added to
that prediction; savings = adjusted baseline + adjustments − actual, per period and cumulated.
Only periods with valid actual energy and temperature count.

Normalised savings: the baseline model and a model fitted on the reporting period both predict
a normal weather year; savings = baseline(normal) − reporting(normal). Their uncertainty combines
both models' G14 uncertainties in quadrature.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from epcwatch.savings.models import Array, FittedModel, Observations
from epcwatch.savings.stats import CONFIDENCE_LEVELS, FitStats, savings_uncertainty

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

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k, v in self.fsu.items():
            d[f"fsu_{k}"] = v
        for k, v in self.uncertainty.items():
            d[f"uncertainty_{k}"] = v
        return d


def avoided_energy(
    model: FittedModel,
    stats: FitStats,
    reporting: Observations,
    adjustments: Array | None = None,
    adjustment_fractions: Array | None = None,
) -> tuple[SavingsSeries, SavingsSummary]:
    """Savings over the reporting period with G14 uncertainty at 68, 80 and 90 %.

    Non-routine adjustments per period: ``adjustments`` in energy units plus
    ``adjustment_fractions`` times the model's prediction; both add to the adjusted baseline.
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
    for conf in CONFIDENCE_LEVELS:
        u = _uncertainty(stats, m, adjusted, conf)
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
    )
    return series, summary


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
) -> NormalisedSavings:
    """Both models on the normal year; uncertainty = √(U_baseline² + U_reporting²)."""
    b = float(np.sum(baseline_model.predict(normal)))
    r = float(np.sum(reporting_model.predict(normal)))
    m = len(normal)
    unc = {}
    for conf in CONFIDENCE_LEVELS:
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def guarantee(annual: float, reporting_days: int, summary: SavingsSummary) -> Guarantee:
    """The guarantee pro-rated to the reporting days; ``met_at_90`` uses the lower 90 % bound."""
    g = annual * reporting_days / 365.0
    a = summary.avoided_energy_use
    lower = a - summary.uncertainty.get("90", 0.0)
    return Guarantee(guaranteed=g, achieved=a, met=a >= g, met_at_90=lower >= g, shortfall=max(g - a, 0.0))


def to_tce(kwh: float, kgce_per_kwh: float = TCE_CALORIFIC_KGCE_PER_KWH) -> float:
    """Tonnes of standard coal equivalent."""
    return kwh * kgce_per_kwh / 1000.0


def to_co2_tonnes(kwh: float, kg_per_kwh: float) -> float:
    return kwh * kg_per_kwh / 1000.0
