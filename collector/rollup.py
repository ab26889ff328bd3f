"""Interval energy from cumulative counters (pure).

Input: the samples ``(ts_ms, value)`` of one counter of one device, in time order. Output: the
increase of the counter in each interval (15 minutes, or a day in the site's timezone) and the
share of the interval covered by readings.

The rules (documented in docs/collector.md, "Interval energy"):

1. **Steps.** Consecutive samples ``a`` (at ``t0``) and ``b`` (at ``t1``) form a step whose
   increase is decided from the pair alone, so recomputing any range gives the same result:

   - ``b >= a``: normal, increase ``b - a`` — unless it exceeds the plausibility bound
     ``max_rate_per_h × (t1 - t0)`` (a jump up: a replacement meter with a higher register, a
     corrupt read), then the increase is 0.
   - ``b < a`` and a **rollover** explains it: the register wrapped at a modulus ``M > a`` (the
     next power of ten above ``a`` when ``a >= 0.9 M`` — meter registers show a fixed number of
     digits and read 9… just before they wrap — or one of the configured moduli), and
     ``M - a + b`` is within the bound: increase ``M - a + b`` (the smallest such).
   - ``b < a`` otherwise: a **reset or meter replacement**. The new register counted up from
     zero, so ``b`` is what it measured since: increase ``b`` if within the bound, else 0
     (a replacement meter that started from an unknown reading: the step's energy is unknown
     and is not guessed).

   So an increase is never negative, and a step is never counted twice.
2. **Attribution.** A step's increase is spread linearly over ``[t0, t1)`` and each interval
   gets the share that overlaps it; the sum over intervals equals the sum over steps.
3. **Coverage.** The share of the interval's duration covered by steps no longer than
   ``max_gap_s`` (longer steps still deliver their energy, spread linearly, but do not count as
   coverage, so a dashboard can flag interpolated intervals).

Intervals are ``[start, end)``; days start at local midnight of the site's timezone (23 or
25 hours on DST changes). An interval is emitted when at least one step overlaps it.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Final
from zoneinfo import ZoneInfo

MS_PER_H: Final = 3_600_000
QUARTER_MS: Final = 15 * 60 * 1000


class Interval(StrEnum):
    QUARTER = "15m"
    DAY = "1d"


class StepKind(StrEnum):
    NORMAL = "normal"
    ROLLOVER = "rollover"
    RESET = "reset"
    IMPLAUSIBLE = "implausible"


@dataclass(frozen=True, slots=True)
class Rules:
    #: largest plausible increase per hour, in the counter's unit (kWh/h = average kW)
    max_rate_per_h: float = 100_000.0
    #: extra register moduli besides powers of ten (e.g. 2**32 × scale)
    moduli: tuple[float, ...] = ()
    #: steps longer than this do not count as coverage
    max_gap_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Step:
    t0: int
    t1: int
    increase: float
    kind: StepKind


@dataclass(frozen=True, slots=True)
class IntervalEnergy:
    start: int
    end: int
    increase: float
    coverage: float


def _next_power_of_ten(a: float) -> float:
    """The smallest power of ten strictly greater than ``a`` (a >= 0)."""
    if a < 1:
        return 1.0
    m = 10.0 ** math.floor(math.log10(a))
    while m <= a:
        m *= 10.0
    return m


def step_increase(a: float, b: float, dt_ms: int, rules: Rules) -> tuple[float, StepKind]:
    """The increase of one step, by the rules in the module docstring; never negative."""
    bound = rules.max_rate_per_h * max(dt_ms, 0) / MS_PER_H
    if b >= a:
        d = b - a
        return (d, StepKind.NORMAL) if d <= bound else (0.0, StepKind.IMPLAUSIBLE)
    if a >= 0:
        # a register about to wrap at a power of ten shows a leading 9 (a >= 0.9 M); without
        # that, 0.5 → 0.0 would read as a wrap at 1.0 instead of the reset it is
        p10 = _next_power_of_ten(a)
        candidates = sorted({*((p10,) if a >= 0.9 * p10 else ()), *(m for m in rules.moduli if m > a)})
        for m in candidates:
            w = m - a + b
            if 0 <= w <= bound:
                return w, StepKind.ROLLOVER
    if 0 <= b <= bound:
        return b, StepKind.RESET
    return 0.0, StepKind.IMPLAUSIBLE


def steps(samples: Sequence[tuple[int, float]], rules: Rules) -> list[Step]:
    """Steps between consecutive samples (samples must be sorted by time, unique times)."""
    out = []
    for (t0, a), (t1, b) in itertools.pairwise(samples):
        if t1 <= t0:
            raise ValueError("samples must be strictly increasing in time")
        inc, kind = step_increase(a, b, t1 - t0, rules)
        out.append(Step(t0, t1, inc, kind))
    return out


def quarter_bounds(t0: int, t1: int) -> Iterator[tuple[int, int]]:
    """15-minute intervals ``[s, s+15m)`` overlapping ``[t0, t1)`` (UTC-aligned; every timezone in
    use today has offsets in whole quarter hours)."""
    s = (t0 // QUARTER_MS) * QUARTER_MS
    while s < t1:
        yield s, s + QUARTER_MS
        s += QUARTER_MS


def _local_midnight_ms(d: date, tz: ZoneInfo) -> int:
    # midnight may not exist (DST gap at 00:00 in a few zones): fold to the first valid instant
    dt = datetime(d.year, d.month, d.day, tzinfo=tz)
    return int(dt.astimezone(UTC).timestamp() * 1000)


def day_bounds(t0: int, t1: int, tz: ZoneInfo) -> Iterator[tuple[int, int]]:
    """Local days ``[midnight, next midnight)`` of ``tz`` overlapping ``[t0, t1)``."""
    d = datetime.fromtimestamp(t0 / 1000, tz).date()
    while True:
        s = _local_midnight_ms(d, tz)
        e = _local_midnight_ms(d + timedelta(days=1), tz)
        if s >= t1:
            return
        if e > t0:
            yield s, e
        d += timedelta(days=1)


def bounds(interval: Interval, t0: int, t1: int, tz: ZoneInfo) -> Iterator[tuple[int, int]]:
    return quarter_bounds(t0, t1) if interval is Interval.QUARTER else day_bounds(t0, t1, tz)


def interval_energy(
    samples: Sequence[tuple[int, float]],
    interval: Interval,
    tz: ZoneInfo,
    rules: Rules = Rules(),
    *,
    start: int | None = None,
    end: int | None = None,
) -> list[IntervalEnergy]:
    """Energy per interval from ``samples``; only intervals with ``start <= s`` and
    ``e <= end`` are returned when bounds are given (they must be interval boundaries)."""
    acc: dict[tuple[int, int], list[float]] = {}
    gap_ms = rules.max_gap_s * 1000
    for st in steps(samples, rules):
        dt = st.t1 - st.t0
        for s, e in bounds(interval, st.t0, st.t1, tz):
            if (start is not None and s < start) or (end is not None and e > end):
                continue
            overlap = min(e, st.t1) - max(s, st.t0)
            if overlap <= 0:
                continue
            cell = acc.setdefault((s, e), [0.0, 0.0])
            cell[0] += st.increase * overlap / dt
            if dt <= gap_ms:
                cell[1] += overlap
    return [IntervalEnergy(s, e, inc, min(1.0, cov / (e - s))) for (s, e), (inc, cov) in sorted(acc.items())]


def edge_samples(times: Sequence[int], start: int, end: int) -> tuple[int, int] | None:
    """The timestamps of the samples an interval ``[start, end)``'s energy rests on: the last
    sample at or before its start and the first at or after its end (the nearest inside when the
    counter has none beyond an edge). ``times`` is sorted; ``None`` when no sample is near."""
    if not times:
        return None
    i = bisect.bisect_right(times, start) - 1  # last <= start
    j = bisect.bisect_left(times, end)  # first >= end
    first = times[i] if i >= 0 else times[0]
    last = times[j] if j < len(times) else times[-1]
    if first > end or last < start:
        return None
    return first, last


def align_range(interval: Interval, t0: int, t1: int, tz: ZoneInfo) -> tuple[int, int]:
    """Widen ``[t0, t1)`` to whole intervals."""
    bs = list(bounds(interval, t0, max(t1, t0 + 1), tz))
    return bs[0][0], bs[-1][1]
