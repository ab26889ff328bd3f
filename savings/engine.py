"""From tables of dated energy and temperature to a complete M&V result.

The pure modules work on arrays; this module turns pandas frames (from a CSV or InfluxDB) into
:class:`Observations`, runs sufficiency checks, model selection and savings, and collects
everything a report needs in one :class:`Outcome`.

Frames: daily frames have columns ``date`` (midnight, naive site-local), ``energy``,
``temperature`` (°C) and optionally ``nonworking``; hourly frames ``timestamp``, ``energy``,
``temperature``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from epcwatch.savings import sufficiency
from epcwatch.savings.models import (
    HOURLY_DAYS,
    FittedModel,
    Frequency,
    ModelError,
    Observations,
    lagged_temperature,
)
from epcwatch.savings.savings import (
    NormalisedSavings,
    SavingsSeries,
    SavingsSummary,
    avoided_energy,
    normalised,
)
from epcwatch.savings.selection import FitResult, Selection, evaluate, select
from epcwatch.savings.stats import CONFIDENCE_LEVELS, UNCERTAINTY_SCOPE, DegreesOfFreedomError
from epcwatch.savings.sufficiency import DataWarning
from epcwatch.savings.towt_monthly import SEGMENTATION

#: a day built from hourly rows counts when at least this share of its hours is present
HOURLY_DAY_COVERAGE = 0.9
#: a day's mean temperature counts when at least this share of its hours has a reading
TEMPERATURE_DAY_COVERAGE = 0.75


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"{self.start.isoformat()}/{self.end.isoformat()}"

    @classmethod
    def parse(cls, text: str) -> Period:
        """``START/END`` ISO dates, END inclusive."""
        parts = text.split("/")
        if len(parts) != 2:
            raise ValueError(f"period {text!r} must be START/END (ISO dates, END inclusive)")
        try:
            start, end = date.fromisoformat(parts[0].strip()), date.fromisoformat(parts[1].strip())
        except ValueError:
            raise ValueError(f"period {text!r}: dates must be ISO (YYYY-MM-DD)") from None
        if end < start:
            raise ValueError(f"period {text!r} ends before it starts")
        return cls(start, end)


def weekend(dates: pd.Series) -> np.ndarray:
    return np.asarray(pd.to_datetime(dates).dt.day_of_week >= 5)


def daily_observations(df: pd.DataFrame, variables: tuple[str, ...] = ()) -> Observations:
    """Daily observations; ``variables`` names extra independent variables (columns of ``df``,
    e.g. occupancy or production) that enter the models linearly. A day missing one of them is
    not valid."""
    nw = df["nonworking"].to_numpy(dtype=float) if "nonworking" in df else weekend(df["date"]).astype(float)
    temp = df["temperature"].to_numpy(dtype=float)
    extra = np.empty((len(df), 0))
    if variables:
        extra = np.column_stack([df[v].to_numpy(dtype=float) for v in variables])
        temp = np.where(np.isfinite(extra).all(axis=1), temp, np.nan)
    return Observations(
        energy=df["energy"].to_numpy(dtype=float),
        temp=temp,
        frequency=Frequency.DAILY,
        nonworking=nw,
        extra=extra,
        extra_names=tuple(variables),
    )


def monthly_observations(df: pd.DataFrame) -> Observations:
    """Calendar months from valid days: energy summed, length = valid days, daily temps kept."""
    d = df[np.isfinite(df["energy"]) & np.isfinite(df["temperature"])].copy()
    d["month"] = pd.to_datetime(d["date"]).dt.to_period("M")
    groups = [g for _, g in d.groupby("month", sort=True)]
    width = max((len(g) for g in groups), default=1)
    temps = np.full((len(groups), width), np.nan)
    for i, g in enumerate(groups):
        temps[i, : len(g)] = g["temperature"].to_numpy(dtype=float)
    nw = [
        float(g["nonworking"].mean()) if "nonworking" in g else float(weekend(g["date"]).mean())
        for g in groups
    ]
    return Observations(
        energy=np.array([g["energy"].sum() for g in groups], dtype=float),
        temp=np.array([g["temperature"].mean() for g in groups], dtype=float),
        frequency=Frequency.MONTHLY,
        days=np.array([len(g) for g in groups], dtype=float),
        nonworking=np.array(nw, dtype=float),
        day_temps=temps,
    )


#: hours of the week a holiday (Sunday) and a make-up working weekend day (Wednesday) take
HOLIDAY_WEEKDAY, MAKEUP_WEEKDAY = 6, 2


def hourly_observations(df: pd.DataFrame, calendar: str = "weekends") -> Observations:
    """Hourly observations; with a working-day calendar (``cn``), public holidays take a
    Sunday's hours of the week and make-up working weekend days a Wednesday's. The lagged
    temperatures are computed on the complete hourly series (gaps interpolated)."""
    from epcwatch.savings.calendar import workdays

    ts = pd.to_datetime(df["timestamp"])
    dow = ts.dt.day_of_week.to_numpy(dtype=np.int64)
    if calendar != "weekends" and len(ts):
        days = ts.dt.normalize()
        uniq = pd.DatetimeIndex(days.unique())
        work = dict(zip(uniq, workdays(uniq.date, calendar), strict=True))
        w = np.array([work[d] for d in days], dtype=bool)
        dow = np.where(~w & (dow < 5), HOLIDAY_WEEKDAY, np.where(w & (dow >= 5), MAKEUP_WEEKDAY, dow))
    how = dow * 24 + ts.dt.hour.to_numpy(dtype=np.int64)
    temp = df["temperature"].to_numpy(dtype=float)
    if len(ts):
        full = pd.Series(temp, index=pd.DatetimeIndex(ts))
        full = full[~full.index.duplicated()].resample("h").mean().interpolate(limit_direction="both")
        lag = lagged_temperature(full.to_numpy(dtype=float))
        pos = full.index.get_indexer(pd.DatetimeIndex(ts).floor("h"))
        lagged = lag[pos]
    else:
        lagged = np.empty((0, 0))
    return Observations(
        energy=df["energy"].to_numpy(dtype=float),
        temp=temp,
        frequency=Frequency.HOURLY,
        days=np.full(len(df), HOURLY_DAYS),
        hour_of_week=how.astype(np.int64),
        lagged=lagged,
        month=np.asarray(ts.dt.month.to_numpy(), dtype=np.int64),
    )


def hourly_to_daily(df: pd.DataFrame) -> pd.DataFrame:
    """Daily energy (sum, scaled up for a few missing hours) and mean temperature.

    A day counts when ≥ 90 % of its hours have energy; otherwise its energy is missing. Its
    mean temperature needs ≥ 75 % of the hours; otherwise it is missing.
    """
    ts = pd.to_datetime(df["timestamp"])
    d = pd.DataFrame({"date": ts.dt.normalize(), "energy": df["energy"], "temperature": df["temperature"]})
    g = d.groupby("date", sort=True)
    n_e = g["energy"].count()
    n_t = g["temperature"].count()
    out = pd.DataFrame(
        {
            "energy": g["energy"].sum() * 24.0 / n_e.where(n_e > 0),
            "temperature": g["temperature"].mean(),
        }
    )
    out.loc[n_e < HOURLY_DAY_COVERAGE * 24, "energy"] = np.nan
    out.loc[n_t < TEMPERATURE_DAY_COVERAGE * 24, "temperature"] = np.nan
    return out.reset_index()


def period_warnings(df: pd.DataFrame, period: Period, name: str) -> list[DataWarning]:
    """Data-sufficiency warnings for the daily rows (date, energy, temperature) of one period."""
    return sufficiency.check_days(
        dates=df["date"].to_numpy(dtype="datetime64[D]"),
        energy=df["energy"].to_numpy(dtype=float),
        temp=df["temperature"].to_numpy(dtype=float),
        start=np.datetime64(period.start),
        end=np.datetime64(period.end),
        period=name,
    )


def complete_days(df: pd.DataFrame, period: Period) -> pd.DataFrame:
    """One row per day of ``period`` (NaN where no data), time-ordered."""
    idx = pd.date_range(pd.Timestamp(period.start), pd.Timestamp(period.end), freq="D")
    d = df.set_index(pd.to_datetime(df["date"]))[[c for c in df.columns if c != "date"]]
    d = d[~d.index.duplicated(keep="last")].reindex(idx)
    d.index.name = "date"
    return d.reset_index()


@dataclass
class Outcome:
    """Everything the M&V of one baseline/reporting pair produced."""

    frequency: Frequency
    selection: Selection
    baseline_fit: FitResult
    baseline_obs: Observations
    warnings: list[DataWarning]
    labels: pd.DatetimeIndex
    series: SavingsSeries
    summary: SavingsSummary
    reporting_fit: FitResult | None = None
    normalised: NormalisedSavings | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    reporting_obs: Observations | None = None
    #: the rows the baseline was fitted on (kind, frame), for freezing
    baseline_rows: tuple[str, pd.DataFrame] | None = None

    @property
    def model(self) -> FittedModel:
        return self.baseline_fit.model

    def series_frame(self) -> pd.DataFrame:
        s = self.series
        return pd.DataFrame(
            {
                "period": self.labels,
                "actual": s.actual,
                "adjusted_baseline": s.adjusted_baseline,
                "adjustment": s.adjustments,
                "savings": s.savings,
                "cumulative_savings": s.cumulative,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        fr = self.baseline_fit
        st = fr.stats
        doc: dict[str, Any] = {
            "model": {
                "type": fr.model.type,
                "segmentation": SEGMENTATION if fr.model.type == "towt-monthly" else None,
                "day_type": fr.model.day_type,
                "label": fr.label,
                "frequency": self.frequency.value,
                "temperature_unit": "C",
                "parameters": fr.model.parameters(),
                "coefficients": [c.to_dict() for c in fr.coefficients if not c.name.startswith("tow_")],
                "selection_criterion": self.selection.criterion,
                "candidates": [c.to_dict() for c in self.selection.candidates],
                "saved": fr.model.to_dict(),
            },
            "baseline": {
                **st.to_dict(),
                "g14": fr.verdict.to_dict(),
                "g14_calibrated_simulation": (
                    fr.simulation_verdict.to_dict() if fr.simulation_verdict is not None else None
                ),
                "units": {"cvrmse": "%", "nmbe": "%"},
            },
            "savings": self.summary.to_dict(),
            "warnings": [w.to_dict() for w in self.warnings],
        }
        if self.normalised is not None:
            doc["normalised"] = self.normalised.to_dict()
        um = fr.uncertainty
        doc["uncertainty"] = {
            "method": self.summary.uncertainty_method,
            "description": self.summary.to_dict()["uncertainty_description"],
            "covers": UNCERTAINTY_SCOPE,
            "sided": "two-sided (central interval)",
            "levels": [round(c * 100) for c in CONFIDENCE_LEVELS],
            "autocorrelation": um.rho if um else None,
            "n_effective": um.n_effective if um else None,
            "dof": um.dof if um else None,
            "standard_error": self.summary.standard_error,
        }
        if self.reporting_fit is not None:
            rf = self.reporting_fit
            doc["reporting_model"] = {
                "label": rf.label,
                "parameters": rf.model.parameters(),
                **rf.stats.to_dict(),
                "qualified": rf.qualified,
                "reasons": rf.reasons,
                "g14": rf.verdict.to_dict(),
            }
        doc.update(self.extra)
        out: dict[str, Any] = _finite(doc)
        return out


def _finite(x: Any) -> Any:
    """JSON has no NaN/inf: map them to null."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, np.floating):
        return _finite(float(x))
    if isinstance(x, np.integer):
        return int(x)
    return x


