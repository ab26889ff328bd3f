"""Interval energy at ingest equals the rollup's: same points, bit for bit (the seq links to the
readings at each interval's edges included), whatever the order in which series interleave, with
resets, rollovers, replaced meters, gaps and redeliveries."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcwatch.collector.intervals import Change, Delta, IntervalBook, Snapshot, State
from epcwatch.collector.rollup import Interval, Rules
from epcwatch.collector.rollup_job import COUNTERS, RollupSettings, SeriesKey, interval_lines

TZ = "Asia/Shanghai"
SETTINGS = RollupSettings(timezones={"s1": TZ, "civic-centre": TZ}, default_timezone="UTC",
                          rules=Rules(max_rate_per_h=5_000.0, moduli=(65_536.0,), max_gap_s=3600.0),
                          max_rate_by_field={"run_hours": 1.5})  # fmt: skip
T0 = 1_735_660_800_000  # 2024-12-31T16:00Z = 2025-01-01 00:00 in Shanghai


def book(checkpoint_readings: int = 100_000) -> IntervalBook:
    return IntervalBook(
        SETTINGS.tz, SETTINGS.rules_for, open_every_s=60.0, checkpoint_readings=checkpoint_readings
    )


Reading = tuple[str, dict[str, str], int, int, dict[str, Any]]  # kind, tags, seq, ts, values


def ingest(readings: list[Reading], b: IntervalBook | None = None, clock_step: float = 7.0) -> dict[str, str]:
    """Feed readings into a book, collecting the points it emits; the last one of each series and
    time wins, as in InfluxDB."""
    b = b or book()
    out: dict[str, str] = {}
    now = 0.0
    for i, (kind, tags, seq, ts, values) in enumerate(readings):
        b.add(kind, tags, seq, ts, values)
        if i % 50 == 0:
            now += clock_step
            _collect(b.take(now)[0], out)
    _collect(b.flush()[0], out)
    return out


def _collect(lines: list[str], out: dict[str, str]) -> None:
    for line in lines:
        key, _, ts = line.rpartition(" ")
        out[key.split(" ")[0] + " " + ts] = line


def rollup(readings: list[Reading]) -> dict[str, str]:
    """What `collector rollup` computes from the same readings once stored."""
    stored: dict[str, dict[str, dict[SeriesKey, dict[int, float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    seqs: dict[str, dict[SeriesKey, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for kind, tags, seq, ts, values in readings:
        key = tuple(sorted((k, v) for k, v in tags.items() if v))
        seqs[kind][key][ts] = seq  # every reading is stored with its seq
        for name, v in values.items():
            if name in COUNTERS and not isinstance(v, bool):  # what the rollup reads back
                stored[kind][name][key][ts] = float(v)
    out: dict[str, str] = {}
    lo = min(r[3] for r in readings) - 2 * 86_400_000
    hi = max(r[3] for r in readings) + 2 * 86_400_000
    for kind, fields in stored.items():
        samples = {f: {k: sorted(v.items()) for k, v in series.items()} for f, series in fields.items()}
        for interval in (Interval.QUARTER, Interval.DAY):
            _collect(interval_lines(samples, SETTINGS, interval, lo, hi, seqs=seqs[kind]), out)
    return out


# a counter's walk: normal increases, resets, rollovers at 65,536 and at a power of ten, a
# replacement meter starting high, a jump (implausible), and gaps of up to two hours
moves = st.one_of(
    st.tuples(st.just("inc"), st.floats(0, 40, allow_nan=False)),
    st.tuples(st.just("reset"), st.floats(0, 5)),
    st.tuples(st.just("wrap"), st.floats(0, 5)),
    st.tuples(st.just("replace"), st.floats(10_000, 20_000)),
    st.tuples(st.just("jump"), st.floats(1e6, 1e7)),
)


@st.composite
def histories(draw: st.DrawFn) -> list[Reading]:
    readings: list[Reading] = []
    for d in range(draw(st.integers(1, 3))):
        tags = {"site": "s1", "device": f"m{d}", "building": "b1", "category": "ABCD"[d]}
        value, ts = draw(st.floats(0, 60_000)), T0 + draw(st.integers(0, 3_600_000))
        for seq, (kind, x) in enumerate(draw(st.lists(moves, min_size=1, max_size=60)), start=1):
            ts += draw(st.sampled_from([15_000, 60_000, 300_000, 900_000, 7_200_000]))
            if kind == "inc":
                value += x
            elif kind == "wrap":
                value = x if value < 59_000 else (value + x) % 65_536
            elif kind == "jump":
                value += x
            else:
                value = x
            values: dict[str, Any] = {"energy_import": round(value, 3), "active_power": 1.0}
            if d == 1:
                values["run_hours"] = ts // 3_600_000 - T0 // 3_600_000
            readings.append(("meter", tags, seq, ts, values))
    # the devices' readings interleave (in time order per device, as the edge delivers them)
    return sorted(readings, key=lambda r: (r[3], r[1]["device"]))


@settings(max_examples=150, deadline=None)
@given(histories())
def test_ingest_equals_the_rollup(readings: list[Reading]) -> None:
    assert ingest(readings) == rollup(readings)


@settings(max_examples=100, deadline=None)
@given(histories(), st.integers(1, 12))
def test_blocks_of_readings_equal_the_rollup(readings: list[Reading], size: int) -> None:
    """A message's block of one device's readings (``add_block``, as the collector folds them)
    gives the rollup's points and the same state as the readings one by one."""
    per_device: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        per_device[r[1]["device"]].append(r)
    blocks = [rs[i : i + size] for rs in per_device.values() for i in range(0, len(rs), size)]
    blocks.sort(key=lambda blk: (blk[0][3], blk[0][1]["device"]))
    b, one_by_one = book(), book()
    out: dict[str, str] = {}
    for i, blk in enumerate(blocks):
        kind, tags = blk[0][0], blk[0][1]
        b.add_block(kind, tags, [{"seq": seq, "ts": ts, "values": v} for _, _, seq, ts, v in blk])
        for r in blk:
            one_by_one.add(*r)
        if i % 5 == 0:
            _collect(b.take(7.0 * i)[0], out)
            one_by_one.take(7.0 * i)
            assert b.state() == one_by_one.state()
    _collect(b.flush()[0], out)
    assert out == rollup(readings)


