"""A signing site: chain links fixed at append, consecutive-seq messages, proofs that verify."""

from __future__ import annotations

import asyncio
import base64
import itertools
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epcwatch import provenance
from epcwatch.edge.batching import Row, batch_rows, batch_site_rows
from epcwatch.edge.errors import OutboxError
from epcwatch.edge.forwarder import DeviceInfo, Forwarder
from epcwatch.edge.outbox import NewReading, Outbox
from epcwatch.wire import DeviceTags, TelemetryMessage, telemetry_messages

T0 = 1_700_000_000_000


class Recorder:
    def __init__(self) -> None:
        self.connected = True
        self.payloads: list[bytes] = []

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        self.payloads.append(payload)
        return len(self.payloads)


def _check(msg: TelemetryMessage, key: Ed25519PrivateKey) -> provenance.SignedRange:
    """What a receiver does: recompute the digests from the readings and check the signature."""
    assert msg.proof is not None
    assert msg.proof.kid == provenance.key_id(key.public_key())
    readings = [provenance.ChainReading(r.seq, r.ts, r.values, r.quality) for r in msg.readings]
    sr = provenance.signed_range(msg.site, msg.device, readings, base64.b64decode(msg.proof.first_prev))
    assert provenance.verify(key.public_key(), base64.b64decode(msg.proof.sig), sr)
    return sr


def _send(
    outbox: Outbox, key: Ed25519PrivateKey | None, max_readings: int = 100, wire: int = 1
) -> list[TelemetryMessage]:
    """What the forwarder publishes, each device block of a schema-2 message as a message."""

    async def main() -> list[bytes]:
        pub = Recorder()
        fwd = Forwarder(
            "s1",
            outbox,
            pub,
            {"a": DeviceInfo("meter", DeviceTags())},
            ThreadPoolExecutor(1),
            max_readings=max_readings,
            signing_key=key,
            wire=wire,
        )
        await fwd.step()
        return pub.payloads

    payloads = asyncio.run(main())
    if wire == 2:
        assert all(p.startswith(b'{"v":2,') for p in payloads)
    return [m for p in payloads for m in telemetry_messages(p)]


WIRES = pytest.mark.parametrize("wire", [1, 2], ids=["schema1", "schema2"])


@WIRES
def test_messages_of_a_signing_site_verify_and_chain(tmp_path: Path, wire: int) -> None:
    key = Ed25519PrivateKey.generate()
    outbox = Outbox(tmp_path / "o.sqlite", site="s1", synchronous="normal")
    outbox.append([NewReading("a", T0 + i, {"energy_import": 10.0 + i}) for i in range(7)])
    msgs = _send(outbox, key, max_readings=3, wire=wire)
    ranges = [_check(m, key) for m in msgs]
    assert [(r.first_seq, r.last_seq) for r in ranges] == [(0, 2), (3, 5), (6, 6)]
    assert ranges[0].first_prev == provenance.GENESIS
    for a, b in itertools.pairwise(ranges):
        assert b.first_prev == a.head  # one chain across messages


@WIRES
def test_a_reading_resent_after_a_restart_carries_the_same_digest(tmp_path: Path, wire: int) -> None:
    key = Ed25519PrivateKey.generate()
    outbox = Outbox(tmp_path / "o.sqlite", site="s1")
    outbox.append([NewReading("a", T0 + i, {"energy_import": 1.5 * i}) for i in range(3)])
    before = _send(outbox, key, wire=wire)
    outbox.close()  # nothing acknowledged: the agent restarts and sends the rows again
    reopened = Outbox(tmp_path / "o.sqlite", site="s1")
    again = _send(reopened, key, wire=wire)
    assert [_check(m, key).digests for m in before] == [_check(m, key).digests for m in again]
    # the chain head survived too: the next reading links to the last one stored before
    reopened.append([NewReading("a", T0 + 9, {"energy_import": 9.0})])
    rows = reopened.fetch()
    assert rows[-1].chain is not None and rows[-2].chain is not None
    assert rows[-1].chain[:32] == rows[-2].chain[32:]


