"""The poller against the in-memory fake transport and a manual clock (no network, no sleeps)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from epcwatch.clock import ManualClock
from epcwatch.edge.errors import ExceptionResponseError, FrameError, ReadOnlyError
from epcwatch.edge.health import HealthBook
from epcwatch.edge.outbox import NewReading
from epcwatch.edge.poller import BusPoller, DevicePlan, ReadGroup, ReadSpec, due_groups, poll_device, sanitize
from epcwatch.edge.site import DeviceConfig
from epcwatch.edge.transport import Registers
from epcwatch.testing.fake_transport import FakeTransport
from epcwatch.wire import Quality, Value


def _decode(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
    """A two-read test plan: holding 0..1 → power and energy, input 10 → frequency (0.1 Hz)."""
    out: dict[str, Value] = {}
    if answers[0] is not None:
        out["active_power"] = float(answers[0][0])
        out["energy_import"] = float(answers[0][1])
    if answers[1] is not None:
        out["frequency"] = int(answers[1][0]) / 10
    return out, "good"


def sync(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (no async plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper


PLAN = DevicePlan("test-meter", "meter", (ReadSpec(3, 0, 2), ReadSpec(4, 10, 1)), _decode)


def _image(power: int) -> dict[tuple[int, int], int | bool]:
    return {(3, 0): power, (3, 1): 1234, (4, 10): 500}


def _dev(i: int, unit: int, interval: float = 10.0, **kw: object) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {"id": f"m{i}", "bus": "b", "unit": unit, "profile": "test", "poll_interval_s": interval, **kw}
    )


@sync
async def test_poll_decodes_and_reports_good_quality() -> None:
    fake = FakeTransport()
    fake.set_image(1, _image(42))
    out = await poll_device(fake, PLAN, 1, timeout=0.1, retries=2)
    assert out.ok and out.quality == "good" and out.error is None
    assert out.values == {"active_power": 42.0, "energy_import": 1234.0, "frequency": 50.0}
    assert [r.function for r in fake.requests] == [3, 4]


@sync
async def test_exception_response_gives_partial_and_is_not_retried() -> None:
    fake = FakeTransport()
    image = _image(7)
    del image[(4, 10)]  # the device answers exception 2 for this read
    fake.set_image(1, image)
    out = await poll_device(fake, PLAN, 1, timeout=0.1, retries=3)
    assert out.ok and out.quality == "partial"
    assert out.values == {"active_power": 7.0, "energy_import": 1234.0}
    assert out.error is not None and "illegal data address" in out.error
    assert fake.count(1) == 2  # one try per read: an exception response is an answer


@sync
async def test_garbage_and_busy_are_retried_then_succeed() -> None:
    fake = FakeTransport()
    fake.set_image(1, _image(9))
    fake.fail_next(1, FrameError("bad crc"), ExceptionResponseError(6))
    out = await poll_device(fake, PLAN, 1, timeout=0.1, retries=2)
    assert out.ok and out.quality == "good"
    assert fake.count(1) == 4


@sync
async def test_dead_device_costs_one_read_per_attempt_only() -> None:
    fake = FakeTransport()
    out = await poll_device(fake, PLAN, 5, timeout=0.1, retries=2)
    assert not out.ok and out.error is not None and "no answer" in out.error
    assert fake.count(5) == 3  # first read, 3 attempts; the second read is skipped


@sync
async def test_only_read_function_codes_exist() -> None:
    fake = FakeTransport()
    for fc in (5, 6, 15, 16, 23):
        with pytest.raises(ReadOnlyError):
            await fake.read(fc, 0, 1, 1, 0.1)


def test_sanitize_drops_what_the_wire_contract_refuses() -> None:
    clean, removed = sanitize(
        {"active_power": float("nan"), "energy_import": 3.0, "bogus": 1.0, "run_status": 1, "alarm_code": 2.0}
    )
    assert clean == {"energy_import": 3.0, "alarm_code": 2}
    assert removed


def _poller(
    fake: FakeTransport, devices: list[DeviceConfig], clock: Any
) -> tuple[BusPoller, list[NewReading], HealthBook]:
    out: list[NewReading] = []
    health = HealthBook([d.id for d in devices])
    poller = BusPoller(
        "b", transport=fake, devices=[(d, PLAN) for d in devices], clock=clock, sink=out.append, health=health
    )
    return poller, out, health


@sync
async def test_hung_device_does_not_delay_the_others() -> None:
    """Counted, not timed: over K ticks each healthy device is polled exactly K times while one
    device's first request never returns."""
    clock = ManualClock(1_700_000_000.0)
    fake = FakeTransport()
    devices = [_dev(i, unit=i, timeout_s=60.0) for i in range(1, 5)]
    for d in devices:
        fake.set_image(d.unit, _image(d.unit))
    fake.hang(4)
    poller, out, health = _poller(fake, devices, clock)
    K = 20
    hung_task = None
    for _ in range(K):
        started = poller.tick()
        hung_task = hung_task or next(t for t in started if t.get_name() == "poll-m4")
        healthy = [t for t in started if t is not hung_task]
        await asyncio.gather(*healthy)
        clock.advance(10.0)
    assert [health.counts(f"m{i}") for i in (1, 2, 3)] == [(K, 0)] * 3
    assert health.counts("m4") == (0, 0) and not hung_task.done()
    assert poller.devices[3].overruns == K - 1
    # per device: K readings, ts on the 10 s grid, in order
    for i in (1, 2, 3):
        ts = [r.ts for r in out if r.device == f"m{i}"]
        assert len(ts) == K and ts == sorted(ts)
    fake.release(4)
    await hung_task
    assert health.counts("m4") == (1, 0)


