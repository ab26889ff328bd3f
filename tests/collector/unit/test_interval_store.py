"""The interval state file: whatever the batches stored, folded into the tables or still in the
log, a collector restarted from it (even a second process opening the file) computes the points
of one uninterrupted run."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import pytest

from epcwatch.collector.interval_store import IntervalStore
from epcwatch.collector.intervals import Snapshot

from .test_intervals import T0, _collect, book, ingest


def _readings() -> list[Any]:
    out = []
    for d in range(3):
        tags = {"site": "s1", "device": f"m{d}", "building": "b1", "category": "ABC"[d]}
        for i in range(400):
            values: dict[str, Any] = {"energy_import": 100.0 + (2.5 + d) * i, "active_power": 1.0}
            if d == 2 and i == 200:
                values["energy_import"] = 3.0  # a replaced meter
            out.append(("meter", tags, i, T0 + i * 300_000 + d * 1_000, values))
    return sorted(out, key=lambda r: (r[3], r[1]["device"]))


@pytest.mark.parametrize("compact_every", [1, 3, 1_000])
@pytest.mark.parametrize("stop", [1, 257, 811])
def test_a_restart_from_the_file_equals_one_run(tmp_path: Path, compact_every: int, stop: int) -> None:
    readings = _readings()
    whole = ingest(readings)
    path = tmp_path / "state.sqlite"
    store = IntervalStore(path, compact_every=compact_every)
    first = book()
    out: dict[str, str] = {}
    for i, r in enumerate(readings[:stop]):
        first.add(*r)
        if i % 40 == 0:
            lines, snap = first.take(float(i))
            _collect(lines, out)
            store.save(snap)
    lines, snap = first.take(float(stop))
    _collect(lines, out)
    store.save(snap)
    store.close()  # the process dies; a new one opens the file

    again = IntervalStore(path, compact_every=compact_every)
    second = book()
    second.restore(*again.load())
    out.update(ingest(readings[stop:], second))
    assert out == whole
    # and what the first run's state holds is the same, folded or not
    last, cells = again.load()
    assert {k: (v.ts, v.value, v.seq) for k, v in last.items()} == {
        k: (v.ts, v.value, v.seq) for k, v in first.last.items()
    }
    assert {k: (c.end, c.sums) for k, c in cells.items()} == {
        k: (c.end, c.sums) for k, c in first.cells.items()
    }


def test_the_log_is_folded_every_n_batches(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = IntervalStore(path, compact_every=4)
    b = book()
    rows = []
    for i in range(10):
        b.add("meter", {"site": "s1", "device": "m1"}, i, T0 + i * 300_000, {"energy_import": float(i)})
        store.save(b.take(float(i))[1])
        with sqlite3.connect(path) as db:
            rows.append(db.execute("SELECT count(*) FROM log").fetchone()[0])
    assert rows == [1, 2, 3, 0, 1, 2, 3, 0, 1, 2]
    assert IntervalStore(path)._logged == 2  # a reopened store counts what is pending


def test_repairs_and_an_empty_snapshot(tmp_path: Path) -> None:
    store = IntervalStore(tmp_path / "state.sqlite")
    store.save(Snapshot())  # nothing to store
    b = book()
    tags = {"site": "s1", "device": "m1"}
    for i in range(5):
        b.add("meter", tags, i, T0 + i * 60_000, {"energy_import": float(i)})
    b.add("meter", tags, 9, T0 + 60_000 + 1, {"energy_import": 1.5})  # late: a repair
    store.save(b.take(0.0)[1])
    [(rid, repair)] = store.repairs()
    assert repair.site == "s1"
    store.repaired([rid])
    assert store.repairs() == []


def test_log_rows_naming_series_in_every_entry_are_still_read(tmp_path: Path) -> None:
    """State written before series were numbered in the log (each entry with its kind and tags)
    loads and folds to the same state."""
    path = tmp_path / "state.sqlite"
    b = book()
    for i in range(5):
        b.add("meter", {"site": "s1", "device": "m1"}, i, T0 + i * 300_000, {"energy_import": float(i)})
    snap = b.take(0.0)[1]
    old = {
        "l": [(s[0], s[1], f, v.ts, v.value, v.seq) for (s, f), v in snap.last.items() if v is not None],
        "c": [
            (s[0], s[1], iv, start, c.end, {**c.sums, "#seq": c.link})
            for (s, iv, start), c in snap.cells.items()
            if c is not None
        ],
        "d": [],
    }
    store = IntervalStore(path, compact_every=2)
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO log (delta) VALUES (?)", (orjson.dumps(old),))
    again = IntervalStore(path, compact_every=2)
    last, cells = again.load()
    assert {k: (v.ts, v.value, v.seq) for k, v in last.items()} == {
        k: (v.ts, v.value, v.seq) for k, v in b.last.items()
    }
    assert {k: (c.end, c.sums, c.link) for k, c in cells.items()} == {
        k: (c.end, c.sums, c.link) for k, c in b.cells.items()
    }
    again.save(b.take(1.0)[1])  # an empty change: nothing logged, nothing folded
    b.add("meter", {"site": "s1", "device": "m1"}, 5, T0 + 5 * 300_000, {"energy_import": 5.0})
    again.save(b.take(2.0)[1])  # the second row: the log (old row included) is folded
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM log").fetchone()[0] == 0
    folded = IntervalStore(path).load()
    assert {k: (v.ts, v.value, v.seq) for k, v in folded[0].items()} == {
        k: (v.ts, v.value, v.seq) for k, v in b.last.items()
    }
    assert {k: (c.end, c.sums) for k, c in folded[1].items()} == {
        k: (c.end, c.sums) for k, c in b.cells.items()
    }
