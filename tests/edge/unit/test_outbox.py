"""The SQLite outbox: seq per device, order, byte cap policies, persistence across reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epcwatch.edge.outbox import NewReading, Outbox
from epcwatch.wire import Reading


def _r(device: str, i: int, power: float = 1.0) -> NewReading:
    return NewReading(device, 1_700_000_000_000 + i, {"active_power": power, "energy_import": float(i)})


def test_round_trip_rows_are_valid_wire_readings(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    res = ob.append([_r("m1", 0), _r("m2", 1), _r("m1", 2)])
    assert (res.stored, res.dropped, res.refused) == (3, 0, 0)
    rows = ob.fetch()
    seqs = [(r.device, Reading.model_validate_json(r.body).seq) for r in rows]
    assert seqs == [("m1", 0), ("m2", 0), ("m1", 1)]
    assert Reading.model_validate_json(rows[2].body).values == {"active_power": 1.0, "energy_import": 2.0}
    assert ob.depth == 3 and ob.bytes == sum(len(r.body) for r in rows)


def test_wal_mode_and_synchronous_setting(tmp_path: Path) -> None:
    Outbox(tmp_path / "full.sqlite").close()
    Outbox(tmp_path / "normal.sqlite", synchronous="normal").close()
    db = sqlite3.connect(tmp_path / "full.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_seq_and_counters_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = Outbox(path)
    ob.append([_r("m1", i) for i in range(5)])
    ob.delete([r.id for r in ob.fetch()])
    assert ob.depth == 0
    ob.close()
    ob = Outbox(path)
    assert ob.next_seq("m1") == 5
    ob.append([_r("m1", 9)])
    assert [orjson.loads(r.body)["seq"] for r in ob.fetch()] == [5]


def test_delete_after_ack_only_and_fetch_after_cursor(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.append([_r("m1", i) for i in range(10)])
    rows = ob.fetch(limit=4)
    assert len(rows) == 4
    assert [r.id for r in ob.fetch(after_id=rows[-1].id)] == [r.id + 4 for r in rows] + [
        rows[0].id + 8,
        rows[0].id + 9,
    ]
    assert ob.delete([rows[0].id, rows[1].id]) == 2
    assert ob.delete([rows[0].id]) == 0  # already gone: counted once
    assert ob.depth == 8


def test_drop_oldest_keeps_the_cap_and_counts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=64 * 1024, full_policy="drop_oldest")
    values = {"active_power": 1.0, "energy_import": 0.0}
    size = len(orjson.dumps({"seq": 0, "ts": 1_700_000_000_000, "values": values, "quality": "good"}))
    n = (64 * 1024) // size * 2
    dropped = 0
    for i in range(n):
        dropped += ob.append([_r("m1", i)]).dropped
    assert ob.bytes <= 64 * 1024
    assert dropped == ob.dropped > 0
    seqs = [orjson.loads(r.body)["seq"] for r in ob.fetch(limit=10**6)]
    # what is left is the newest readings, contiguous, and the gap is exactly the count dropped
    assert seqs == list(range(dropped, n))
    ob.close()
    assert Outbox(tmp_path / "o.sqlite", max_bytes=64 * 1024).dropped == dropped


def test_pause_refuses_new_readings_and_counts(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=64 * 1024, full_policy="pause")
    stored = refused = 0
    for i in range(2000):
        res = ob.append([_r("m1", i)])
        stored += res.stored
        refused += res.refused
    assert ob.bytes <= 64 * 1024 and refused == ob.refused > 0 and stored + refused == 2000
    seqs = [orjson.loads(r.body)["seq"] for r in ob.fetch(limit=10**6)]
    assert seqs == list(range(stored))  # the oldest are kept; refused readings take no seq
    ob.delete([r.id for r in ob.fetch(limit=100)])
    assert ob.append([_r("m1", 5000)]).stored == 1  # room again: accepting


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans()), min_size=1, max_size=60))
def test_per_device_order_holds_under_random_appends_and_acks(
    tmp_path: Path, ops: list[tuple[str, bool]]
) -> None:
    path = tmp_path / "h.sqlite"
    if path.exists():
        path.unlink()
    ob = Outbox(path)
    for i, (dev, ack) in enumerate(ops):
        ob.append([_r(dev, i)])
        if ack:
            rows = ob.fetch(limit=1)
            ob.delete([rows[0].id])
    by_dev: dict[str, list[int]] = {}
    for r in ob.fetch(limit=10**6):
        by_dev.setdefault(r.device, []).append(orjson.loads(r.body)["seq"])
    for seqs in by_dev.values():
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    ob.close()


def test_unopenable_path_is_an_outbox_error(tmp_path: Path) -> None:
    from epcwatch.edge.errors import OutboxError

    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(OutboxError):
        Outbox(tmp_path / "dir.sqlite")


def test_one_process_per_outbox(tmp_path: Path) -> None:
    import subprocess
    import sys

    from epcwatch.edge.errors import OutboxError

    path = tmp_path / "o.sqlite"
    ob = Outbox(path)
    code = (
        "import sys\nfrom epcwatch.edge.outbox import Outbox\nfrom epcwatch.edge.errors import OutboxError\n"
        f"try:\n    Outbox({str(path)!r})\nexcept OutboxError as e:\n    print(e); sys.exit(3)\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert other.returncode == 3 and "in use by another process" in other.stdout
    with pytest.raises(OutboxError):
        Outbox(path)  # a second open in the same process is refused too
    ob.close()
    Outbox(path).close()  # free again once closed