def run(
    baseline: Observations,
    reporting: Observations,
    labels: pd.DatetimeIndex,
    warnings: list[DataWarning],
    *,
    model: str = "auto",
    day_type: bool | None = None,
    allow_insufficient: bool = False,
    adjustments: np.ndarray | None = None,
    adjustment_fractions: np.ndarray | None = None,
    normal: Observations | None = None,
    adjustment_uncertainty: list[tuple[np.ndarray, float]] | None = None,
    frozen: FittedModel | None = None,
    baseline_labels: pd.DatetimeIndex | None = None,
) -> Outcome:
    """Select and fit the baseline model, then compute savings (and normalised savings).

    Raises :class:`DegreesOfFreedomError` when the chosen model leaves n′ ≤ p."""
    sufficiency.require(warnings, allow_insufficient)
    warnings = list(warnings)
    reporting_months = float(np.nansum(reporting.days)) / 30.4375
    if frozen is not None:  # a frozen baseline: the stored model on the stored rows, no refit
        fr0 = evaluate(frozen, baseline.select(baseline.valid() & ~(baseline.energy < 0)), reporting_months)
        sel = Selection(chosen=fr0, candidates=[fr0], criterion="frozen baseline model (not refitted)")
    else:
        sel = select(baseline, model, day_type, reporting_months)
    fr = sel.chosen
    if fr.uncertainty is None:
        raise DegreesOfFreedomError(
            f"model {fr.label}: {'; '.join(fr.reasons) or 'n′ ≤ p'}; no savings uncertainty can be stated"
        )
    if not fr.qualified:
        warnings.append(
            DataWarning(
                "epcwatch.model.not_qualified",
                f"model {fr.label} does not qualify: {'; '.join(fr.reasons)}",
                {"reasons": fr.reasons},
            )
        )
    if not fr.verdict.passed:
        warnings.append(
            DataWarning(
                "epcwatch.model.g14_fail",
                f"baseline model fails ASHRAE Guideline 14 for {fr.verdict.frequency.value} data "
                f"(CV(RMSE) {fr.stats.cvrmse:.1f} % vs ≤ {fr.verdict.cvrmse_limit:g} %, "
                f"NMBE {fr.stats.nmbe:.2f} % vs ± {fr.verdict.nmbe_limit:g} %)",
                fr.verdict.to_dict(),
            )
        )
    series, summary = avoided_energy(
        fr.model,
        fr.stats,
        reporting,
        adjustments,
        adjustment_fractions,
        uncertainty=fr.uncertainty,
        adjustment_uncertainty=adjustment_uncertainty,
    )
    fsu68 = summary.fsu.get("68", math.inf)
    if not fsu68 < 0.5:
        warnings.append(
            DataWarning(
                "epcwatch.savings.uncertainty_too_high",
                f"savings uncertainty at 68 % confidence is {fsu68:.0%} of the savings; "
                "ASHRAE Guideline 14 asks for less than 50 %",
                {"fsu_68": fsu68 if math.isfinite(fsu68) else None},
            )
        )
    rep_fit: FitResult | None = None
    norm: NormalisedSavings | None = None
    if normal is not None:
        try:
            rsel = select(reporting, fr.model.type, fr.model.day_type, reporting_months)
            rep_fit = rsel.chosen
            warnings += reporting_model_warnings(rep_fit, reporting, normal)
            norm = normalised(
                fr.model,
                fr.stats,
                rep_fit.model,
                rep_fit.stats,
                normal,
                baseline_unc=fr.uncertainty,
                reporting_unc=rep_fit.uncertainty,
            )
        except ModelError as exc:
            warnings.append(
                DataWarning(
                    "epcwatch.savings.no_normalised",
                    f"normalised savings not computed: reporting-period model failed ({exc})",
                )
            )
    from epcwatch.savings.evidence import evidence

    ev = evidence(fr.model, baseline, baseline_labels, reporting)
    share = ev["temperature_range"].get("share_outside")
    if share is not None and share > 0.05:
        warnings.append(
            DataWarning(
                "epcwatch.savings.temperature_outside_baseline",
                f"{share:.0%} of the reporting periods lie outside the baseline's temperature range: "
                "the model extrapolates there",
                ev["temperature_range"],
            )
        )
    return Outcome(
        frequency=baseline.frequency,
        selection=sel,
        baseline_fit=fr,
        baseline_obs=baseline,
        warnings=warnings,
        labels=labels,
        series=series,
        summary=summary,
        reporting_fit=rep_fit,
        normalised=norm,
        reporting_obs=reporting,
        extra={"evidence": ev},
    )


