"""Reporting periods: a month, a quarter or a year, in the institution's local time (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from epcwatch.reporting.errors import PeriodError

PeriodKind = Literal["month", "quarter", "year"]
_RE = re.compile(r"^(\d{4})(?:-(?:(\d{2})|Q([1-4])))?$")


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """``2025`` (year), ``2025-Q3`` (quarter) or ``2025-03`` (month)."""

    year: int
    kind: PeriodKind = "year"
    index: int = 1  # month 1-12 or quarter 1-4; 1 for a year

    @property
    def label(self) -> str:
        if self.kind == "year":
            return f"{self.year:04d}"
        if self.kind == "quarter":
            return f"{self.year:04d}-Q{self.index}"
        return f"{self.year:04d}-{self.index:02d}"

    def start(self) -> date:
        if self.kind == "year":
            return date(self.year, 1, 1)
        if self.kind == "quarter":
            return date(self.year, 3 * (self.index - 1) + 1, 1)
        return date(self.year, self.index, 1)

    def end(self) -> date:
        """The first day after the period."""
        if self.kind == "year":
            return date(self.year + 1, 1, 1)
        last_month = self.index * 3 if self.kind == "quarter" else self.index
        return date(self.year + (last_month == 12), last_month % 12 + 1, 1)

    def days(self) -> int:
        return (self.end() - self.start()).days

    def last_year(self) -> Period:
        return Period(self.year - 1, self.kind, self.index)

    def contains(self, other: Period) -> bool:
        """Whether ``other`` lies inside this period (a month inside its quarter and year)."""
        return self.start() <= other.start() and other.end() <= self.end()

    def window_ms(self, timezone: str) -> tuple[int, int]:
        """``[start, end)`` in epoch ms, at local midnight of ``timezone``."""
        tz = ZoneInfo(timezone)

        def ms(d: date) -> int:
            return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() * 1000)

        return ms(self.start()), ms(self.end())


def parse_period(text: str) -> Period:
    m = _RE.match(text.strip())
    if not m:
        raise PeriodError(f"period {text!r}: use YYYY, YYYY-Qn or YYYY-MM")
    year = int(m.group(1))
    if m.group(2):
        month = int(m.group(2))
        if not 1 <= month <= 12:
            raise PeriodError(f"period {text!r}: month must be 01-12")
        return Period(year, "month", month)
    if m.group(3):
        return Period(year, "quarter", int(m.group(3)))
    return Period(year)
