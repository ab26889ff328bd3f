"""The SQLite outbox: seq per device, order, byte cap policies, persistence across reopen."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epcwatch.edge.outbox import NewReading, Outbox, pack_body, render_body, value_format
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
    stored = sqlite3.connect(tmp_path / "o.sqlite").execute("SELECT SUM(length(body)) FROM readings")
    assert ob.depth == 3 and ob.bytes == stored.fetchone()[0]
    assert ob.bytes < sum(len(r.body) for r in rows) / 3  # packed, not JSON


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
    size = len(pack_body(1, "ff", (1.0, 0.0), "good"))
    n = (64 * 1024) // size * 2
    dropped = 0
    n -= n % 20
    for i in range(0, n, 20):
        dropped += ob.append([_r("m1", j) for j in range(i, i + 20)]).dropped
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
    for i in range(0, 6000, 20):
        res = ob.append([_r("m1", j) for j in range(i, i + 20)])
        stored += res.stored
        refused += res.refused
    assert ob.bytes <= 64 * 1024 and refused == ob.refused > 0 and stored + refused == 6000
    seqs = [orjson.loads(r.body)["seq"] for r in ob.fetch(limit=10**6)]
    assert seqs == list(range(stored))  # the oldest are kept; refused readings take no seq
    ob.delete([r.id for r in ob.fetch(limit=100)])
    assert ob.append([_r("m1", 5000)]).stored == 1  # room again: accepting


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
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


values_st = st.dictionaries(
    st.sampled_from(["active_power", "energy_import", "voltage_l1", "run_status", "frequency"]),
    st.one_of(
        st.booleans(),
        st.integers(-(10**15), 10**15),
        st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15),
        st.floats(width=32, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
)


@settings(max_examples=200, deadline=None)
@given(values_st, st.integers(0, 2**40), st.integers(0, 2**45), st.sampled_from(["good", "partial"]))
def test_packed_body_renders_the_json_the_row_used_to_hold(
    values: dict[str, bool | int | float], seq: int, ts: int, quality: str
) -> None:
    names = tuple(values)
    fmt = "".join(value_format(v) for v in values.values())
    body = pack_body(7, fmt, tuple(values.values()), quality)  # type: ignore[arg-type]
    wire = orjson.dumps({"seq": seq, "ts": ts, "values": values, "quality": quality})
    assert render_body(seq, ts, body, {7: (names, fmt)}) == wire
    assert render_body(seq, ts, wire, {}) == wire  # rows stored as JSON by older versions


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(values_st, min_size=1, max_size=20))
def test_packed_rows_round_trip_across_reopen(
    tmp_path_factory: pytest.TempPathFactory, readings: list[dict[str, bool | int | float]]
) -> None:
    path = tmp_path_factory.mktemp("ob") / "o.sqlite"
    ob = Outbox(path)
    ob.append([NewReading("m1", 1_700_000_000_000 + i, v) for i, v in enumerate(readings)])
    first = [r.body for r in ob.fetch()]
    ob.close()
    again = Outbox(path)
    assert [r.body for r in again.fetch()] == first
    assert [orjson.loads(b)["values"] for b in first] == readings
    count = "SELECT COUNT(*) FROM layouts"
    again.append([NewReading("m1", 1_700_000_000_998, readings[-1])])
    layouts = sqlite3.connect(path).execute(count).fetchone()[0]
    again.close()
    again = Outbox(path)
    again.append([NewReading("m1", 1_700_000_000_999, readings[-1])])
    assert sqlite3.connect(path).execute(count).fetchone()[0] == layouts  # known layouts are reused
    assert [r.body for r in again.fetch()][: len(first)] == first
    again.close()


def test_rows_written_as_json_by_an_older_version_are_still_sent(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.close()
    legacy = orjson.dumps({"seq": 0, "ts": 5, "values": {"active_power": 1.5}, "quality": "good"})
    db = sqlite3.connect(tmp_path / "o.sqlite")
    db.execute(
        "INSERT INTO readings (device, seq, ts, size, body) VALUES ('m1', 0, 5, ?, ?)", (len(legacy), legacy)
    )
    db.commit()
    db.close()
    ob = Outbox(tmp_path / "o.sqlite")
    ob.append([_r("m1", 1)])
    rows = ob.fetch()
    assert rows[0].body == legacy and Reading.model_validate_json(rows[1].body).seq == 0


def test_a_float_once_stored_wide_stays_wide(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite")
    ob.append([NewReading("m1", 1_700_000_000_001, {"voltage_l1": 230.1})])  # not a float32: float64
    ob.append([NewReading("m1", 1_700_000_000_002, {"voltage_l1": 0.0})])  # a float32 value, kept float64
    ob.append([NewReading("m1", 1_700_000_000_003, {"voltage_l1": 230.10000610351562})])
    layouts = sqlite3.connect(tmp_path / "o.sqlite").execute("SELECT fmt FROM layouts").fetchall()
    assert layouts == [("d",)]
    assert [Reading.model_validate_json(r.body).values["voltage_l1"] for r in ob.fetch()] == [
        230.1, 0.0, 230.10000610351562
    ]
