"""Grouping outbox rows into telemetry messages (pure)."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.edge.batching import ENVELOPE_BYTES, Row, batch_rows, envelope_prefix, message_body
from epcwatch.wire import TelemetryMessage


def _rows(devices: list[str]) -> list[Row]:
    seq: dict[str, int] = {}
    out = []
    for i, d in enumerate(devices, start=1):
        s = seq.get(d, 0)
        seq[d] = s + 1
        body = orjson.dumps({"seq": s, "ts": 1_700_000_000_000 + i, "values": {"active_power": float(i)}})
        out.append(Row(i, d, body))
    return out


device_lists = st.lists(st.sampled_from(["m1", "m2", "hvac-1", "lc"]), max_size=300)


@given(device_lists, st.integers(1, 20), st.integers(600, 5000))
def test_batches_cover_every_row_once_in_device_order(devices: list[str], n: int, max_bytes: int) -> None:
    rows = _rows(devices)
    batches = batch_rows(rows, n, max_bytes)
    flat = [r.id for b in batches for r in b.rows]
    assert sorted(flat) == [r.id for r in rows]
    for b in batches:
        assert 1 <= len(b.rows) <= n
        assert all(r.device == b.device for r in b.rows)
        assert len(b.rows) == 1 or b.size <= max_bytes
    # handing batches over in the returned order keeps each device's rows in order
    for d in set(devices):
        ids = [r.id for b in batches for r in b.rows if r.device == d]
        assert ids == sorted(ids)


def test_live_rate_gives_one_reading_per_message_and_backlog_fills_messages() -> None:
    assert [len(b.rows) for b in batch_rows(_rows(["a", "b"]), 100, 10**6)] == [1, 1]
    backlog = batch_rows(_rows(["a", "b"] * 250), 100, 10**6)
    assert [(b.device, len(b.rows)) for b in backlog] == [
        ("a", 100), ("b", 100), ("a", 100), ("b", 100), ("a", 50), ("b", 50)
    ]


def test_oversize_row_gets_its_own_batch() -> None:
    big = Row(1, "a", b"x" * 5000)
    small = Row(2, "a", b"{}")
    batches = batch_rows([big, small], 10, ENVELOPE_BYTES + 100)
    assert [b.ids for b in batches] == [[1], [2]]


def test_message_body_is_a_valid_telemetry_message() -> None:
    rows = _rows(["m1", "m1", "m1"])
    prefix = envelope_prefix("civic-centre", "m1", "meter", orjson.dumps({"building": "b1", "category": "A"}))
    msg = TelemetryMessage.model_validate_json(message_body(prefix, rows))
    assert [r.seq for r in msg.readings] == [0, 1, 2]
    assert msg.tags.building == "b1"
    assert msg.readings[2].values == {"active_power": 3.0}