@WIRES
def test_dropped_readings_split_messages_at_the_gap(tmp_path: Path, wire: int) -> None:
    key = Ed25519PrivateKey.generate()
    outbox = Outbox(tmp_path / "o.sqlite", site="s1", synchronous="normal")
    outbox.append([NewReading("a", T0 + i, {"energy_import": float(i)}) for i in range(6)])
    outbox.delete([r.id for r in outbox.fetch() if r.seq in (2, 3)])  # as drop_oldest would
    msgs = _send(outbox, key, wire=wire)
    assert [[r.seq for r in m.readings] for m in msgs] == [[0, 1], [4, 5]]
    first, second = (_check(m, key) for m in msgs)
    assert second.first_prev != first.head  # the gap is visible: seq 3's digest is not seq 1's


@WIRES
def test_unsigned_site_sends_no_proof_and_stores_no_link(tmp_path: Path, wire: int) -> None:
    outbox = Outbox(tmp_path / "o.sqlite", synchronous="normal")
    outbox.append([NewReading("a", T0, {"energy_import": 1.0})])
    assert outbox.fetch()[0].chain is None
    assert [m.proof for m in _send(outbox, None, wire=wire)] == [None]


def test_batches_split_at_seq_gaps_only_when_signed() -> None:
    link = bytes(64)
    signed = [Row(i, "a", b"{}", seq, link) for i, seq in enumerate([1, 2, 4, 5], start=1)]
    unsigned = [Row(i, "a", b"{}", seq) for i, seq in enumerate([1, 2, 4, 5], start=1)]
    assert [[r.seq for r in b.rows] for b in batch_rows(signed, 10, 10_000)] == [[1, 2], [4, 5]]
    assert len(batch_rows(unsigned, 10, 10_000)) == 1


def test_site_messages_split_at_a_signed_devices_seq_gap_only() -> None:
    link = bytes(64)
    rows = [Row(1, "a", b"{}", 1, link), Row(2, "b", b"{}", 7, link), Row(3, "a", b"{}", 2, link)]
    rows += [Row(4, "b", b"{}", 8, link), Row(5, "a", b"{}", 4, link), Row(6, "b", b"{}", 9, link)]
    batches = batch_site_rows(rows, 100, 100_000)
    assert [[(b.device, [r.seq for r in b.rows]) for b in m.blocks] for m in batches] == [
        [("a", [1, 2]), ("b", [7, 8])],
        [("a", [4]), ("b", [9])],
    ]
    unsigned = [Row(r.id, r.device, r.body, r.seq) for r in rows]
    assert len(batch_site_rows(unsigned, 100, 100_000)) == 1


def test_a_signing_site_sends_one_site_message_with_a_proof_per_device(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    outbox = Outbox(tmp_path / "o.sqlite", site="s1", synchronous="normal")
    for i in range(3):  # three poll cycles of two devices
        outbox.append([NewReading(d, T0 + i, {"energy_import": 10.0 + i}) for d in ("a", "b")])

    async def main() -> list[bytes]:
        pub = Recorder()
        info = {d: DeviceInfo("meter", DeviceTags()) for d in ("a", "b")}
        fwd = Forwarder("s1", outbox, pub, info, ThreadPoolExecutor(1), signing_key=key, wire=2)
        await fwd.step()
        return pub.payloads

    payloads = asyncio.run(main())
    assert len(payloads) == 1
    msgs = telemetry_messages(payloads[0])
    assert [(m.device, [r.seq for r in m.readings]) for m in msgs] == [("a", [0, 1, 2]), ("b", [0, 1, 2])]
    assert all(_check(m, key).first_prev == provenance.GENESIS for m in msgs)


def test_an_outbox_continues_a_chain_begun_elsewhere(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    begun = provenance.chain(
        "s1", "a", [provenance.ChainReading(s, T0 + s, {"energy_import": 1.0}) for s in range(5)]
    )
    outbox = Outbox(tmp_path / "o.sqlite", site="s1", synchronous="normal")
    outbox.continue_chains({"a": (4, begun[-1])})
    outbox.close()
    reopened = Outbox(tmp_path / "o.sqlite", site="s1", synchronous="normal")  # survives a restart
    reopened.append([NewReading("a", T0 + 5, {"energy_import": 2.0})])
    (msg,) = _send(reopened, key, wire=2)
    sr = _check(msg, key)
    assert (sr.first_seq, sr.first_prev) == (5, begun[-1])
    with pytest.raises(OutboxError, match="already numbered"):  # seqs never run backwards
        reopened.continue_chains({"a": (0, begun[0])})
