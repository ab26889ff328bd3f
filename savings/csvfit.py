"""``epcwatch savings fit``: baseline and savings from one CSV of energy and temperature.

Hourly rows are summed to days (a day counts with ≥ 90 % of its hours) and the daily
change-point / degree-day candidates are fitted, unless the TOWT model is asked for, which is
fitted on the hours themselves. Daily rows are used as they are, monthly rows as monthly
periods. Non-working days are Saturdays and Sundays, or China's official calendar with
``calendar="cn"`` (public holidays off, make-up weekend days on).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from epcwatch.savings.calendar import CALENDARS, workdays
from epcwatch.savings.csvdata import in_period, read_csv
from epcwatch.savings.engine import (
    Outcome,
    Period,
    complete_days,
    daily_observations,
    hourly_observations,
    hourly_to_daily,
    period_warnings,
    run,
)
from epcwatch.savings.errors import DataError
from epcwatch.savings.models import MODEL_TYPES, Frequency, Observations
from epcwatch.savings.sufficiency import DataWarning


def _monthly(df: pd.DataFrame, period: Period) -> Observations:
    d = df[in_period(df["timestamp"], np.datetime64(period.start), np.datetime64(period.end))]
    ts = pd.to_datetime(d["timestamp"])
    days = np.asarray(ts.dt.days_in_month.to_numpy(), dtype=np.float64)
    return Observations(
        energy=d["energy"].to_numpy(dtype=float),
        temp=d["temperature"].to_numpy(dtype=float),
        frequency=Frequency.MONTHLY,
        days=days,
    )


def _fit(
    path: str | os.PathLike[str],
    baseline: Period,
    reporting: Period,
    *,
    model: str = "auto",
    temp_unit: str = "C",
    day_type: bool | None = None,
    allow_insufficient: bool = False,
    timezone: str | None = None,
    calendar: str = "weekends",
    info: dict[str, object],
) -> Outcome:
    if model != "auto" and model not in MODEL_TYPES:
        raise DataError(f"unknown model {model!r}; choose auto, {', '.join(MODEL_TYPES)}")
    if calendar not in CALENDARS:
        raise DataError(f"unknown calendar {calendar!r}; choose {', '.join(CALENDARS)}")
    if baseline.start <= reporting.end and reporting.start <= baseline.end:
        raise DataError(f"baseline {baseline} and reporting {reporting} periods overlap")
    df, freq = read_csv(path, temp_unit, timezone)
    info.update(rows=len(df), input_frequency=freq.value, temperature_unit=temp_unit.upper())
    tcol = "date" if freq == Frequency.DAILY else "timestamp"
    for per, name in ((baseline, "baseline"), (reporting, "reporting")):
        if not in_period(df[tcol], np.datetime64(per.start), np.datetime64(per.end)).any():
            first, last = df[tcol].iloc[0].date(), df[tcol].iloc[-1].date()
            raise DataError(f"no rows in the {name} period {per} (the file covers {first} to {last})")
    if freq == Frequency.MONTHLY:
        if model == "towt":
            raise DataError("towt needs hourly rows; this file has monthly rows")
        b, r = _monthly(df, baseline), _monthly(df, reporting)
        warnings: list[DataWarning] = []
        if len(b) < 12:
            warnings.append(
                DataWarning(
                    "epcwatch.sufficiency.baseline_too_short",
                    f"baseline has {len(b)} monthly rows; 12 are required",
                    {"months": len(b), "required": 12},
                    disqualifying=True,
                )
            )
        rep = df[in_period(df["timestamp"], np.datetime64(reporting.start), np.datetime64(reporting.end))]
        labels = pd.DatetimeIndex(rep["timestamp"])
        return run(b, r, labels, warnings, model=model, day_type=False, allow_insufficient=allow_insufficient)
    daily = hourly_to_daily(df) if freq == Frequency.HOURLY else df
    bd, rd = complete_days(daily, baseline), complete_days(daily, reporting)
    if calendar != "weekends":
        for frame in (bd, rd):
            frame["nonworking"] = ~np.array(workdays(frame["date"].dt.date, calendar), dtype=bool)
    warnings = period_warnings(bd, baseline, "baseline") + period_warnings(rd, reporting, "reporting")
    if freq == Frequency.HOURLY and model == "towt":

        def hours(per: Period) -> pd.DataFrame:
            sel = df[in_period(df["timestamp"], np.datetime64(per.start), np.datetime64(per.end))]
            return sel.reset_index(drop=True)

        bh, rh = hours(baseline), hours(reporting)
        labels = pd.DatetimeIndex(rh["timestamp"])
        return run(
            hourly_observations(bh, calendar),
            hourly_observations(rh, calendar),
            labels,
            warnings,
            model="towt",
            allow_insufficient=allow_insufficient,
        )
    if model == "towt":
        raise DataError("towt needs hourly rows; this file has daily rows")
    labels = pd.DatetimeIndex(rd["date"])
    return run(
        daily_observations(bd),
        daily_observations(rd),
        labels,
        warnings,
        model=model,
        day_type=day_type,
        allow_insufficient=allow_insufficient,
    )


def fit_csv(
    path: str | os.PathLike[str],
    baseline: Period,
    reporting: Period,
    *,
    model: str = "auto",
    temp_unit: str = "C",
    day_type: bool | None = None,
    allow_insufficient: bool = False,
    timezone: str | None = None,
    calendar: str = "weekends",
) -> Outcome:
    """Fit and compute savings from a CSV; the outcome's ``data`` block records what was read.

    ``calendar`` says which days are non-working: ``weekends`` (Saturdays and Sundays) or
    ``cn`` (China's official working-day calendar, public holidays and make-up days included)."""
    info: dict[str, object] = {"file": str(path)}
    outcome = _fit(
        path,
        baseline,
        reporting,
        model=model,
        temp_unit=temp_unit,
        day_type=day_type,
        allow_insufficient=allow_insufficient,
        timezone=timezone,
        calendar=calendar,
        info=info,
    )
    outcome.extra["data"] = {**info, "baseline": str(baseline), "reporting": str(reporting)}
    return outcome
