"""The forwarder's dispatch/ack logic with a scripted publisher: whatever the order of PUBACKs,
rejections and new readings, every reading is delivered, per device in order, and deleted."""

from __future__ import annotations

import asyncio
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epcwatch.edge.forwarder import DeviceInfo, Forwarder
from epcwatch.edge.outbox import NewReading, Outbox
from epcwatch.wire import DeviceTags, TelemetryMessage

DEVICES = ("a", "b", "c")


class ScriptedPublisher:
    """Stands in for :class:`Publisher`: records what was handed over; the test decides acks.

    The broker receives messages in publish order on the one connection; ``delivered`` is that
    order restricted to the messages it accepted (PUBACKs may come back in any order)."""

    def __init__(self) -> None:
        self.connected = True
        self.pending: dict[int, bytes] = {}
        self.order: list[tuple[int, bytes]] = []
        self.accepted: set[int] = set()
        self._mid = 0

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        assert qos == 1 and topic.endswith("/telemetry")
        self._mid += 1
        self.pending[self._mid] = payload
        self.order.append((self._mid, payload))
        return self._mid

    @property
    def delivered(self) -> list[TelemetryMessage]:
        return [TelemetryMessage.model_validate_json(p) for mid, p in self.order if mid in self.accepted]


async def _scenario(path: Path, seed: int, reject_every: int) -> tuple[Forwarder, ScriptedPublisher, Outbox]:
    rng = random.Random(seed)
    outbox = Outbox(path, synchronous="normal")  # durability is not under test here: keep it quick
    pub = ScriptedPublisher()
    executor = ThreadPoolExecutor(max_workers=1)
    fwd = Forwarder(
        "s1",
        outbox,
        pub,
        {d: DeviceInfo("meter", DeviceTags()) for d in DEVICES},
        executor,
        max_inflight=4,
        max_readings=5,
        retry_min_s=0.0,  # resend rejected messages at once in this test
    )
    n = 0
    for step in range(200):
        if rng.random() < 0.5:
            batch = [
                NewReading(rng.choice(DEVICES), 1_700_000_000_000 + n + i, {"active_power": 1.0})
                for i in range(3)
            ]
            n += len(batch)
            outbox.append(batch)
        await fwd.step()
        mids = list(pub.pending)
        rng.shuffle(mids)
        for mid in mids[: rng.randint(0, len(mids))]:
            del pub.pending[mid]
            if reject_every and step % reject_every == 0:
                # not authorised, or no matching subscribers (nobody got it): must be resent
                fwd.on_ack(mid, 0x87 if step % 2 else 0x10)
            else:
                pub.accepted.add(mid)
                fwd.on_ack(mid, 0)
        if rng.random() < 0.1:
            pub.connected = not pub.connected
    pub.connected = True
    for _ in range(500):  # drain: ack everything in order
        await fwd.step()
        for mid in list(pub.pending):
            del pub.pending[mid]
            pub.accepted.add(mid)
            fwd.on_ack(mid, 0)
        if outbox.depth == 0 and not pub.pending:
            break
    await fwd.flush_deletes()
    executor.shutdown()
    return fwd, pub, outbox


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10_000), st.sampled_from([0, 7]))
def test_every_reading_delivered_in_order_and_deleted(tmp_path: Path, seed: int, reject_every: int) -> None:
    path = tmp_path / f"f{seed}-{reject_every}.sqlite"
    for f in tmp_path.glob(f"{path.name}*"):  # hypothesis may replay an example: start afresh
        f.unlink()
    fwd, pub, outbox = asyncio.run(_scenario(path, seed, reject_every))
    delivered = pub.delivered
    assert outbox.depth == 0 and fwd.in_flight() == 0
    for d in DEVICES:
        seqs = [r.seq for m in delivered if m.device == d for r in m.readings]
        assert sorted(set(seqs)) == list(range(outbox.next_seq(d)))
        if not reject_every:
            assert seqs == list(range(outbox.next_seq(d)))  # without rejections: no duplicates, in order
    delivered = pub.delivered
    assert all(len(m.readings) <= 5 for m in delivered)
    outbox.close()


def test_nothing_is_handed_over_while_disconnected(tmp_path: Path) -> None:
    async def main() -> int:
        outbox = Outbox(tmp_path / "o.sqlite")
        pub = ScriptedPublisher()
        pub.connected = False
        fwd = Forwarder("s1", outbox, pub, {"a": DeviceInfo("meter", DeviceTags())}, ThreadPoolExecutor(1))
        outbox.append([NewReading("a", 1_700_000_000_000, {"active_power": 1.0})])
        return await fwd.step() + len(pub.pending)

    assert asyncio.run(main()) == 0


def test_message_bodies_carry_the_stored_readings(tmp_path: Path) -> None:
    async def main() -> bytes:
        outbox = Outbox(tmp_path / "o.sqlite")
        pub = ScriptedPublisher()
        fwd = Forwarder(
            "s1",
            outbox,
            pub,
            {"a": DeviceInfo("hvac", DeviceTags(building="b1"))},
            ThreadPoolExecutor(1),
        )
        outbox.append(
            [NewReading("a", 1_700_000_000_000 + i, {"supply_air_temp": 14.5 + i}) for i in range(3)]
        )
        await fwd.step()
        return next(iter(pub.pending.values()))

    doc = orjson.loads(asyncio.run(main()))
    assert doc["kind"] == "hvac" and doc["tags"] == {"building": "b1"}
    assert [r["values"]["supply_air_temp"] for r in doc["readings"]] == [14.5, 15.5, 16.5]
