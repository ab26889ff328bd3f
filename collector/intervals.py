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
- The book survives restarts (:mod:`epcwatch.collector.interval_store`): each batch's
  :class:`Snapshot`, committed with the batch whose points it accounts for, carries what the
  batch changed in the cheaper of two forms: a **journal** of the readings it folded (their
  counters only; live traffic touches every series once or twice per batch) or a **delta**, the
  intervals and last samples it changed, copied (a batch of history steps through many intervals
  of few series). Every ``checkpoint_readings`` readings it carries the whole state instead,
  which replaces the changes before it. A restart restores the last checkpoint and applies the
  changes in order, replaying journals through the same code, so it reaches the state of one
  uninterrupted run. (Deltas alone cost more CPU than parsing in live traffic; journals alone
  write every reading of a history again.)

A series' key is its device measurement and tags, as the rollup groups them (``GROUP BY *``).
Several collectors splitting one site's messages (a shared subscription) each see a part of a
series; run at-ingest intervals with one collector per group or a broker with sticky shared
subscriptions, and keep the periodic rollup as the repair pass otherwise (docs/collector.md).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from zoneinfo import ZoneInfo

from epcwatch.collector.lineprotocol import point
from epcwatch.collector.rollup import (
    MS_PER_H,
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
    #: field → (increase, covered ms)
    sums: dict[str, Sequence[float]] = field(default_factory=dict)
    #: [first seq, last seq] of the readings at the interval's edges (the steps that overlap it),
    #: as the rollup writes them (``first_seq``, ``last_seq``): the verifier checks the energy
    #: against the signed counter readings there
    link: list[int] | None = None


CellKey = tuple[SeriesKey, str, int]  # (series, interval, start)
#: a reading as the book folded it: series, seq, ts, its counters' values (in the order of the
#: names that follow), the counters' names, linked. Only the counters are kept: the journal holds
#: a batch's readings until the batch is stored, and a reading's other values are not needed.
Entry = tuple[SeriesKey, int, int, Sequence[object], Sequence[str], bool]
#: value names → the counters among them, with their rules, and a getter of their values
_Names = tuple[list[str], list[tuple[str, Rules]], Callable[[Mapping[str, object]], tuple[object, ...]]]
#: the book's whole state: every counter's last sample, every interval in progress (copies)
State = tuple[dict[tuple[SeriesKey, str], Last], dict[CellKey, Cell]]


@dataclass
class Delta:
    """The state a batch changed, copied: the last samples of the series it stepped, and the
    intervals it touched (``None``: completed and dropped)."""

    last: dict[tuple[SeriesKey, str], Last] = field(default_factory=dict)
    cells: dict[CellKey, Cell | None] = field(default_factory=dict)


#: a batch's change, in the order of batches: its journal, or its delta
Change = list[Entry] | Delta


@dataclass
class Snapshot:
    """What to store with a batch: what it changed, in the smaller of two forms (the readings it
    folded, replayed on restart, or the state it changed, copied), the ranges to repair, and,
    when a checkpoint is due, the whole state (which replaces every change stored before it)."""

    journal: list[Entry] = field(default_factory=list)
    delta: Delta | None = None
    repairs: list[Repair] = field(default_factory=list)
    checkpoint: State | None = None

    def __bool__(self) -> bool:
        return bool(self.journal or self.delta or self.repairs or self.checkpoint is not None)


class _Series:
    """The book's state of one series: each counter's last sample and its intervals in progress."""

    __slots__ = ("cells", "day", "key", "last", "prefix", "quarter", "site")

    def __init__(self, key: SeriesKey, site: str | None) -> None:
        self.key = key
        self.site = site
        self.last: dict[str, Last] = {}
        self.cells: dict[tuple[str, int], _Open] = {}
        #: the quarter and the day the last step ended in, while they are open: most steps fall
        #: inside both (a poll every 15 s crosses a quarter's end once in 60 steps)
        self.quarter: _Open | None = None
        self.day: _Open | None = None
        #: interval → the series part of its ``energy_interval`` lines
        self.prefix: dict[str, str] = {}


class _Open:
    """An interval in progress (hashed by identity: the book's dirty sets hold the objects)."""

    __slots__ = ("end", "interval", "link", "series", "start", "stored", "sums")

    def __init__(self, series: _Series, interval: str, start: int, end: int) -> None:
        self.series = series
        self.interval = interval
        self.start = start
        self.end = end
        #: field → [increase, covered ms]
        self.sums: dict[str, list[float]] = {}
        self.link: list[int] | None = None
        #: it is in the stored state (a checkpoint, a delta or a journal's replay makes it)
        self.stored = False

    def key(self) -> CellKey:
        return (self.series.key, self.interval, self.start)

    def held(self) -> bool:
        """Still in its series' book (not completed and dropped)."""
        return self.series.cells.get((self.interval, self.start)) is self

    def cell(self) -> Cell:
        """A copy as plain state (the book goes on while a checkpoint is written)."""
        return Cell(
            self.end,
            {k: (v[0], v[1]) for k, v in self.sums.items()},
            None if self.link is None else list(self.link),
        )


class IntervalBook:
    def __init__(
        self,
        tz_of: Callable[[str | None], ZoneInfo],
        rules_for: Callable[[str], Rules],
        *,
        open_every_s: float = 60.0,
        checkpoint_readings: int = 100_000,
    ) -> None:
        self.tz_of = tz_of
        self.rules_for = rules_for
        self.open_every_s = open_every_s
        #: a snapshot carries the whole state once this many readings were journaled since the last
        #: one (what a restart replays at most)
        self.checkpoint_readings = checkpoint_readings
        self._by_key: dict[SeriesKey, _Series] = {}
        #: how callers name a series → its state: the line-protocol series key when the caller has
        #: it (the collector's fast path does), else (kind, *tags.items())
        self._by_ident: dict[object, _Series] = {}
        #: intervals changed since they were last emitted; those a step reached the end of (they
        #: may be complete: only such a step completes an interval)
        self._dirty_cells: set[_Open] = set()
        self._ripe: set[_Open] = set()
        #: value names → the counters among them, and with their rules
        self._names: dict[tuple[str, ...], _Names] = {}
        self._journal: list[Entry] = []
        self._journaled = 0  # readings folded since the last checkpoint
        #: intervals and series changed since the last snapshot (for a delta)
        self._touched: set[_Open] = set()
        self._dirty_last: set[_Series] = set()
        self._repairs: list[Repair] = []
        self._last_open_emit: float | None = None
        self._rules: dict[str, Rules] = {}
        self._day: dict[str, tuple[int, int]] = {}  # site → the local day last seen
        self.ignored = 0
        self.late = 0

    @property
    def last(self) -> dict[tuple[SeriesKey, str], Last]:
        """Every counter's last sample (a view for inspection; the book keeps them per series)."""
        return {(s.key, name): v for s in self._by_key.values() for name, v in s.last.items()}

    @property
    def cells(self) -> dict[CellKey, Cell]:
        """The intervals in progress, as plain state (copies)."""
        return {c.key(): c.cell() for s in self._by_key.values() for c in s.cells.values()}

    def state(self) -> State:
        """The whole state, copied (a checkpoint)."""
        last = {k: v for s in self._by_key.values() for k, v in _last_copies(s)}
        return last, self.cells

    def _series(self, kind: str, tags: Mapping[str, str | None], ident: str | None) -> _Series:
        src: object = ident if ident is not None else (kind, *tags.items())
        s = self._by_ident.get(src)
        if s is None:
            key = (kind, tuple(sorted((k, v) for k, v in tags.items() if v)))
            s = self._by_key.get(key)
            if s is None:
                s = self._by_key[key] = _Series(key, tags.get("site"))
            if len(self._by_ident) >= 1_000_000:  # names of series the slow path made: bounded
                self._by_ident.clear()
            self._by_ident[src] = s
        return s

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
        ident: str | None = None,
    ) -> None:
        """Fold one reading of a device (its kind and tags as written to InfluxDB) into the book.
        ``linked``: the reading is stored with its seq (signed), so the intervals its steps
        overlap keep their seq links, as the rollup finds them in the stored readings.
        ``ident``: the series' line-protocol key (``kind,k=v,…``) when the caller has it at hand;
        it names the same series as ``kind`` and ``tags`` and saves building a key per reading."""
        self.add_block(kind, tags, ({"seq": seq, "ts": ts, "values": values},), linked=linked, ident=ident)

    def add_block(
        self,
        kind: str,
        tags: Mapping[str, str | None],
        readings: Iterable[Mapping[str, Any]],
        *,
        linked: bool = True,
        ident: str | None = None,
    ) -> None:
        """Fold readings of one device in order (``seq``, ``ts``, ``values`` each: one message's
        block), exactly as :meth:`add` one by one. The series is found once, and the usual step
        (every counter stepping from the same time, inside one quarter and the open day: a poll's,
        or a history's) goes to :meth:`_step_inside`, without the general search."""
        s: _Series | None = None
        last: dict[str, Last] = {}
        names_of = self._names
        journal = self._journal
        block = readings if isinstance(readings, (list, tuple)) else list(readings)
        i = 0
        n = len(block)
        while i < n:
            r = block[i]
            i += 1
            values = r["values"]
            keys = tuple(values)
            got = names_of.get(keys)
            if got is None:
                names = [n for n in keys if n in COUNTERS]
                got = names_of[keys] = (names, [(n, self._rules_for(n)) for n in names], _getter(names))
            names, counters, counters_of = got
            if not names:
                continue
            if s is None:
                s = self._series(kind, tags, ident)
                last = s.last
            if s.day is not None:
                k = self._run(s, block, i - 1, got, linked)
                if k >= i:  # readings i-1 .. k-1 were the usual steps, folded
                    i = k
                    continue
            seq, ts = r["seq"], r["ts"]
            journal.append((s.key, seq, ts, counters_of(values), names, linked))
            steps: list[tuple[str, Rules, Last, float]] = []
            t0: int | None = -1  # the time all steps start at, or None: they start at different times
            for name, rules in counters:
                raw = values[name]
                if type(raw) is not float and type(raw) is not int:
                    continue
                value = float(raw)
                prev = last.get(name)
                if prev is None:
                    last[name] = Last(ts, value, seq)
                    self._dirty_last.add(s)
                elif ts > prev.ts:
                    steps.append((name, rules, prev, value))
                    if t0 != prev.ts:
                        t0 = prev.ts if len(steps) == 1 else None
                elif ts == prev.ts or seq <= prev.seq:
                    self.ignored += 1  # a redelivered reading, already counted
                else:
                    self.late += 1
                    self._late(s.site, ts)
            if not steps:
                continue
            link = seq if linked else None
            day = s.day
            if t0 is None:  # counters step from different times: each group on its own
                i = 0
                while i < len(steps):
                    t0 = steps[i][2].ts
                    j = i + 1
                    while j < len(steps) and steps[j][2].ts == t0:
                        j += 1
                    self._spread(s, t0, ts, steps[i:j], seq=link)
                    i = j
            elif (
                day is not None
                and day.start <= t0
                and ts <= day.end
                and ts <= t0 // QUARTER_MS * QUARTER_MS + QUARTER_MS
            ):
                self._step_inside(s, day, t0, ts, steps, seq=link)
            else:
                self._spread(s, t0, ts, steps, seq=link)
            for _, _, prev, value in steps:
                prev.ts, prev.value, prev.seq = ts, value, seq
            self._dirty_last.add(s)

    def _run(
        self,
        s: _Series,
        block: Sequence[Mapping[str, Any]],
        i: int,
        got: _Names,
        linked: bool,
    ) -> int:
        """Fold ``block[i:k]`` when each of them makes the usual step (every counter numeric and
        stepping from the time of the one before, inside one quarter and the open day), and
        return ``k``; ``i`` when ``block[i]`` does not. Counter by counter over the run rather
        than reading by reading: each (interval, field) sum still gets its steps in time order,
        by :meth:`_step_inside`'s expressions, so the floats are the same."""
        day = s.day
        assert day is not None
        names, counters, counters_of = got
        last = s.last
        prevs = []
        for name in names:
            prev = last.get(name)
            if prev is None:
                return i
            prevs.append(prev)
        t0 = prevs[0].ts
        lo = prevs[0].seq
        for prev in prevs:
            if prev.ts != t0:
                return i
            lo = min(lo, prev.seq)
        q0 = t0 // QUARTER_MS * QUARTER_MS
        qend = q0 + QUARTER_MS
        if t0 < day.start:
            return i
        end = min(qend, day.end)
        names_of = self._names
        times: list[int] = []
        rows: list[Mapping[str, object]] = []
        hi = -1
        t = t0
        k = i
        n = len(block)
        while k < n:
            r = block[k]
            ts = r["ts"]
            if not t < ts <= end:
                break
            values = r["values"]
            if names_of.get(tuple(values)) is not got:
                break
            ok = True
            for name in names:
                x = values[name]
                if type(x) is not float and type(x) is not int:
                    ok = False
                    break
            if not ok:
                break
            seq = r["seq"]
            self._journal.append((s.key, seq, ts, counters_of(values), names, linked))
            times.append(ts)
            rows.append(values)
            if seq < lo:  # noqa: PLR1730 - comparisons, not calls: this runs per reading
                lo = seq
            if seq > hi:  # noqa: PLR1730
                hi = seq
            t = ts
            k += 1
            if ts == qend:  # the next step starts in the next quarter
                break
        if k == i:
            return i
        quarter = _quarter_of(s, q0)
        qsums, dsums = quarter.sums, day.sums
        for (name, rules), prev in zip(counters, prevs, strict=True):
            rate = rules.max_rate_per_h
            gap = rules.max_gap_s * 1000
            qacc = qsums.get(name)
            if qacc is None:
                qacc = qsums[name] = [0.0, 0.0]
            dacc = dsums.get(name)
            if dacc is None:
                dacc = dsums[name] = [0.0, 0.0]
            a = prev.value
            t = t0
            for ts, values in zip(times, rows, strict=True):
                value = float(values[name])  # type: ignore[arg-type]  # checked above: a number
                dt = ts - t
                if value >= a:  # step_increase's common case, inlined (the same expressions)
                    up = value - a
                    inc = up if up <= rate * dt / MS_PER_H else 0.0
                else:
                    inc, _ = step_increase(a, value, dt, rules)
                part = inc * dt / dt
                qacc[0] += part
                dacc[0] += part
                if dt <= gap:
                    qacc[1] += dt
                    dacc[1] += dt
                a = value
                t = ts
            prev.ts, prev.value, prev.seq = t, a, seq
        if linked:
            _link(quarter, lo, hi)
            _link(day, lo, hi)
        self._stepped(quarter, day, t)
        self._dirty_last.add(s)
        return k

    def _step_inside(
        self,
        series: _Series,
        day: _Open,
        t0: int,
        t1: int,
        steps: list[tuple[str, Rules, Last, float]],
        *,
        seq: int | None,
    ) -> None:
        """The usual step ``t0`` → ``t1``: inside one quarter and the open ``day``, so it overlaps
        both whole (:meth:`_spread`'s expressions, in the same order for every interval, without
        its search)."""
        quarter = _quarter_of(series, t0 // QUARTER_MS * QUARTER_MS)
        dt = t1 - t0
        lo = seq
        both = (quarter.sums, day.sums)
        for name, rules, prev, value in steps:
            if lo is not None and prev.seq < lo:
                lo = prev.seq
            a = prev.value
            if value >= a:  # step_increase's common case, inlined (the same expressions)
                up = value - a
                inc = up if up <= rules.max_rate_per_h * max(dt, 0) / MS_PER_H else 0.0
            else:
                inc, _ = step_increase(a, value, dt, rules)
            part = inc * dt / dt
            covers = dt <= rules.max_gap_s * 1000
            for sums in both:
                acc = sums.get(name)
                if acc is None:
                    acc = sums[name] = [0.0, 0.0]
                acc[0] += part
                if covers:
                    acc[1] += dt
        if seq is not None and lo is not None:
            _link(quarter, lo, seq)
            _link(day, lo, seq)
        self._stepped(quarter, day, t1)

    def _stepped(self, quarter: _Open, day: _Open, t1: int) -> None:
        """Mark the quarter and the day a usual step ending at ``t1`` changed (and, when it
        reached the quarter's end, as possibly complete)."""
        self._dirty_cells.add(quarter)
        self._dirty_cells.add(day)
        self._touched.add(quarter)
        self._touched.add(day)
        if t1 == quarter.end:  # the step reached its end: the quarter may be complete
            self._ripe.add(quarter)
            if t1 == day.end:
                self._ripe.add(day)

    def _late(self, site: str | None, ts: int) -> None:
        # the day of the late reading and the day before (a step ending in it may start there)
        self._repairs.append(Repair(site or "", ts - DAY_MS, ts + DAY_MS))

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
        series: _Series,
        t0: int,
        t1: int,
        group: list[tuple[str, Rules, Last, float]],
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
        for name, rules, prev, value in group:
            if lo is not None and prev.seq < lo:
                lo = prev.seq
            incs.append((name, step_increase(prev.value, value, dt, rules)[0], dt <= rules.max_gap_s * 1000))
        dirty = self._dirty_cells
        s = (t0 // QUARTER_MS) * QUARTER_MS
        if t1 <= s + QUARTER_MS:  # the common case: a step inside one quarter
            spans: list[tuple[str, int, int]] = [(_QUARTER, s, s + QUARTER_MS)]
        else:
            spans = []
            while s < t1:
                spans.append((_QUARTER, s, s + QUARTER_MS))
                s += QUARTER_MS
        spans += [(_DAY, ds, de) for ds, de in self._days(series.site, t0, t1)]
        cells = series.cells
        for iv, s, e in spans:
            overlap = (e if e < t1 else t1) - (s if s > t0 else t0)
            if overlap <= 0:
                continue
            cell = cells.get((iv, s))
            if cell is None:
                cell = cells[(iv, s)] = _Open(series, iv, s, e)
            self._fold(cell, incs, overlap, dt, (lo, seq))
            dirty.add(cell)
            self._touched.add(cell)
            if e <= t1:
                self._ripe.add(cell)
            if iv == _QUARTER:
                series.quarter = cell
            else:
                series.day = cell

    @staticmethod
    def _fold(
        cell: _Open,
        incs: list[tuple[str, float, bool]],
        overlap: int,
        dt: int,
        seqs: tuple[int | None, int | None],
    ) -> None:
        """Add the part ``overlap`` of steps of length ``dt`` to a cell (the rollup's expression);
        ``seqs``: the lowest and highest seq at the steps' ends, or ``None`` (not linked)."""
        lo, seq = seqs
        if seq is not None and lo is not None:
            _link(cell, lo, seq)
        sums = cell.sums
        for name, inc, covers in incs:
            acc = sums.get(name)
            if acc is None:
                acc = sums[name] = [0.0, 0.0]
            acc[0] += inc * overlap / dt
            if covers:
                acc[1] += overlap

    # -- output ---------------------------------------------------------------------------------
    @staticmethod
    def _complete(cell: _Open) -> bool:
        last = cell.series.last
        for name in cell.sums:
            v = last.get(name)
            if v is None or v.ts < cell.end:
                return False
        return True

    def take(self, now_s: float, *, checkpoint: bool = False) -> tuple[list[str], Snapshot]:
        """``energy_interval`` lines of the intervals completed since the last call (and of the open
        ones that changed, at most every ``open_every_s``), and what to store with them: what
        changed since the last call (a journal or a delta, whichever is cheaper), and the whole
        state when a checkpoint is due (or asked for)."""
        emit_open = self._last_open_emit is None or now_s - self._last_open_emit >= self.open_every_s
        if emit_open:
            self._last_open_emit = now_s
        lines: list[str] = []
        dirty = self._dirty_cells
        # only a step that reached an interval's end can complete it: unless the open intervals
        # are due, those are the ones to look at
        for cell in dirty if emit_open else self._ripe:
            series = cell.series
            if self._complete(cell):
                if not cell.held():
                    continue  # completed and emitted already
                del series.cells[(cell.interval, cell.start)]
                if series.quarter is cell:
                    series.quarter = None
                elif series.day is cell:
                    series.day = None
            elif not emit_open:
                continue
            lines.append(self._line(cell))
            if not emit_open:
                dirty.discard(cell)
        if emit_open:
            self._dirty_cells = set()
        self._ripe = set()
        snap = Snapshot(repairs=self._repairs)
        journal, touched, dirty_last = self._journal, self._touched, self._dirty_last
        self._journal, self._repairs, self._touched, self._dirty_last = [], [], set(), set()
        self._journaled += len(journal)
        # the cheaper form: a delta copies each interval the batch left open or dropped from the
        # stored state, and each counter's last sample (a batch of history steps through many
        # intervals of few series); a journal each reading (live traffic touches every series
        # once or twice). A copy costs about three journaled readings.
        cells = [(c, held) for c in touched if (held := c.held()) or c.stored]
        if (len(cells) + sum(len(series.last) for series in dirty_last)) * 3 < len(journal):
            delta = snap.delta = Delta()
            for c, held in cells:
                delta.cells[c.key()] = c.cell() if held else None
                c.stored = held or c.stored
            for series in dirty_last:
                delta.last.update(_last_copies(series))
        else:
            snap.journal = journal
            for c in touched:  # a replay of the journal makes them
                c.stored = True
        if checkpoint or self._journaled >= self.checkpoint_readings:
            snap.checkpoint = self.state()
            self._journaled = 0
        return lines, snap

    def flush(self) -> tuple[list[str], Snapshot]:
        """Everything pending, open intervals included, with a checkpoint (on shutdown)."""
        self._last_open_emit = None
        return self.take(0.0, checkpoint=True)

    def _line(self, cell: _Open) -> str:
        """:func:`cell_line`, with the series part of the line built once per series."""
        series = cell.series
        iv = cell.interval
        prefix = series.prefix.get(iv)
        if prefix is None:
            prefix = series.prefix[iv] = series_key(
                ENERGY_INTERVAL, {**dict(series.key[1]), INTERVAL: iv}, checked=False
            )
        start = cell.start
        span = cell.end - start
        coverage = 1.0
        parts = []
        sums = cell.sums
        for name in sorted(sums):
            inc, cov = sums[name]
            parts.append(f"{name}={format_float(inc)}")
            coverage = min(coverage, 1.0, cov / span)
        parts.append(f"{COVERAGE}={format_float(coverage)}")
        if cell.link is not None:
            parts.append(f"first_seq={cell.link[0]}i,last_seq={cell.link[1]}i")
        return f"{prefix} {','.join(parts)} {start}"

    # -- state ----------------------------------------------------------------------------------
    def restore(
        self,
        last: Mapping[tuple[SeriesKey, str], Last],
        cells: Mapping[CellKey, Cell],
        changes: Iterable[Change] = (),
    ) -> None:
        """Start from a checkpoint, then apply the changes stored after it in order: a delta's
        copies as they are, a journal's readings folded as they were the first time. Open cells
        are emitted again at the next :meth:`take`."""
        self._by_key = {}
        self._by_ident = {}
        self._apply(Delta(dict(last), dict(cells)))
        for change in changes:
            if isinstance(change, Delta):
                self._apply(change)
                continue
            for (kind, tags), seq, ts, values, names, linked in change:
                self.add(kind, dict(tags), seq, ts, dict(zip(names, values, strict=True)), linked=linked)
        # what was replayed is stored already (its repairs too); the next checkpoint replaces it
        self._journaled = len(self._journal)
        self._journal, self._repairs, self._touched, self._dirty_last = [], [], set(), set()
        self.ignored = self.late = 0
        self._ripe = set()
        self._dirty_cells = set()
        for s in self._by_key.values():
            for cell in s.cells.values():
                cell.stored = True
                self._dirty_cells.add(cell)

    def _apply(self, delta: Delta) -> None:
        def series(key: SeriesKey) -> _Series:
            s = self._by_key.get(key)
            if s is None:
                s = self._by_key[key] = _Series(key, dict(key[1]).get("site"))
            return s

        for (key, name), v in delta.last.items():
            series(key).last[name] = Last(v.ts, v.value, v.seq)
        for (key, iv, start), c in delta.cells.items():
            s = series(key)
            s.quarter = s.day = None  # found again in the cells when a step needs them
            if c is None:
                s.cells.pop((iv, start), None)
                continue
            cell = s.cells[(iv, start)] = _Open(s, iv, start, c.end)
            cell.sums = {k: [float(v[0]), float(v[1])] for k, v in c.sums.items()}
            cell.link = None if c.link is None else list(c.link)


def _quarter_of(series: _Series, q0: int) -> _Open:
    """The series' quarter starting at ``q0`` (its current one, or found or opened)."""
    quarter = series.quarter
    if quarter is None or quarter.start != q0:
        quarter = series.cells.get((_QUARTER, q0))
        if quarter is None:
            quarter = series.cells[(_QUARTER, q0)] = _Open(series, _QUARTER, q0, q0 + QUARTER_MS)
        series.quarter = quarter
    return quarter


def _getter(names: Sequence[str]) -> Callable[[Mapping[str, object]], tuple[object, ...]]:
    """The values of ``names`` in a reading's values, as one tuple."""
    if len(names) > 1:
        return operator.itemgetter(*names)  # a tuple for 2+ names
    if not names:
        return lambda values: ()
    (name,) = names
    return lambda values: (values[name],)


def _link(cell: _Open, lo: int, hi: int) -> None:
    """Widen ``cell``'s seq link to ``lo``..``hi``."""
    link = cell.link
    if link is None:
        cell.link = [lo, hi]
        return
    # comparisons, not min()/max() calls: this runs twice per reading
    if lo < link[0]:  # noqa: PLR1730
        link[0] = lo
    if hi > link[1]:  # noqa: PLR1730
        link[1] = hi


def _last_copies(series: _Series) -> Iterator[tuple[tuple[SeriesKey, str], Last]]:
    """A series' last samples, copied (the book goes on while they are written)."""
    for name, v in series.last.items():
        yield (series.key, name), Last(v.ts, v.value, v.seq)


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
