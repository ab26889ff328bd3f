"""``epcwatch savings fit``: baseline and savings from one CSV of energy and temperature.

Hourly rows are summed to days (a day counts with ≥ 90 % of its hours) and the daily
change-point / degree-day candidates are fitted, unless the TOWT model is asked for, which is
fitted on the hours themselves. Daily rows are used as they are, monthly rows as monthly
periods. Non-working days are Saturdays and Sundays, or China's official calendar with
``calendar="cn"`` (public holidays off, make-up weekend days on).
"""

from __future__ import annotations

import os
from datetime import timedelta

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
from epcwatch.savings.frozen import FrozenBaseline
from epcwatch.savings.models import HOURLY_TYPES, MODEL_TYPES, Frequency, Observations
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


def period_rows(
    df: pd.DataFrame, freq: Frequency, per: Period, hourly_model: bool, calendar: str
) -> pd.DataFrame:
    """The rows a model is fitted on or predicts, for one period: daily frames (one row per
    day, ``date``/``energy``/``temperature``/``nonworking``), hourly rows (``timestamp``,
    ``energy``, ``temperature``) for TOWT, or monthly rows."""
    if freq == Frequency.MONTHLY:
        return df[in_period(df["timestamp"], np.datetime64(per.start), np.datetime64(per.end))].reset_index(
            drop=True
        )
    if freq == Frequency.HOURLY and hourly_model:
        sel = df[in_period(df["timestamp"], np.datetime64(per.start), np.datetime64(per.end))]
        return sel.reset_index(drop=True)
    daily = hourly_to_daily(df) if freq == Frequency.HOURLY else df
    d = complete_days(daily, per)
    if calendar != "weekends":
        d["nonworking"] = ~np.array(workdays(d["date"].dt.date, calendar), dtype=bool)
    return d


def rows_kind(freq: Frequency, hourly_model: bool) -> str:
    if freq == Frequency.MONTHLY:
        return "monthly"
    return "hourly" if freq == Frequency.HOURLY and hourly_model else "daily"


def observations(
    kind: str, rows: pd.DataFrame, per: Period, calendar: str, variables: tuple[str, ...] = ()
) -> Observations:
    if kind == "monthly":
        return _monthly(rows, per)
    if kind == "hourly":
        return hourly_observations(rows, calendar)
    return daily_observations(rows, variables)


def _prepare(
    path: str | os.PathLike[str],
    model: str,
    *,
    calendar: str,
    temp_unit: str,
    timezone: str | None,
    variables: tuple[str, ...],
    periods: tuple[tuple[Period, str], ...],
) -> tuple[pd.DataFrame, Frequency, str, str]:
    """Check the options, read the CSV and check that it has rows in each named period:
    the frame, its frequency, its time column and the kind of rows a model takes."""
    if model != "auto" and model not in MODEL_TYPES:
        raise DataError(f"unknown model {model!r}; choose auto, {', '.join(MODEL_TYPES)}")
    if calendar not in CALENDARS:
        raise DataError(f"unknown calendar {calendar!r}; choose {', '.join(CALENDARS)}")
    df, freq = read_csv(path, temp_unit, timezone, variables)
    tcol = "date" if freq == Frequency.DAILY else "timestamp"
    for per, name in periods:
        if not _covers(df, tcol, per):
            first, last = df[tcol].iloc[0].date(), df[tcol].iloc[-1].date()
            raise DataError(f"no rows in the {name} period {per} (the file covers {first} to {last})")
    if model in HOURLY_TYPES and freq != Frequency.HOURLY:
        raise DataError(f"{model} needs hourly rows; this file has {freq.value} rows")
    return df, freq, tcol, rows_kind(freq, model in HOURLY_TYPES)


