"""Working days in mainland China: weekends, public holidays and the weekend days worked in
exchange (调休), from the ``chinese-calendar`` package (the State Council's yearly notices).

Years the package does not cover fall back to Monday–Friday plus the fixed-date holidays
(New Year's Day, 1–3 May, 1–7 October), which keeps the simulator usable beyond its data.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import chinese_calendar

_FIXED = {(1, 1), (5, 1), (5, 2), (5, 3), *((10, d) for d in range(1, 8))}


@lru_cache(maxsize=8192)
def is_workday(day: dt.date) -> bool:
    """True if offices work on ``day``."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return day.weekday() < 5 and (day.month, day.day) not in _FIXED
