"""Working days: China's official calendar (public holidays and the weekend days worked in
exchange, 调休) from the ``chinese-calendar`` package, or plain weekends.

Years the package does not cover fall back to Monday–Friday minus the fixed-date holidays
(New Year's Day, 1–3 May, 1–7 October).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache

import chinese_calendar

_FIXED = {(1, 1), (5, 1), (5, 2), (5, 3), *((10, d) for d in range(1, 8))}
CALENDARS = ("weekends", "cn")


@lru_cache(maxsize=16384)
def is_workday_cn(day: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5 and (day.month, day.day) not in _FIXED


def workdays(days: Iterable[dt.date], calendar: str = "cn") -> list[bool]:
    """Whether offices work on each day under ``calendar`` (``cn`` or ``weekends``)."""
    if calendar == "weekends":
        return [d.weekday() < 5 for d in days]
    if calendar == "cn":
        return [is_workday_cn(d) for d in days]
    raise ValueError(f"unknown calendar {calendar!r}; choose {', '.join(CALENDARS)}")
