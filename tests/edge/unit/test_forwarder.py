"""The forwarder's dispatch/ack logic with a scripted publisher and a scripted collector: whatever
the order of PUBACKs, rejections, end-to-end acknowledgements (some lost) and new readings,
every reading is delivered and deleted only once acknowledged end to end."""

from __future__ import annotations

import asyncio
import contextlib
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epcwatch.edge.forwarder import DeviceInfo, Forwarder
from epcwatch.edge.outbox import NewReading, Outbox
from epcwatch.wire import Ack, DeviceTags, TelemetryMessage, coalesce

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


def ack_of(*payloads: bytes) -> bytes:
    """What a collector publishes after storing these messages."""
    devices: dict[str, list[tuple[int, int]]] = {}
    for p in payloads:
        m = TelemetryMessage.model_validate_json(p)
        devices.setdefault(m.device, []).extend((r.seq, r.seq) for r in m.readings)
    return Ack(site="s1", devices={d: coalesce(r) for d, r in devices.items()}).model_dump_json().encode()


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


async def _scenario(path: Path, seed: int, reject_every: int) -> tuple[Forwarder, ScriptedPublisher, Outbox]:
    rng = random.Random(seed)
    clock = Clock()
    stored: list[bytes] = []  # accepted by the broker, not yet acknowledged by the "collector"
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
        max_unacked=8,
        ack_timeout_s=5.0,
        ack_timeout_max_s=20.0,
        monotonic=clock,
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
                stored.append(pub.order[mid - 1][1])
                fwd.on_ack(mid, 0)
        # the collector stores some of what the broker accepted and acknowledges it; some of its
        # acknowledgements are lost (a broker crash), so those readings must be sent again
        rng.shuffle(stored)
        k = rng.randint(0, len(stored))
        done, stored = stored[:k], stored[k:]
        if done and rng.random() < 0.8:
            fwd.on_e2e_ack(ack_of(*done))
        clock.t += rng.uniform(0, 2)
        if rng.random() < 0.1:
            pub.connected = not pub.connected
    pub.connected = True
    for _ in range(500):  # drain: everything is accepted, stored and acknowledged
        await fwd.step()
        for mid in list(pub.pending):
            del pub.pending[mid]
            pub.accepted.add(mid)
            fwd.on_ack(mid, 0)
            fwd.on_e2e_ack(ack_of(pub.order[mid - 1][1]))
        clock.t += 1.0
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
    assert outbox.depth == 0 and fwd.in_flight() == 0 and fwd.unacked() == 0
    for d in DEVICES:
        seqs = [r.seq for m in delivered if m.device == d for r in m.readings]
        assert sorted(set(seqs)) == list(range(outbox.next_seq(d)))
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


async def _rig(tmp_path: Path, **kw: object) -> tuple[Forwarder, ScriptedPublisher, Outbox, Clock]:
    outbox = Outbox(tmp_path / "o.sqlite", synchronous="normal")
    pub = ScriptedPublisher()
    clock = Clock()
    fwd = Forwarder(
        "s1",
        outbox,
        pub,
        {d: DeviceInfo("meter", DeviceTags()) for d in DEVICES},
        ThreadPoolExecutor(1),
        retry_min_s=0.0,
        monotonic=clock,
        **kw,  # type: ignore[arg-type]
    )
    return fwd, pub, outbox, clock


def _readings(device: str, n: int, t0: int = 0) -> list[NewReading]:
    return [NewReading(device, 1_700_000_000_000 + t0 + i, {"active_power": 1.0}) for i in range(n)]


def test_puback_deletes_nothing_the_end_to_end_ack_does(tmp_path: Path) -> None:
    async def main() -> None:
        fwd, pub, outbox, _ = await _rig(tmp_path, max_readings=10)
        outbox.append(_readings("a", 5) + _readings("b", 3))
        assert await fwd.step() == 2
        for mid in list(pub.pending):
            fwd.on_ack(mid, 0)
        await fwd.step()
        assert outbox.depth == 8 and fwd.unacked() == 8 and fwd.in_flight() == 0
        # an acknowledgement of a, seqs 0-2 (say the collector stored a partial resend)
        fwd.on_e2e_ack(b'{"v":1,"site":"s1","devices":{"a":[[0,2]]}}')
        fwd.on_e2e_ack(b'{"v":1,"site":"other","devices":{"b":[[0,2]]}}')  # not ours: ignored
        fwd.on_e2e_ack(b'{"v":1,"site":"s1","devices":{"b":[[2,0]]}}')  # invalid: ignored
        await fwd.step()
        assert outbox.depth == 5 and fwd.unacked() == 5
        fwd.on_e2e_ack(ack_of(*[p for _, p in pub.order]))
        await fwd.step()
        assert outbox.depth == 0 and fwd.unacked() == 0 and fwd.acked_readings == 8

    asyncio.run(main())


