"""Grouping outbox rows into schema-2 site messages (pure)."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.edge.batching import ENVELOPE_BYTES, Row, batch_site_rows, block_prefix, site_message_body
from epcwatch.wire import SiteTelemetryMessage
from tests.edge.unit.test_batching import _rows, device_lists

PREFIXES = {d: block_prefix(d, "meter", b'{"building":"b1"}') for d in ("m1", "m2", "hvac-1", "lc")}


@given(device_lists, st.integers(1, 40), st.integers(600, 20_000))
def test_site_batches_cover_every_row_once_in_device_order(
    devices: list[str], n: int, max_bytes: int
) -> None:
    rows = _rows(devices)
    batches = batch_site_rows(rows, n, max_bytes)
    flat = [i for b in batches for i in b.ids]
    assert sorted(flat) == [r.id for r in rows]
    last = 0
    for b in batches:
        ids = b.ids
        assert 1 <= len(ids) <= n
        assert len(ids) == 1 or b.size <= max_bytes
        # a message is a consecutive run of rows, so messages sent in order keep devices in order
        assert min(ids) > last and sorted(ids) == list(range(min(ids), max(ids) + 1))
        last = max(ids)
        assert len({blk.device for blk in b.blocks}) == len(b.blocks)
        for blk in b.blocks:
            assert all(r.device == blk.device for r in blk.rows)
            assert [r.id for r in blk.rows] == sorted(r.id for r in blk.rows)
        msg = SiteTelemetryMessage.model_validate_json(site_message_body("s1", PREFIXES, b))
        assert [blk.device for blk in msg.devices] == [blk.device for blk in b.blocks]


def test_one_poll_cycle_is_one_message() -> None:
    cycle = ["m1", "m2", "hvac-1", "lc"]
    batches = batch_site_rows(_rows(cycle), 100, 256 * 1024)
    assert len(batches) == 1 and [b.device for b in batches[0].blocks] == cycle
    backlog = batch_site_rows(_rows(cycle * 60), 100, 256 * 1024)
    assert [len(b.ids) for b in backlog] == [100, 100, 40]
    assert [len(blk.rows) for blk in backlog[0].blocks] == [25, 25, 25, 25]


def test_body_is_a_site_message_with_each_device_once() -> None:
    rows = _rows(["m1", "m2", "m1"])
    (batch,) = batch_site_rows(rows, 10, 10**6)
    doc = orjson.loads(site_message_body("civic-centre", PREFIXES, batch))
    assert doc["v"] == 2 and doc["site"] == "civic-centre"
    msg = SiteTelemetryMessage.model_validate(doc)
    assert [(b.device, [r.seq for r in b.readings]) for b in msg.devices] == [("m1", [0, 1]), ("m2", [0])]
    assert msg.devices[0].tags.building == "b1"


def test_oversize_row_gets_its_own_message() -> None:
    big = Row(1, "m1", b"x" * 5000)
    small = Row(2, "m2", b"{}")
    assert [b.ids for b in batch_site_rows([big, small], 10, 2 * ENVELOPE_BYTES + 100)] == [[1], [2]]