def _daily_for_warnings(df: pd.DataFrame, freq: Frequency, per: Period) -> pd.DataFrame:
    daily = hourly_to_daily(df) if freq == Frequency.HOURLY else df
    return complete_days(daily, per)


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
    frozen: FrozenBaseline | None = None,
    variables: tuple[str, ...] = (),
) -> Outcome:
    if baseline.start <= reporting.end and reporting.start <= baseline.end:
        raise DataError(f"baseline {baseline} and reporting {reporting} periods overlap")
    periods = ((reporting, "reporting"),) if frozen else ((baseline, "baseline"), (reporting, "reporting"))
    df, freq, tcol, kind = _prepare(
        path,
        model,
        calendar=calendar,
        temp_unit=temp_unit,
        timezone=timezone,
        variables=variables,
        periods=periods,
    )
    info.update(rows=len(df), input_frequency=freq.value, temperature_unit=temp_unit.upper())
    hourly_model = kind == "hourly"
    if frozen is not None and frozen.kind != kind:
        raise DataError(f"the frozen baseline holds {frozen.kind} rows; this file gives {kind} rows")
    rr = period_rows(df, freq, reporting, hourly_model, calendar)
    br = frozen.rows() if frozen is not None else period_rows(df, freq, baseline, hourly_model, calendar)
    warnings: list[DataWarning] = []
    if kind == "monthly":
        b = observations(kind, br, baseline, calendar)
        if len(b) < 12:
            warnings.append(
                DataWarning(
                    "epcwatch.sufficiency.baseline_too_short",
                    f"baseline has {len(b)} monthly rows; 12 are required",
                    {"months": len(b), "required": 12},
                    disqualifying=True,
                )
            )
        labels = pd.DatetimeIndex(rr["timestamp"])
        day_type = False
    else:
        bw = br if kind == "daily" else _daily_for_warnings(br, freq, baseline)
        rw = rr if kind == "daily" else _daily_for_warnings(df, freq, reporting)
        warnings = period_warnings(bw, baseline, "baseline") + period_warnings(rw, reporting, "reporting")
        labels = pd.DatetimeIndex(rr["timestamp" if kind == "hourly" else "date"])
    if frozen is not None:
        variables = tuple(frozen.model.extra.get("variables", ()))
    outcome = run(
        observations(kind, br, baseline, calendar, variables),
        observations(kind, rr, reporting, calendar, variables),
        labels,
        warnings,
        model=model,
        day_type=day_type,
        allow_insufficient=allow_insufficient,
        frozen=frozen.model if frozen is not None else None,
        baseline_labels=_labels(kind, br),
    )
    prior = Period(baseline.start - timedelta(days=365), baseline.start - timedelta(days=1))
    if _covers(df, tcol, prior) and pd.Timestamp(df[tcol].iloc[0]) <= pd.Timestamp(prior.start):
        from epcwatch.savings.evidence import placebo

        po = observations(
            kind, period_rows(df, freq, prior, hourly_model, calendar), prior, calendar, variables
        )
        outcome.extra["evidence"]["placebo"] = placebo(
            outcome.model, po, observations(kind, br, baseline, calendar, variables)
        )
    outcome.baseline_rows = (kind, br)
    if frozen is not None:
        current = (
            period_rows(df, freq, baseline, hourly_model, calendar) if _covers(df, tcol, baseline) else None
        )
        outcome.extra["frozen_baseline"] = frozen.describe(current)
    return outcome


def _labels(kind: str, rows: pd.DataFrame) -> pd.DatetimeIndex:
    col = "date" if kind == "daily" else "timestamp"
    return pd.DatetimeIndex(pd.to_datetime(rows[col]))


def _covers(df: pd.DataFrame, tcol: str, per: Period) -> bool:
    return bool(in_period(df[tcol], np.datetime64(per.start), np.datetime64(per.end)).any())


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
    frozen: FrozenBaseline | None = None,
    variables: tuple[str, ...] = (),
) -> Outcome:
    """Fit and compute savings from a CSV; the outcome's ``data`` block records what was read.

    ``calendar`` says which days are non-working: ``weekends`` (Saturdays and Sundays) or
    ``cn`` (China's official working-day calendar, public holidays and make-up days included).
    ``variables`` names extra CSV columns (daily rows) entering the change-point models linearly."""
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
        frozen=frozen,
        variables=tuple(variables),
    )
    outcome.extra["data"] = {**info, "baseline": str(baseline), "reporting": str(reporting)}
    outcome.extra.setdefault("frozen_baseline", {"loaded": False})
    return outcome


def freeze_csv(
    path: str | os.PathLike[str],
    baseline: Period,
    *,
    created: str,
    model: str = "auto",
    temp_unit: str = "C",
    day_type: bool | None = None,
    allow_insufficient: bool = False,
    timezone: str | None = None,
    calendar: str = "weekends",
    variables: tuple[str, ...] = (),
) -> FrozenBaseline:
    """Fit the baseline of a CSV and freeze it (rows, hashes, version, model); ``created`` is
    the sign-off time (passed in: the caller owns the clock)."""
    from epcwatch import __version__
    from epcwatch.savings import sufficiency
    from epcwatch.savings.frozen import freeze, sha256_file
    from epcwatch.savings.selection import select

    df, freq, _, kind = _prepare(
        path,
        model,
        calendar=calendar,
        temp_unit=temp_unit,
        timezone=timezone,
        variables=variables,
        periods=((baseline, "baseline"),),
    )
    br = period_rows(df, freq, baseline, kind == "hourly", calendar)
    if kind != "monthly":
        bw = br if kind == "daily" else _daily_for_warnings(br, freq, baseline)
        sufficiency.require(period_warnings(bw, baseline, "baseline"), allow_insufficient)
    obs = observations(kind, br, baseline, calendar, variables)
    sel = select(obs, model, False if kind == "monthly" else day_type)
    fr = sel.chosen
    return freeze(
        kind,
        br,
        fr.model,
        baseline=str(baseline),
        settings={
            "calendar": calendar,
            "timezone": timezone,
            "temperature_unit": temp_unit.upper(),
            "model": model,
        },
        created=created,
        software_version=__version__,
        input_sha256=sha256_file(str(path)),
        statistics={"label": fr.label, **fr.stats.to_dict(), "g14": fr.verdict.to_dict()},
    )
