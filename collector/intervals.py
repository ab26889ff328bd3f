"""Interval energy at ingest (pure): ``energy_interval`` points computed as readings arrive.

The rules are those of :mod:`epcwatch.collector.rollup` (same step function, same linear
attribution, same coverage), applied incrementally: the book keeps, per series and counter
field, the last sample, and per open interval the running sums. A reading after the last one
makes a step, spread over the 15-minute and daily intervals it overlaps, exactly as the rollup
does over a stored range, in the same order of additions, so the floats agree bit for bit.

- An interval is **complete** when every counter field in it has a sample at or after its end
  (no later step in time order can touch it): it is emitted once and dropped from the book.
- **Open** intervals (the current quarter and day) are emitted at most every ``open_every_s``
  with their running sums (a dashboard sees today's energy), and again when complete; points
  with the same series and start overwrite each other in InfluxDB.
- **Duplicates** (redelivery: same timestamp, or an older seq with an older timestamp) are
  ignored. A **late** reading (a newer seq with an older timestamp: the sender's clock went
  back) cannot be folded into sums already made, so it asks for a **repair**: the range is
  recomputed from InfluxDB by the rollup (see :class:`Repair`).
- The book's state is plain data (:meth:`IntervalBook.snapshot` / :meth:`restore`) so that it
  survives restarts (:mod:`epcwatch.collector.interval_store`), committed with the batch whose
  points it accounts for.

A series' key is its device measurement and tags, as the rollup groups them (``GROUP BY *``).
Several collectors splitting one site's messages (a shared subscription) each see a part of a
series; run at-ingest intervals with one collector per group or a broker with sticky shared
subscriptions, and keep the periodic rollup as the repair pass otherwise (docs/collector.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo

from epcwatch.collector.lineprotocol import point
from epcwatch.collector.rollup import (
    QUARTER_MS,
    Interval,
    Rules,
    day_bounds,
    step_increase,
)
from epcwatch.influx.lineprotocol import format_float, series_key
from epcwatch.influx.schema import COVERAGE, ENERGY_INTERVAL, INTERVAL
from epcwatch.measurements import VOCABULARY, FieldType, Kind

COUNTERS: Final = frozenset(
    n for n, m in VOCABULARY.items() if m.kind is Kind.COUNTER and m.field_type is not FieldType.BOOL
)
DAY_MS: Final = 86_400_000
_QUARTER: Final = Interval.QUARTER.value
_DAY: Final = Interval.DAY.value

#: the tags of a series, sorted, empty ones left out (as the rollup reads them back)
TagKey = tuple[tuple[str, str], ...]
#: (device measurement, tags)
SeriesKey = tuple[str, TagKey]


@dataclass(frozen=True, slots=True)
class Repair:
    """A range of one site whose intervals must be recomputed from the stored readings."""

    site: str
    t0: int
    t1: int


@dataclass(slots=True)
class Last:
    ts: int
    value: float
    seq: int


@dataclass(slots=True)
class Cell:
    end: int
    #: field → [increase, covered ms]
    sums: dict[str, list[float]] = field(default_factory=dict)
    #: [first seq, last seq] of the readings at the interval's edges (the steps that overlap it),
    #: as the rollup writes them (``first_seq``, ``last_seq``): the verifier checks the energy
    #: against the signed counter readings there
    link: list[int] | None = None

    def copy(self) -> Cell:
        link = None if self.link is None else list(self.link)
        return Cell(self.end, {k: list(v) for k, v in self.sums.items()}, link)


CellKey = tuple[SeriesKey, str, int]  # (series, interval, start)


@dataclass
class Snapshot:
    """What changed since the previous snapshot: rows to store (``None``: delete)."""

    last: dict[tuple[SeriesKey, str], Last | None] = field(default_factory=dict)
    cells: dict[CellKey, Cell | None] = field(default_factory=dict)
    repairs: list[Repair] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.last or self.cells or self.repairs)


class IntervalBook:
    def __init__(
        self,
        tz_of: Callable[[str | None], ZoneInfo],
        rules_for: Callable[[str], Rules],
        *,
        open_every_s: float = 60.0,
    ) -> None:
        self.tz_of = tz_of
        self.rules_for = rules_for
        self.open_every_s = open_every_s
        self.last: dict[tuple[SeriesKey, str], Last] = {}
        self.cells: dict[CellKey, Cell] = {}
        #: cells changed since they were last emitted, and since the last snapshot
        self._dirty_cells: set[CellKey] = set()
        self._touched: set[CellKey] = set()
        #: open cells whose sums went into a snapshot (the state holds them until they complete);
        #: a cell opened and completed between two snapshots is never stored, nor deleted
        self._stored: set[CellKey] = set()
        self._dirty_last: set[tuple[SeriesKey, str]] = set()
        self._names: dict[tuple[str, ...], list[str]] = {}  # value names → the counters among them
        self._changed = Snapshot()
        self._last_open_emit: float | None = None
        self._rules: dict[str, Rules] = {}
        self._day: dict[str, tuple[int, int]] = {}  # site → the local day last seen
        self._series: dict[tuple[object, ...], SeriesKey] = {}  # (kind, *tags.items()) → key
        self._prefix: dict[tuple[TagKey, str], str] = {}  # line prefix per series and interval
        self.ignored = 0
        self.late = 0

    # -- intake ---------------------------------------------------------------------------------
    def add(
        self,
        kind: str,
        tags: Mapping[str, str | None],
        seq: int,
        ts: int,
        values: Mapping[str, object],
        *,
        linked: bool = True,
    ) -> None:
        """Fold one reading of a device (its kind and tags as written to InfluxDB) into the book.
        ``linked``: the reading is stored with its seq (signed), so the intervals its steps
        overlap keep their seq links, as the rollup finds them in the stored readings."""
        keys = tuple(values)
        names = self._names.get(keys)
        if names is None:
            names = self._names[keys] = [n for n in keys if n in COUNTERS]
        if not names:
            return
        src = (kind, *tags.items())
        series = self._series.get(src)
        if series is None:
            series = self._series[src] = (kind, tuple(sorted((k, v) for k, v in tags.items() if v)))
        site = tags.get("site")
        last = self.last
        steps: list[tuple[str, Last, float]] = []
        for name in names:
            raw = values[name]
            if type(raw) is not float and type(raw) is not int:
                continue
            value = float(raw)
            key = (series, name)
            prev = last.get(key)
            if prev is None:
                last[key] = Last(ts, value, seq)
                self._dirty_last.add(key)
            elif ts > prev.ts:
                steps.append((name, prev, value))
            elif ts == prev.ts or seq <= prev.seq:
                self.ignored += 1  # a redelivered reading, already counted
            else:
                self.late += 1
                self._late(site, ts)
        if not steps:
            return
        # the counters of a reading usually share their previous time: spread them together
        i = 0
        while i < len(steps):
            t0 = steps[i][1].ts
            j = i + 1
            while j < len(steps) and steps[j][1].ts == t0:
                j += 1
            self._spread(series, site, t0, ts, steps[i:j], seq=seq if linked else None)
            i = j
        for name, prev, value in steps:
            prev.ts, prev.value, prev.seq = ts, value, seq
            self._dirty_last.add((series, name))

    def _late(self, site: str | None, ts: int) -> None:
        # the day of the late reading and the day before (a step ending in it may start there)
        self._changed.repairs.append(Repair(site or "", ts - DAY_MS, ts + DAY_MS))

    def _rules_for(self, name: str) -> Rules:
        r = self._rules.get(name)
        if r is None:
            r = self._rules[name] = self.rules_for(name)
        return r

    def _days(self, site: str | None, t0: int, t1: int) -> Iterable[tuple[int, int]]:
        day = self._day.get(site or "")
        if day is not None and day[0] <= t0 and t1 <= day[1]:
            return (day,)
        out = list(day_bounds(t0, t1, self.tz_of(site)))
        self._day[site or ""] = out[-1]
        return out

    def _spread(
        self,
        series: SeriesKey,
        site: str | None,
        t0: int,
        t1: int,
        group: list[tuple[str, Last, float]],
        *,
        seq: int | None,
    ) -> None:
        """Spread the steps ``t0`` → ``t1`` (ending at the reading ``seq``) of some counters over
        the intervals they overlap, as the rollup does (the same expression, in the same order for
        every counter); each interval keeps the lowest and highest seq of the steps' ends (unless
        ``seq`` is ``None``: an unsigned reading, stored without its seq)."""
        dt = t1 - t0
        incs = []
        lo = seq
        for name, prev, value in group:
            if lo is not None:
                lo = min(lo, prev.seq)
            rules = self._rules_for(name)
            inc, _ = step_increase(prev.value, value, dt, rules)
            incs.append((name, inc, dt <= rules.max_gap_s * 1000))
        s = (t0 // QUARTER_MS) * QUARTER_MS
        if t1 <= s + QUARTER_MS:  # the common case: a step inside one quarter
            spans: list[tuple[str, int, int]] = [(_QUARTER, s, s + QUARTER_MS)]
        else:
            spans = []
            while s < t1:
                spans.append((_QUARTER, s, s + QUARTER_MS))
                s += QUARTER_MS
        spans += [(_DAY, ds, de) for ds, de in self._days(site, t0, t1)]
        cells = self.cells
        for iv, s, e in spans:
            overlap = min(e, t1) - max(s, t0)
            if overlap <= 0:
                continue
            key = (series, iv, s)
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = Cell(e)
            if seq is not None and lo is not None:
                link = cell.link
                if link is None:
                    cell.link = [lo, seq]
                else:
                    link[0] = min(link[0], lo)
                    link[1] = max(link[1], seq)
            sums = cell.sums
            for name, inc, covers in incs:
                acc = sums.get(name)
                if acc is None:
                    acc = sums[name] = [0.0, 0.0]
                acc[0] += inc * overlap / dt
                if covers:
                    acc[1] += overlap
            self._dirty_cells.add(key)
            self._touched.add(key)

    # -- output ---------------------------------------------------------------------------------
    def complete(self, key: CellKey) -> bool:
        cell = self.cells[key]
        series = key[0]
        for name in cell.sums:
            last = self.last.get((series, name))
            if last is None or last.ts < cell.end:
                return False
        return True

    def take(self, now_s: float) -> tuple[list[str], Snapshot]:
        """``energy_interval`` lines of the intervals completed since the last call (and of the open
        ones that changed, at most every ``open_every_s``), and the state changes to store with
        them."""
        emit_open = self._last_open_emit is None or now_s - self._last_open_emit >= self.open_every_s
        if emit_open:
            self._last_open_emit = now_s
        lines: list[str] = []
        keep: set[CellKey] = set()
        for key in self._dirty_cells:
            if self.complete(key):
                cell = self.cells.pop(key)
                if key in self._stored:
                    self._stored.discard(key)
                    self._changed.cells[key] = None
            elif emit_open:
                cell = self.cells[key]
            else:
                keep.add(key)
                continue
            lines.append(self.line(key, cell))
        self._dirty_cells = keep
        for key in self._touched:  # the running sums are stored whether emitted or not
            open_cell = self.cells.get(key)
            if open_cell is not None:
                self._changed.cells[key] = open_cell.copy()
                self._stored.add(key)
        self._touched = set()
        for k in self._dirty_last:  # copies: the book goes on while the batch is written
            v = self.last[k]
            self._changed.last[k] = Last(v.ts, v.value, v.seq)
        self._dirty_last = set()
        snap, self._changed = self._changed, Snapshot()
        return lines, snap

    def flush(self) -> tuple[list[str], Snapshot]:
        """Everything pending, open intervals included (on shutdown)."""
        self._last_open_emit = None
        return self.take(0.0)

    def line(self, key: CellKey, cell: Cell) -> str:
        """:func:`cell_line`, with the series part of the line built once per series."""
        (_, tag_key), iv, start = key
        prefix = self._prefix.get((tag_key, iv))
        if prefix is None:
            prefix = self._prefix[(tag_key, iv)] = series_key(
                ENERGY_INTERVAL, {**dict(tag_key), INTERVAL: iv}, checked=False
            )
        span = cell.end - start
        coverage = 1.0
        parts = []
        for name in sorted(cell.sums):
            inc, cov = cell.sums[name]
            parts.append(f"{name}={format_float(inc)}")
            coverage = min(coverage, 1.0, cov / span)
        parts.append(f"{COVERAGE}={format_float(coverage)}")
        if cell.link is not None:
            parts.append(f"first_seq={cell.link[0]}i,last_seq={cell.link[1]}i")
        return f"{prefix} {','.join(parts)} {start}"

    # -- state ----------------------------------------------------------------------------------
    def restore(self, last: Mapping[tuple[SeriesKey, str], Last], cells: Mapping[CellKey, Cell]) -> None:
        """Start from stored state; open cells are emitted again at the next :meth:`take`."""
        self.last = {k: Last(v.ts, v.value, v.seq) for k, v in last.items()}
        self.cells = {k: c.copy() for k, c in cells.items()}
        self._dirty_cells = set(self.cells)
        self._stored = set(self.cells)


def cell_line(key: CellKey, cell: Cell) -> str | None:
    """The ``energy_interval`` point of a cell, formatted as :func:`rollup_job.interval_lines`
    formats it (fields sorted, then ``coverage``, the smallest of the fields' coverages); the
    reference for :meth:`IntervalBook.line`."""
    (_, tag_key), iv, start = key
    span = cell.end - start
    values: dict[str, float | None] = {}
    coverage = 1.0
    for name in sorted(cell.sums):
        inc, cov = cell.sums[name]
        values[name] = inc
        coverage = min(coverage, 1.0, cov / span)
    tags: dict[str, str | None] = dict(tag_key)
    tags["interval"] = iv
    link = {} if cell.link is None else {"first_seq": cell.link[0], "last_seq": cell.link[1]}
    return point("energy_interval", tags, {**values, "coverage": coverage, **link}, start)