def reporting_model_warnings(
    rf: FitResult, reporting: Observations, normal: Observations
) -> list[DataWarning]:
    """The checks a baseline model gets, applied to the reporting-period model of normalised
    savings: qualification, G14, a full year of data and the normal year's temperature range."""
    out: list[DataWarning] = []
    if not rf.qualified:
        out.append(
            DataWarning(
                "epcwatch.reporting_model.not_qualified",
                f"reporting-period model {rf.label} does not qualify: {'; '.join(rf.reasons)}",
                {"reasons": rf.reasons},
            )
        )
    if not rf.verdict.passed:
        out.append(
            DataWarning(
                "epcwatch.reporting_model.g14_fail",
                f"reporting-period model fails ASHRAE Guideline 14 (CV(RMSE) {rf.stats.cvrmse:.1f} % "
                f"vs ≤ {rf.verdict.cvrmse_limit:g} %)",
                rf.verdict.to_dict(),
            )
        )
    days = float(np.nansum(reporting.days[reporting.valid()]))
    if days < 365 * 0.9:
        out.append(
            DataWarning(
                "epcwatch.reporting_model.too_short",
                f"the reporting-period model rests on {days:.0f} valid days; normalised savings "
                "need a full year (≥ 90 % of 365 days)",
                {"days": days},
            )
        )
    t = reporting.temp[reporting.valid()]
    if len(t):
        lo, hi = float(np.min(t)), float(np.max(t))
        outside = float(np.mean((normal.temp < lo) | (normal.temp > hi)))
        if outside > 0.05:
            out.append(
                DataWarning(
                    "epcwatch.reporting_model.temperature_range",
                    f"{outside:.0%} of the normal year's days lie outside the reporting period's "
                    f"temperatures ({lo:.1f}–{hi:.1f} °C): the reporting model extrapolates there",
                    {"share": outside, "min": lo, "max": hi},
                )
            )
    return out


def refit_stats(model: FittedModel, obs: Observations) -> FitResult:
    """Statistics of a saved model on the data it was fitted on (for reloaded models)."""
    return evaluate(model, obs.select(obs.valid()))
