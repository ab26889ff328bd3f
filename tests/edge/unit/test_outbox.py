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


def _rows_in_file(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
    finally:
        db.close()


def test_acknowledged_rows_leave_at_once_and_the_file_with_the_next_append(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "o.sqlite"
    ob = Outbox(path, delete_delay_s=5.0, monotonic=lambda: now[0])
    ob.append([_r(d, i) for i in range(3) for d in ("m1", "m2")])
    rows = ob.fetch()
    done = ob.delete_acked([("m1", 0, 1), ("m2", 2, 2)])
    named = {("m1", 0), ("m1", 1), ("m2", 2)}
    assert sorted(done) == sorted(r.id for r in rows if (r.device, r.seq) in named)
    assert ob.delete_acked([("m1", 0, 1)]) == []  # a repeated acknowledgement: done already
    assert ob.depth == 3 and [(r.device, r.seq) for r in ob.fetch()] == [("m2", 0), ("m2", 1), ("m1", 2)]
    assert _rows_in_file(path) == 6  # not yet deleted from the file ...
    ob.append([_r("m1", 9)])
    assert _rows_in_file(path) == 4 and ob.depth == 4  # ... the next append's transaction did
    stored = sqlite3.connect(path).execute("SELECT SUM(size) FROM readings").fetchone()[0]
    assert ob.bytes == stored


def test_acknowledged_rows_without_an_append_are_deleted_after_the_delay(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "o.sqlite"
    ob = Outbox(path, delete_delay_s=5.0, monotonic=lambda: now[0])
    ob.append([_r("m1", i) for i in range(4)])
    ob.fetch()
    ob.delete_acked([("m1", 0, 3)])
    assert not ob.flush_due() and ob.flush(force=False) == 0 and _rows_in_file(path) == 4
    now[0] = 5.0
    assert ob.flush_due() and ob.flush(force=False) == 4
    assert _rows_in_file(path) == 0 and ob.depth == 0 and ob.bytes == 0 and not ob.flush_due()
    ob.fetch()
    ob.close()


def test_closing_deletes_what_was_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = Outbox(path)
    ob.append([_r("m1", i) for i in range(4)])
    ob.fetch()
    ob.delete_acked([("m1", 1, 2)])
    ob.close()
    again = Outbox(path)
    assert [r.seq for r in again.fetch()] == [0, 3] and again.next_seq("m1") == 4


def test_an_acknowledgement_of_rows_not_handed_out_leaves_them_to_be_sent_again(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    ob = Outbox(path)
    ob.append([_r("m1", i) for i in range(3)])
    assert ob.delete_acked([("m1", 0, 2)]) == []  # e.g. a message sent before a restart
    rows = ob.fetch()
    assert [r.seq for r in rows] == [0, 1, 2]
    assert ob.delete_acked([("m1", 0, 2)]) == [r.id for r in rows]  # sent again, acknowledged again
    assert ob.depth == 0


def test_drop_oldest_forgets_rows_handed_out(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", max_bytes=2048, full_policy="drop_oldest")
    ob.append([_r("m1", i) for i in range(20)])
    handed = ob.fetch(limit=10**6)
    for i in range(20, 400, 20):
        ob.append([_r("m1", j) for j in range(i, i + 20)])
    left = ob.fetch(limit=10**6)
    assert ob.dropped > 0 and left[0].seq > handed[-1].seq
    assert ob.delete_acked([("m1", 0, handed[-1].seq)]) == []  # dropped already: nothing to do
    assert ob.delete_acked([("m1", left[0].seq, left[-1].seq)]) == [r.id for r in left]


def test_a_new_outbox_keeps_no_index_and_no_sequence_table(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    Outbox(path).append([_r("m1", 0)])
    names = {n for (n,) in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")}
    assert names == {"readings", "device_seq", "sqlite_autoindex_device_seq_1", "layouts", "counters",
                     "sqlite_autoindex_counters_1"}
    assert sqlite3.connect(path).execute("PRAGMA page_size").fetchone()[0] == 1024


_OLD_SCHEMA = """
CREATE TABLE readings (id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL, seq INTEGER NOT NULL,
    ts INTEGER NOT NULL, size INTEGER NOT NULL, body BLOB NOT NULL, chain BLOB);
CREATE INDEX readings_device_seq ON readings (device, seq);
CREATE TABLE device_seq (device TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE layouts (id INTEGER PRIMARY KEY, names TEXT NOT NULL, fmt TEXT NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE chain_head (device TEXT PRIMARY KEY, head BLOB NOT NULL);
"""


@pytest.mark.parametrize("rows", [0, 2])
def test_an_outbox_of_the_previous_layout_is_migrated(tmp_path: Path, rows: int) -> None:
    path = tmp_path / "o.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_OLD_SCHEMA)
    body = orjson.dumps({"seq": 0, "ts": 1, "values": {"a": 1.0}, "quality": "good"})
    for i in range(rows):
        db.execute("INSERT INTO readings (device, seq, ts, size, body) VALUES ('m1', ?, 1, ?, ?)",
                   (5 + i, len(body), body))
    db.execute("INSERT INTO device_seq VALUES ('m1', 7)")
    db.execute("INSERT INTO chain_head VALUES ('m1', ?)", (b"h" * 32,))
    db.commit()
    db.close()
    ob = Outbox(path, site="s1")
    assert ob.next_seq("m1") == 7 and ob.depth == rows
    assert [r.seq for r in ob.fetch()] == [5, 6][:rows]
    ob.append([_r("m1", 9)])
    new = ob.fetch()[-1]
    assert new.seq == 7 and new.chain is not None and new.chain[:32] == b"h" * 32  # the head moved over
    ob.close()
    db = sqlite3.connect(path)
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
    assert "readings_device_seq" not in names and "chain_head" not in names
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'readings'").fetchone()[0]
    assert ("AUTOINCREMENT" in sql) == (rows > 0)  # rebuilt only when it was empty
