"""Data sufficiency as typed warnings (after CalTRACK and eemeter).

A warning has a qualified name, a description a person can act on, and the data behind it.
Disqualifying warnings make the baseline unusable unless the caller explicitly overrides:

- ``epcwatch.sufficiency.baseline_too_short``: the baseline period spans fewer than 365 days;
- ``epcwatch.sufficiency.too_few_valid_days``: fewer than 90 % of its days have both valid
  energy and valid temperature.

Informational ones, prefixed with the period (``baseline_`` or ``reporting_``):
``…_low_monthly_coverage`` (a calendar month below 90 %), ``…_negative_energy`` (days dropped as
invalid), ``…_extreme_energy`` (days beyond 3 IQR from the median; kept), and
``reporting_gaps`` (reporting days without data; savings cover valid days only).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from epcwatch.savings.errors import SavingsError

MIN_BASELINE_DAYS = 365
MIN_VALID_SHARE = 0.90


@dataclass(frozen=True)
class DataWarning:
    qualified_name: str
    description: str
    data: dict[str, Any] = field(default_factory=dict)
    disqualifying: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class InsufficientDataError(SavingsError, ValueError):
    """A disqualified baseline used without an override."""

    def __init__(self, warnings: list[DataWarning]) -> None:
        self.warnings = warnings
        super().__init__("; ".join(w.description for w in warnings if w.disqualifying))


def _days(start: np.datetime64, end: np.datetime64) -> int:
    return int((end - start).astype("timedelta64[D]").astype(np.int64)) + 1


def check_days(
    *,
    dates: NDArray[np.datetime64],
    energy: NDArray[np.float64],
    temp: NDArray[np.float64],
    start: np.datetime64,
    end: np.datetime64,
    period: str = "baseline",
) -> list[DataWarning]:
    """Check daily data of a period (``dates`` one per day with data; ``start``..``end`` inclusive)."""
    out: list[DataWarning] = []
    start, end = start.astype("datetime64[D]"), end.astype("datetime64[D]")
    span = _days(start, end)
    dates = dates.astype("datetime64[D]")
    inside = (dates >= start) & (dates <= end)
    dates, energy, temp = dates[inside], energy[inside], temp[inside]
    neg = np.isfinite(energy) & (energy < 0)
    if neg.any():
        out.append(
            DataWarning(
                f"epcwatch.sufficiency.{period}_negative_energy",
                f"{int(neg.sum())} {period} day(s) with negative energy were treated as missing",
                {"dates": [str(d) for d in dates[neg][:20]], "count": int(neg.sum())},
            )
        )
    e_ok = np.isfinite(energy) & ~neg
    t_ok = np.isfinite(temp)
    valid = e_ok & t_ok
    n_valid = len(np.unique(dates[valid]))
    share = n_valid / span if span > 0 else 0.0
    if period == "baseline" and span < MIN_BASELINE_DAYS:
        out.append(
            DataWarning(
                "epcwatch.sufficiency.baseline_too_short",
                f"baseline spans {span} days; at least {MIN_BASELINE_DAYS} (12 months) are required",
                {"days": span, "required": MIN_BASELINE_DAYS},
                disqualifying=True,
            )
        )
    if share < MIN_VALID_SHARE:
        data = {
            "valid_days": n_valid,
            "days": span,
            "share": round(share, 4),
            "days_without_energy": span - len(np.unique(dates[e_ok])),
            "days_without_temperature": span - len(np.unique(dates[t_ok])),
        }
        if period == "baseline":
            out.append(
                DataWarning(
                    "epcwatch.sufficiency.too_few_valid_days",
                    f"only {share:.1%} of baseline days have valid energy and temperature; "
                    f"{MIN_VALID_SHARE:.0%} are required",
                    data,
                    disqualifying=True,
                )
            )
        else:
            out.append(
                DataWarning(
                    f"epcwatch.sufficiency.{period}_gaps",
                    f"only {share:.1%} of {period} days have valid energy and temperature; "
                    "savings are computed over the valid days only",
                    data,
                )
            )
    months = np.arange(start.astype("datetime64[M]"), end.astype("datetime64[M]") + 1)
    low: dict[str, float] = {}
    vmonths = dates[valid].astype("datetime64[M]")
    for m in months:
        m_start = max(m.astype("datetime64[D]"), start)
        m_end = min((m + 1).astype("datetime64[D]") - 1, end)
        cov = int(np.count_nonzero(vmonths == m)) / _days(m_start, m_end)
        if cov < MIN_VALID_SHARE:
            low[str(m)] = round(cov, 4)
    if low:
        out.append(
            DataWarning(
                f"epcwatch.sufficiency.{period}_low_monthly_coverage",
                f"{len(low)} month(s) of the {period} have less than {MIN_VALID_SHARE:.0%} valid days",
                {"months": low},
            )
        )
    ev = energy[valid]
    if len(ev) >= 10:
        q1, med, q3 = np.percentile(ev, [25, 50, 75])
        iqr = q3 - q1
        far = valid & (np.abs(energy - med) > 3 * iqr) if iqr > 0 else np.zeros_like(valid)
        if far.any():
            out.append(
                DataWarning(
                    f"epcwatch.sufficiency.{period}_extreme_energy",
                    f"{int(far.sum())} {period} day(s) lie more than 3 IQR from the median "
                    "(kept; check them)",
                    {"dates": [str(d) for d in dates[far][:20]], "count": int(far.sum())},
                )
            )
    return out


def disqualified(warnings: list[DataWarning]) -> bool:
    return any(w.disqualifying for w in warnings)


def require(warnings: list[DataWarning], override: bool) -> None:
    """Raise :class:`InsufficientDataError` for a disqualified baseline unless ``override``."""
    if disqualified(warnings) and not override:
        raise InsufficientDataError(warnings)
