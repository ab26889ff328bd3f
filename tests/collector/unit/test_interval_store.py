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
from epcwatch.collector.intervals import Delta, Snapshot

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


@pytest.mark.parametrize("checkpoint_readings", [1, 300, 1_000_000])
@pytest.mark.parametrize("stop", [1, 257, 811])
def test_a_restart_from_the_file_equals_one_run(tmp_path: Path, checkpoint_readings: int, stop: int) -> None:
    readings = _readings()
    whole = ingest(readings)
    path = tmp_path / "state.sqlite"
    store = IntervalStore(path)
    first = book(checkpoint_readings)
    out: dict[str, str] = {}
    for i, r in enumerate(readings[:stop]):
        first.add(*r)
        if i % 40 == 0 or 300 <= i < 330:  # batches of 40 readings (deltas), and of one (journals)
            lines, snap = first.take(float(i))
            _collect(lines, out)
            store.save(snap)
    lines, snap = first.take(float(stop))
    _collect(lines, out)
    store.save(snap)
    store.close()  # the process dies; a new one opens the file

    again = IntervalStore(path)
    second = book()
    last, cells, changes = again.load()
    if stop == 811 and checkpoint_readings == 1_000_000:  # journals, then deltas after them
        assert {type(c) for c in changes} == {list, Delta}
    second.restore(last, cells, changes)
    _collect(second.take(float(stop))[0], out)  # what the replay completed goes out again
    # the state is the first run's, from a checkpoint and a journal or from a journal alone
    assert second.cells == first.cells
    assert {k: (v.ts, v.value, v.seq) for k, v in second.last.items()} == {
        k: (v.ts, v.value, v.seq) for k, v in first.last.items()
    }
    out.update(ingest(readings[stop:], second))
    assert out == whole


def test_a_checkpoint_replaces_the_journal_every_n_readings(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    store = IntervalStore(path)
    b = book(checkpoint_readings=4)
    rows = []
    for i in range(10):  # batches of one reading: journals
        b.add("meter", {"site": "s1", "device": "m1"}, i, T0 + i * 300_000, {"energy_import": float(i)})
        store.save(b.take(float(i))[1])
        with sqlite3.connect(path) as db:
            rows.append(
                (
                    db.execute("SELECT count(*) FROM log").fetchone()[0],
                    db.execute("SELECT count(*) FROM checkpoint").fetchone()[0],
                )
            )
    assert rows == [(1, 0), (2, 0), (3, 0), (0, 1), (1, 1), (2, 1), (3, 1), (0, 1), (1, 1), (2, 1)]
    last, _, changes = IntervalStore(path).load()  # a reopened store: the checkpoint, two readings
    assert [[e[1] for e in c] for c in changes if isinstance(c, list)] == [[8], [9]]
    assert {k: v.seq for k, v in last.items()} == {
        (("meter", (("device", "m1"), ("site", "s1"))), "energy_import"): 7
    }


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


def test_files_of_the_earlier_format_are_still_read(tmp_path: Path) -> None:
    """State written by earlier versions (tables folded from a log of the last samples and cells
    each batch changed, then log rows naming each series in every entry) loads as it was; new
    batches journal after it, and the first checkpoint replaces it all."""
    path = tmp_path / "state.sqlite"
    tags = {"site": "s1", "device": "m1"}
    b = book()
    for i in range(5):
        b.add("meter", tags, i, T0 + i * 300_000, {"energy_import": float(i)})
    b.take(0.0)
    old = {
        "l": [(s[0], s[1], f, v.ts, v.value, v.seq) for (s, f), v in b.last.items()],
        "c": [
            (s[0], s[1], iv, start, c.end, {**c.sums, "#seq": c.link})
            for (s, iv, start), c in b.cells.items()
        ],
        "d": [],
    }
    IntervalStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(  # a sample the log row below overrides
            "INSERT INTO last VALUES ('meter', ?, 'energy_import', ?, 0.0, 0)",
            (orjson.dumps(old["l"][0][1]).decode(), T0),
        )
        db.execute("INSERT INTO log (delta) VALUES (?)", (orjson.dumps(old),))
    again = IntervalStore(path)
    last, cells, journal = again.load()
    assert journal == []
    assert {k: (v.ts, v.value, v.seq) for k, v in last.items()} == {
        k: (v.ts, v.value, v.seq) for k, v in b.last.items()
    }
    assert {k: (c.end, c.sums, c.link) for k, c in cells.items()} == {
        k: (c.end, c.sums, c.link) for k, c in b.cells.items()
    }
    b.add("meter", tags, 5, T0 + 5 * 300_000, {"energy_import": 5.0})
    again.save(b.take(2.0)[1])  # a journal row after the old one
    restored = book()
    restored.restore(*IntervalStore(path).load())
    restored.take(2.0)
    assert restored.cells == b.cells
    again.save(b.flush()[1])  # a checkpoint: the old tables and rows are gone
    with sqlite3.connect(path) as db:
        assert [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("last", "cells", "log")] == [
            0,
            0,
            0,
        ]
    last, cells, journal = IntervalStore(path).load()
    assert journal == [] and {k: c.sums for k, c in cells.items()} == {k: c.sums for k, c in b.cells.items()}
    assert {k: v.ts for k, v in last.items()} == {k: v.ts for k, v in b.last.items()}