@settings(max_examples=60, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_redelivered_readings_change_nothing(readings: list[Reading], rnd: Any) -> None:
    # at-least-once: a message comes again after a reconnect (same seq and time)
    again = list(readings)
    for i in sorted(rnd.sample(range(len(readings)), min(10, len(readings))), reverse=True):
        again.insert(min(len(again), i + rnd.randint(1, 5)), readings[i])
    again.sort(key=lambda r: (r[1]["device"], r[2]))  # per device in seq order, duplicates included
    assert ingest(again) == ingest(sorted(readings, key=lambda r: (r[1]["device"], r[2])))


@pytest.mark.parametrize("checkpoint_readings", [1, 97, 100_000])
def test_state_survives_a_restart(checkpoint_readings: int) -> None:
    """Stop at any point, keep only what the snapshots stored (the last checkpoint and the
    changes after it: deltas of the batches of many readings, journals of the others), start a
    new book from it: the points are those of one uninterrupted run."""
    readings = [
        ("meter", {"site": "s1", "device": "m1"}, i, T0 + i * 300_000, {"energy_import": 100.0 + 2.5 * i})
        for i in range(600)
    ]
    whole = ingest(readings)
    checkpoint: State = ({}, {})
    changes: list[Change] = []

    def keep(snap: Snapshot) -> None:
        nonlocal checkpoint
        if snap.checkpoint is not None:
            checkpoint = snap.checkpoint
            changes.clear()
        elif snap.delta is not None:
            changes.append(snap.delta)
        elif snap.journal:
            changes.append(snap.journal)

    first = book(checkpoint_readings)
    out: dict[str, str] = {}
    for i, r in enumerate(readings[:317]):
        first.add(*r)
        if i % 40 == 0 or 100 <= i < 140:  # batches of 40 readings, and of one
            lines, snap = first.take(float(i))
            _collect(lines, out)
            keep(snap)
    lines, snap = first.take(317.0)  # the batch in hand is written and its state stored ...
    _collect(lines, out)
    keep(snap)
    if checkpoint_readings == 100_000:  # no checkpoint: both forms were stored
        assert {type(c) for c in changes} == {list, Delta}
    second = book()  # ... then the process dies; a new one starts from the stored state
    second.restore(*checkpoint, changes)
    # the first take after a restart emits again what the replay completed (and the open ones)
    _collect(second.take(317.0)[0], out)
    assert second.cells == first.cells
    assert {k: (v.ts, v.value, v.seq) for k, v in second.last.items()} == {
        k: (v.ts, v.value, v.seq) for k, v in first.last.items()
    }
    out.update(ingest(readings[317:], second))
    assert out == whole


def test_snapshots_carry_the_smaller_form_and_a_checkpoint_the_open_intervals() -> None:
    """A batch of history (one series, many intervals) stores the state it changed: the intervals
    left open, not every quarter it went through; a batch of one reading per series stores the
    readings. A checkpoint carries exactly the intervals left open, and resets the count."""
    b = book(checkpoint_readings=450)
    tags = {"site": "s1", "device": "m1"}
    for i in range(400):  # 100 hours of 15-minute readings in one batch
        b.add("meter", tags, i, T0 + i * 900_000, {"energy_import": 10.0 + i, "active_power": 1.0})
    lines, snap = b.take(0.0)
    assert len(lines) > 400  # 399 completed quarters and 4 completed days, plus the open ones
    assert snap.journal == [] and snap.delta is not None and snap.checkpoint is None
    assert set(snap.delta.cells) == set(b.cells)  # never stored, so nothing to drop
    assert all(c is not None for c in snap.delta.cells.values())
    opened = set(b.cells)
    for i in range(400, 500):
        b.add("meter", tags, i, T0 + i * 900_000, {"energy_import": 10.0 + i})
    _, snap = b.take(100.0)  # 500 readings since the start: a checkpoint is due
    assert snap.delta is not None and snap.checkpoint is not None
    assert {k for k, c in snap.delta.cells.items() if c is None} == opened  # stored, now complete
    last, cells = snap.checkpoint
    assert cells == b.cells and [k[1] for k in cells] == [Interval.DAY.value]  # the open day
    assert {k: v.seq for k, v in last.items()} == {
        (("meter", tuple(sorted(tags.items()))), "energy_import"): 499
    }
    for d in range(3):  # one reading of each of three series
        b.add("meter", {**tags, "device": f"x{d}"}, 0, T0, {"active_power": 5.0, "energy_import": 1.0})
    _, snap = b.take(200.0)
    assert [(e[0][1], e[1]) for e in snap.journal] == [
        ((("device", f"x{d}"), ("site", "s1")), 0) for d in range(3)
    ]
    # the journal keeps the counters' values only, not the whole reading
    assert {(tuple(e[3]), tuple(e[4])) for e in snap.journal} == {((1.0,), ("energy_import",))}
    assert snap.delta is None and snap.checkpoint is None
    assert b.flush()[1].checkpoint is not None  # on shutdown, always


def test_only_a_step_to_an_interval_end_completes_it() -> None:
    """Between the emissions of open intervals, an interval is emitted when a step reaches its end
    and every counter in it has: not before (a counter lags), and not again."""
    b = book()
    tags = {"site": "s1", "device": "m1"}
    b.take(0.0)  # the open intervals were just emitted: the next minute emits completed ones only
    b.add("meter", tags, 0, T0, {"energy_import": 1.0, "energy_export": 1.0})
    b.add("meter", tags, 1, T0 + 600_000, {"energy_import": 2.0, "energy_export": 2.0})
    assert b.take(1.0)[0] == []
    b.add("meter", tags, 2, T0 + 900_000, {"energy_import": 3.0})  # export lags at 10 minutes
    assert b.take(2.0)[0] == []
    b.add("meter", tags, 3, T0 + 1_200_000, {"energy_import": 4.0, "energy_export": 4.0})
    [line] = b.take(3.0)[0]
    assert line.endswith(f" {T0}") and f"interval={Interval.QUARTER.value}" in line
    b.add("meter", tags, 4, T0 + 1_500_000, {"energy_import": 5.0, "energy_export": 5.0})
    assert b.take(4.0)[0] == []


def test_late_reading_asks_for_a_repair_and_duplicates_are_ignored() -> None:
    b = book()
    tags = {"site": "s1", "device": "m1"}
    for i in range(10):
        b.add("meter", tags, i, T0 + i * 60_000, {"energy_import": float(i)})
    b.add("meter", tags, 5, T0 + 5 * 60_000, {"energy_import": 5.0})  # redelivered
    b.add("meter", tags, 10, T0 + 3 * 60_000 + 1, {"energy_import": 3.5})  # clock went back
    _, snap = b.take(0.0)
    assert b.ignored == 1 and b.late == 1
    assert [(r.site, r.t0 <= T0 + 180_001 < r.t1) for r in snap.repairs] == [("s1", True)]


def test_demo_data_ingest_equals_rollup() -> None:
    """Three days of the demo's 37 devices (simulated history, 15-minute readings)."""
    from epcwatch.sim.history import history_batches, profile_points, profile_quantizers
    from epcwatch.sim.model import ComplexModel
    from epcwatch.sim.spec import demo_complex
    from epcwatch.wire import telemetry_messages

    model = ComplexModel(demo_complex(0))
    readings: list[Reading] = []
    first = dt.date(2024, 3, 30)
    for b in history_batches(model, first, first + dt.timedelta(days=2), point_names=profile_points(model),
                             quantizers=profile_quantizers(model)):  # fmt: skip
        for m in telemetry_messages(b.payload):
            tags = {"site": m.site, "device": m.device, **m.tags.model_dump(exclude_none=True)}
            readings += [(m.kind, tags, r.seq, r.ts, dict(r.values)) for r in m.readings]
    readings.sort(key=lambda r: (r[3], r[1]["device"]))
    got = ingest(readings)
    assert len(got) > 36 * 3 * 96  # every device with a counter (not the sensor), every quarter
    assert got == rollup(readings)
    assert ZoneInfo(TZ)  # days are local days of the site's timezone