def test_unacknowledged_messages_are_sent_again_after_a_growing_timeout(tmp_path: Path) -> None:
    async def main() -> None:
        fwd, pub, outbox, clock = await _rig(tmp_path, ack_timeout_s=10.0, ack_timeout_max_s=25.0)
        outbox.append(_readings("a", 3))
        await fwd.step()
        for mid in list(pub.pending):
            fwd.on_ack(mid, 0)
        times = []
        for _ in range(80):  # 80 s, nothing ever acknowledged (collectors away, acks lost)
            clock.t += 1.0
            before = len(pub.order)
            await fwd.step()
            if len(pub.order) > before:
                times.append(clock.t)
            for mid in list(pub.pending):
                del pub.pending[mid]
                fwd.on_ack(mid, 0)
        # resent after 10, then 20, then 25 (capped) seconds
        assert times == [10.0, 30.0, 55.0, 80.0], times
        assert {p for _, p in pub.order} == {pub.order[0][1]}  # the same message each time
        assert outbox.depth == 3
        fwd.on_e2e_ack(ack_of(pub.order[0][1]))
        await fwd.step()
        assert outbox.depth == 0 and fwd.unacked() == 0

    asyncio.run(main())


def test_unacked_window_bounds_what_is_out(tmp_path: Path) -> None:
    async def main() -> None:
        fwd, pub, outbox, _ = await _rig(tmp_path, max_readings=2, max_inflight=3, max_unacked=5)
        outbox.append(_readings("a", 40))
        for _ in range(10):
            await fwd.step()
            for mid in list(pub.pending):
                del pub.pending[mid]
                fwd.on_ack(mid, 0)
        assert len(pub.order) == 5 and fwd.unacked() == 10  # 5 messages of 2, no more
        fwd.on_e2e_ack(ack_of(pub.order[0][1], pub.order[1][1]))
        await fwd.step()
        assert len(pub.order) == 7  # two acknowledged, two more out

    asyncio.run(main())


def test_after_a_rejection_everything_unacknowledged_is_sent_again_in_order(tmp_path: Path) -> None:
    """A refused message followed by accepted ones of the same device: the rewind sends the
    refused one and everything after it again, so the last copies arrive in seq order."""

    async def main() -> None:
        fwd, pub, outbox, _ = await _rig(tmp_path, max_readings=2, max_inflight=10)
        outbox.append(_readings("a", 6))
        await fwd.step()
        first, *rest = sorted(pub.pending)
        for mid in rest:
            fwd.on_ack(mid, 0)
        fwd.on_ack(first, 0x87)
        pub.pending.clear()
        await fwd.step()
        seqs = [[r.seq for r in TelemetryMessage.model_validate_json(p).readings] for _, p in pub.order]
        assert seqs == [[0, 1], [2, 3], [4, 5], [0, 1], [2, 3], [4, 5]]

    asyncio.run(main())


def test_cancel_arriving_as_the_wake_event_fires_stops_the_loop(tmp_path: Path) -> None:
    """The graceful-stop hang of ``edge run``: with ``asyncio.wait_for`` (Python 3.11) a cancel
    that arrives in the loop iteration where the awaited event fires is swallowed, and the
    forwarder loop runs on forever. Try every interleaving of a few loop iterations."""

    async def main() -> list[int]:
        fwd, pub, _, _ = await _rig(tmp_path)
        pub.connected = False
        hung = []
        for yields in range(6):
            task = asyncio.create_task(fwd.run())
            for _ in range(3):
                await asyncio.sleep(0)
            fwd.wake()
            for _ in range(yields):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(task), 2.0)
            except asyncio.CancelledError:
                continue
            except TimeoutError:
                hung.append(yields)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                    await asyncio.wait_for(task, 1.0)
        return hung

    assert asyncio.run(main()) == []
