"""The simulator's time grid: one-minute steps on UTC epoch minutes, with each step's site-local
calendar (day, time of day, day of year, working day).

Power is constant within a step, so energy is an exact sum of ``power x 60 s`` and a counter at
any instant is that sum plus the running step's share. Site-local days (the M&V and rollup day)
start at local midnight, which is always a step boundary.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from epcwatch.sim.workdays import is_workday

STEP_S: Final = 60
STEPS_PER_HOUR: Final = 3600 // STEP_S
_EPOCH_ORDINAL: Final = dt.date(1970, 1, 1).toordinal()

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class TimeGrid:
    """Calendar arrays of a set of steps (all arrays have one element per step)."""

    k: I64  #: step index = epoch minute (UTC)
    t: F64  #: epoch seconds of the step's middle (weather and schedules are evaluated there)
    local_day: I64  #: site-local day number (days since 1970-01-01 in the local calendar)
    tod_h: F64  #: site-local time of day in hours, at the step's middle
    doy: F64  #: site-local day of year with the time-of-day fraction (1.0 = 1 Jan 00:00)
    workday: B  #: offices work on this local day

    def __len__(self) -> int:
        return int(self.k.shape[0])


def day_number(day: dt.date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def date_of(day_number: int) -> dt.date:
    return dt.date.fromordinal(int(day_number) + _EPOCH_ORDINAL)


def local_midnight(day: dt.date, tz: ZoneInfo) -> int:
    """Epoch seconds of local midnight starting ``day``."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


def day_steps(first: dt.date, last: dt.date, tz: ZoneInfo) -> tuple[int, int]:
    """Step range ``[k0, k1)`` covering the local days ``first``..``last`` inclusive."""
    k0 = local_midnight(first, tz) // STEP_S
    k1 = local_midnight(last + dt.timedelta(days=1), tz) // STEP_S
    return k0, k1


def _utc_offsets(k: I64, tz: ZoneInfo) -> I64:
    """UTC offset in seconds of each step, looked up once per distinct hour."""
    hours = k // STEPS_PER_HOUR
    lo, hi = int(hours.min()), int(hours.max())
    off_lo = _offset(lo, tz)
    if off_lo == _offset(hi, tz) and _fixed_between(lo, hi, tz):
        return np.full(k.shape, off_lo, dtype=np.int64)
    uniq, inv = np.unique(hours, return_inverse=True)
    table = np.array([_offset(int(h), tz) for h in uniq], dtype=np.int64)
    out: I64 = table[inv]
    return out


def _offset(hour: int, tz: ZoneInfo) -> int:
    off = dt.datetime.fromtimestamp(hour * 3600, dt.UTC).astimezone(tz).utcoffset()
    return int(off.total_seconds()) if off is not None else 0


def _fixed_between(lo_hour: int, hi_hour: int, tz: ZoneInfo) -> bool:
    """True when the zone has the same offset at every day boundary of the range (no DST)."""
    base = _offset(lo_hour, tz)
    return all(_offset(h, tz) == base for h in range(lo_hour, hi_hour + 1, 24 * 7))


def grid(k: I64, tz: ZoneInfo) -> TimeGrid:
    """Calendar of steps ``k`` (any shape-(n,) int64 array, n >= 1) in zone ``tz``."""
    k = np.asarray(k, dtype=np.int64)
    start = k * STEP_S
    local = start + _utc_offsets(k, tz)
    local_day = local // 86400
    tod_h = (local - local_day * 86400 + STEP_S / 2) / 3600.0
    days, inv = np.unique(local_day, return_inverse=True)
    dates = [date_of(int(d)) for d in days]
    doy0 = np.array([d.timetuple().tm_yday for d in dates], dtype=np.float64)[inv]
    work = np.array([is_workday(d) for d in dates], dtype=np.bool_)[inv]
    return TimeGrid(
        k=k,
        t=(start + STEP_S / 2).astype(np.float64),
        local_day=local_day,
        tod_h=tod_h,
        doy=doy0 + tod_h / 24.0,
        workday=work,
    )