@sync
async def test_dead_device_backs_off_and_recovers() -> None:
    clock = ManualClock(1_700_000_000.0)
    fake = FakeTransport()
    devices = [_dev(1, unit=1, backoff_max_s=40.0), _dev(2, unit=2)]
    fake.set_image(1, _image(1))
    fake.set_image(2, _image(2))
    fake.dead.add(1)
    poller, _, health = _poller(fake, devices, clock)
    attempts = []
    for _ in range(30):
        await asyncio.gather(*poller.tick())
        attempts.append(fake.count(1))
        clock.advance(10.0)
    # attempts at ticks 0, 1, 3, 7, then every 4th (the 40 s cap): far fewer than 30 polls
    assert health.counts("m1")[1] == len(set(attempts)) - (1 if attempts[0] == 0 else 0)
    assert health.counts("m1")[1] < 12
    assert health.counts("m2") == (30, 0)
    fake.dead.discard(1)
    for _ in range(6):
        await asyncio.gather(*poller.tick())
        clock.advance(10.0)
    assert health.counts("m1")[0] >= 1 and health.device_health()[0].consecutive_failures == 0


async def _run_loop(clock: Any) -> list[NewReading]:
    fake = FakeTransport()
    devices = [_dev(1, unit=1, interval=5.0), _dev(2, unit=2, interval=15.0)]
    for d in devices:
        fake.set_image(d.unit, _image(d.unit))
    poller, out, _ = _poller(fake, devices, clock)
    task = asyncio.create_task(poller.run())
    for _ in range(60):
        for _ in range(20):  # let due polls run to completion at this instant
            await asyncio.sleep(0)
        clock.advance(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return out


def test_run_loop_polls_on_the_clock_schedule(step_clock: Any) -> None:
    step_clock.t = 1_700_000_003.0
    out = asyncio.run(_run_loop(step_clock))
    ts1 = [r.ts / 1000 for r in out if r.device == "m1"]
    ts2 = [r.ts / 1000 for r in out if r.device == "m2"]
    assert ts1[0] == ts2[0] == 1_700_000_003.0  # first poll at start, then on the grid
    assert ts1[1:] == [1_700_000_005.0 + 5 * k for k in range(len(ts1) - 1)]
    assert ts2[1:] == [1_700_000_010.0 + 15 * k for k in range(len(ts2) - 1)]
    assert len(ts1) == 13 and len(ts2) == 5  # 3 + 57 s of time: slots up to 1_700_000_060


def _decode_energy(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
    return ({"energy_import": float(answers[0][0])} if answers[0] is not None else {}), "good"


def _decode_power(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
    return ({"active_power": float(answers[0][0])} if answers[0] is not None else {}), "good"


GROUPED = DevicePlan(
    "grouped",
    "meter",
    (ReadSpec(3, 0, 1), ReadSpec(3, 1, 1)),
    _decode,
    groups=(
        ReadGroup("realtime", None, (ReadSpec(3, 0, 1),), _decode_power),
        ReadGroup("counters", 60.0, (ReadSpec(3, 1, 1),), _decode_energy),
    ),
)


@sync
async def test_poll_groups_are_read_on_their_own_interval() -> None:
    clock = ManualClock(1_699_999_980.0)  # a multiple of 60 (and of 10)
    fake = FakeTransport()
    fake.set_image(1, {(3, 0): 500, (3, 1): 7})
    out: list[NewReading] = []
    dev = _dev(1, unit=1, interval=10.0)
    poller = BusPoller(
        "b", transport=fake, devices=[(dev, GROUPED)], clock=clock, sink=out.append, health=HealthBook(["m1"])
    )
    for _ in range(13):  # 0, 10, …, 120 s
        await asyncio.gather(*poller.tick())
        clock.advance(10.0)
    with_energy = [round(r.ts / 1000) - 1_699_999_980 for r in out if "energy_import" in r.values]
    assert len(out) == 13 and all(r.values["active_power"] == 500.0 for r in out)
    assert with_energy == [0, 60, 120]
    assert [r.address for r in fake.requests].count(1) == 3


def test_due_groups_without_interval_are_always_due() -> None:
    groups = GROUPED.poll_groups()
    assert [g.name for g in due_groups(groups, {"counters": 100.0}, 50.0)] == ["realtime"]
    assert [g.name for g in due_groups(groups, {"counters": 100.0}, 100.0)] == ["realtime", "counters"]
    assert [g.name for g in PLAN.poll_groups()] == ["all"]


def test_agent_reads_every_group_unless_told_otherwise(tmp_path: Any) -> None:
    from epcwatch.edge.agent import Agent
    from epcwatch.edge.site import SiteConfig

    cfg = SiteConfig.model_validate(
        {
            "site": "s",
            "buses": [{"type": "tcp", "id": "b", "host": "127.0.0.1"}],
            "devices": [
                {"id": "m1", "bus": "b", "unit": 1, "profile": "grouped"},
                {"id": "m2", "bus": "b", "unit": 2, "profile": "grouped", "use_group_intervals": True},
            ],
            "mqtt": {"host": "127.0.0.1"},
            "outbox": {"path": str(tmp_path / "o.sqlite")},
        }
    )

    async def main() -> list[list[str]]:
        agent = Agent(
            cfg, {"m1": GROUPED, "m2": GROUPED}, ManualClock(), transport_factory=lambda b: FakeTransport()
        )
        try:
            return [[g.name for g in d.plan.poll_groups()] for d in agent.pollers[0].devices]
        finally:
            agent.outbox.close()

    assert asyncio.run(main()) == [["all"], ["realtime", "counters"]]
