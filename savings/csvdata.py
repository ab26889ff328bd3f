"""Reading ``timestamp,energy,temperature`` CSV files for ``epcwatch savings fit``.

Rows may be hourly (or finer: summed to hours), daily or monthly; the frequency is taken from
the median spacing of timestamps. Timestamps are ISO 8601. Without a UTC offset they are the
site's local clock. With one offset throughout, the offset is dropped (the clock times are the
local ones). With offsets that change (daylight saving), the site's timezone must be given:
timestamps are converted to it, so days and hours of the week are the site's; without it the
file is refused rather than silently read in UTC.

Sub-hourly rows are summed to hours; an hour counts only when at least 90 % of its expected
readings are present (a quarter-hourly meter needs all four), otherwise its energy is missing.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from epcwatch.savings.errors import DataError
from epcwatch.savings.models import Frequency

COLUMNS = ("timestamp", "energy", "temperature")


SUBHOURLY_COVERAGE = 0.9


def _timestamps(raw: pd.Series, timezone: str | None = None) -> pd.Series:
    mixed = False
    try:
        ts = pd.to_datetime(raw, format="ISO8601")
    except (ValueError, TypeError):
        try:
            ts = pd.to_datetime(raw, format="ISO8601", utc=True)
            mixed = True
        except (ValueError, TypeError):
            bad = next((i for i, v in enumerate(raw) if pd.isna(pd.to_datetime(v, errors="coerce"))), None)
            where = f" (data row {bad + 1}: {raw.iloc[bad]!r})" if bad is not None else ""
            raise DataError(f"timestamps must be ISO 8601{where}") from None
    if ts.dt.tz is not None:
        if timezone is not None:
            try:
                ts = ts.dt.tz_convert(timezone).dt.tz_localize(None)
            except (KeyError, ValueError) as exc:
                raise DataError(f"unknown timezone {timezone!r} ({exc})") from None
        elif mixed:
            raise DataError(
                "timestamps carry different UTC offsets (daylight saving?); give the site's "
                "timezone (--timezone, e.g. Europe/Berlin) so days and hours are the site's"
            )
        else:
            ts = ts.dt.tz_localize(None)
    return ts


def read_csv(
    path: str | os.PathLike[str],
    temp_unit: str = "C",
    timezone: str | None = None,
    variables: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, Frequency]:
    """Load, validate and normalise a CSV; temperatures are returned in °C."""
    try:
        df = pd.read_csv(path, skipinitialspace=True, comment="#")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    df.columns = [str(c).strip().lower() for c in df.columns]
    missing = [c for c in (*COLUMNS, *variables) if c not in df.columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; expected header timestamp,energy,temperature"
        )
    if df.empty:
        raise DataError(f"{path}: no data rows")
    out = pd.DataFrame({"timestamp": _timestamps(df["timestamp"].astype(str), timezone)})
    for col in ("energy", "temperature", *variables):
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.notna().sum() == 0:
            raise DataError(f"{path}: column {col} has no numeric values")
        out[col] = vals.astype(float)
    if temp_unit.upper() == "F":
        out["temperature"] = (out["temperature"] - 32.0) / 1.8
    elif temp_unit.upper() != "C":
        raise DataError(f"temperature unit must be C or F, not {temp_unit!r}")
    out = out.sort_values("timestamp").drop_duplicates("timestamp", keep="last").reset_index(drop=True)
    if len(out) < 2:
        raise DataError(f"{path}: need at least two rows")
    step = out["timestamp"].diff().dropna().median()
    hours = float(pd.Timedelta(step).total_seconds()) / 3600.0
    if variables and hours < 24:
        raise DataError("independent variables (--variables) are supported on daily rows only")
    if hours <= 1.0:
        if hours < 1.0:  # sub-hourly rows: energy summed, temperature averaged per hour
            expected = max(1, round(1.0 / hours))
            h = out["timestamp"].dt.floor("h")
            out = (
                out.assign(timestamp=h)
                .groupby("timestamp", as_index=False)
                .agg(
                    energy=("energy", lambda s: s.sum(min_count=1)),
                    readings=("energy", "count"),
                    temperature=("temperature", "mean"),
                )
            )
            out.loc[out["readings"] < SUBHOURLY_COVERAGE * expected, "energy"] = np.nan
            out = out.drop(columns="readings")
        return out, Frequency.HOURLY
    if hours <= 48:
        out["timestamp"] = out["timestamp"].dt.normalize()
        out = out.drop_duplicates("timestamp", keep="last")
        return out.rename(columns={"timestamp": "date"}).reset_index(drop=True), Frequency.DAILY
    if 27 * 24 <= hours <= 32 * 24:
        return out, Frequency.MONTHLY
    raise DataError(f"{path}: rows are {hours:g} h apart; expected hourly, daily or monthly rows")


def in_period(ts: pd.Series, start: np.datetime64, end_inclusive: np.datetime64) -> np.ndarray:
    """Rows whose timestamp falls on the days START..END (END inclusive)."""
    t = pd.to_datetime(ts)
    lo = pd.Timestamp(start)
    hi = pd.Timestamp(end_inclusive) + pd.Timedelta(days=1)
    return np.asarray((t >= lo) & (t < hi))
