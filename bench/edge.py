"""Edge agent benchmark: points/s polled, decoded and published on one core, CPU-seconds per
1,000 points, peak RSS with 100 devices, and the outbox replay rate after an outage.

    .venv/bin/python bench/edge.py [--devices 100] [--seconds 20]

A pymodbus TCP server (100 Eastron SDM630 images, one unit id each) runs in its own process on
the other core; Mosquitto runs as a local server. The limits are measured in the same run:

* raw: a bare pymodbus client issuing the same reads (the profile's read plan) as fast as the
  server answers, no decoding, no storage, no MQTT — the ceiling for polled points/s;
* live rate: what the example site's polling (every device every 15 s) produces; the replay
  of a backlog must beat it at least tenfold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROFILE = "eastron-sdm630"
VALUES = {
    "voltage_l1": 230.1,
    "voltage_l2": 229.8,
    "voltage_l3": 231.0,
    "current_l1": 12.5,
    "current_l2": 11.0,
    "current_l3": 13.2,
    "active_power": 8420.0,
    "power_factor": 0.97,
    "frequency": 50.02,
    "energy_import": 123456.7,
}


def _image() -> dict[str, dict[int, int | bool]]:
    from epcwatch.edge.profile_plan import FUNCTION_CODES, device_plan
    from epcwatch.profiles.encode import register_image
    from epcwatch.profiles.model import load_profile

    image = register_image(load_profile(PROFILE), VALUES)
    tables = {c: n for n, c in FUNCTION_CODES.items()}
    for r in device_plan(PROFILE).reads:  # a real meter answers the gaps the planner bridges
        for a in range(r.address, r.address + r.count):
            image.setdefault(tables[r.function], {}).setdefault(a, 0)
    return image


def _serve(port: int, units: int, ready: Any) -> None:
    """The Modbus server process (pinned to the last core)."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        os.sched_setaffinity(0, {os.cpu_count() - 1})  # type: ignore[operator]
    image = _image()

    def block(table: dict[int, int | bool], bits: bool) -> list[Any]:
        if not table:
            table = {0xFFFF: 0}
        lo, hi = min(table), max(table)
        vals = [table.get(a, 0) for a in range(lo, hi + 1)]
        dt = DataType.BITS if bits else DataType.REGISTERS
        return [
            SimData(
                address=lo, values=[bool(v) for v in vals] if bits else [int(v) for v in vals], datatype=dt
            )
        ]

    tables = ("coil", "discrete", "holding", "input")
    devices = [
        SimDevice(id=u, simdata=tuple(block(image.get(t, {}), t in ("coil", "discrete")) for t in tables))
        for u in range(1, units + 1)
    ]

    async def main() -> None:
        server = ModbusTcpServer(devices, address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


async def _raw_rate(port: int, units: int, seconds: float) -> tuple[float, float]:
    """Polls/s and CPU-s of a bare pymodbus client running the same read plan, same concurrency."""
    from pymodbus.client import AsyncModbusTcpClient

    from epcwatch.edge.profile_plan import device_plan

    reads = device_plan(PROFILE).reads
    calls = {
        1: "read_coils",
        2: "read_discrete_inputs",
        3: "read_holding_registers",
        4: "read_input_registers",
    }
    polls = 0
    deadline = time.monotonic() + seconds

    async def worker(offset: int) -> None:
        nonlocal polls
        client = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0, reconnect_delay=0)
        await client.connect()
        u = offset
        while time.monotonic() < deadline:
            for r in reads:
                rr = await getattr(client, calls[r.function])(
                    r.address, count=r.count, device_id=u % units + 1
                )
                assert not rr.isError()
            polls += 1
            u += 1
        client.close()

    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(worker(i) for i in range(4)))
    return polls / (time.monotonic() - t0), time.process_time() - cpu0


def _site(tmp: Path, modbus_port: int, mqtt_port: int, units: int, interval: float) -> Any:
    from epcwatch.edge.site import SiteConfig

    return SiteConfig.model_validate(
        {
            "site": "bench",
            "buses": [
                {"type": "tcp", "id": "gw", "host": "127.0.0.1", "port": modbus_port, "max_concurrency": 4}
            ],
            "devices": [
                {
                    "id": f"m{u}",
                    "bus": "gw",
                    "unit": u,
                    "profile": PROFILE,
                    "poll_interval_s": interval,
                    "timeout_s": 5,
                }
                for u in range(1, units + 1)
            ],
            # MQTT 3.1.1: with no subscriber in the bench, MQTT 5 PUBACKs would say 0x10 "no matching
            # subscribers" and the agent would rightly keep every reading for retry
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "max_inflight": 100, "protocol": "3.1.1"},
            "outbox": {"path": str(tmp / "outbox.sqlite"), "synchronous": "full"},
            "health": {"interval_s": 5},
        }
    )


async def _agent_rate(cfg: Any, plans: dict[str, Any], warmup: float, seconds: float) -> dict[str, float]:
    from epcwatch.clock import SystemClock
    from epcwatch.edge.agent import Agent

    agent = Agent(cfg, plans, SystemClock())
    task = asyncio.create_task(agent.run())
    await asyncio.sleep(warmup)
    r0, p0, cpu0, t0 = (
        agent.forwarder.published_readings,
        _polls(agent),
        time.process_time(),
        time.monotonic(),
    )
    await asyncio.sleep(seconds)
    r1, p1, cpu1, t1 = (
        agent.forwarder.published_readings,
        _polls(agent),
        time.process_time(),
        time.monotonic(),
    )
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return {"published": (r1 - r0) / (t1 - t0), "polled": (p1 - p0) / (t1 - t0), "cpu": cpu1 - cpu0}


def _polls(agent: Any) -> int:
    return sum(agent.health.counts(d)[0] for d in agent.health.devices)


async def _replay_rate(cfg: Any, plans: dict[str, Any], backlog_per_device: int) -> tuple[float, int]:
    """Readings/s drained from a pre-filled outbox (an outage's backlog) by the forwarder alone."""
    from concurrent.futures import ThreadPoolExecutor

    from epcwatch.clock import SystemClock
    from epcwatch.edge.forwarder import DeviceInfo, Forwarder
    from epcwatch.edge.outbox import NewReading, Outbox
    from epcwatch.edge.publisher import Publisher
    from epcwatch.wire import DeviceTags

    outbox = Outbox(cfg.outbox.path.with_name("replay.sqlite"))
    plan = next(iter(plans.values()))
    values = plan.decode([_raw_answer(r) for r in plan.reads])[0]  # a full 30-value reading
    ts = int(time.time() * 1000)
    for k in range(backlog_per_device):
        outbox.append([NewReading(d.id, ts + k * 15_000, values) for d in cfg.devices])
    total = outbox.depth
    publisher = Publisher(cfg.model_copy(update={"agent": "bench-replay"}), SystemClock())
    executor = ThreadPoolExecutor(max_workers=1)
    fwd = Forwarder(
        cfg.site,
        outbox,
        publisher,
        {d.id: DeviceInfo(plans[d.id].kind, DeviceTags()) for d in cfg.devices},
        executor,
        max_inflight=cfg.mqtt.max_inflight,
        max_readings=cfg.mqtt.max_readings_per_message,
    )
    publisher.start(asyncio.get_running_loop(), fwd.on_ack, fwd.wake)
    while not publisher.connected:
        await asyncio.sleep(0.01)
    task = asyncio.create_task(fwd.run())
    t0 = time.monotonic()
    while fwd.published_readings < total:
        await asyncio.sleep(0.01)
    elapsed = time.monotonic() - t0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await fwd.flush_deletes()
    publisher.stop()
    executor.shutdown()
    outbox.close()
    return total / elapsed, total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=20.0, help="measurement window of the agent")
    args = ap.parse_args()

    from epcwatch.devservices.services import Mosquitto, free_port
    from epcwatch.edge.profile_plan import device_plan

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # the agent: one core
    # every poll reads the whole plan (all poll groups), the same work as the raw client below
    plan = dataclasses.replace(device_plan(PROFILE), groups=())
    points_per_poll = len(plan.decode([_raw_answer(r) for r in plan.reads])[0])
    port = free_port()
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=_serve, args=(port, args.devices, ready), daemon=True)
    server.start()
    if not ready.wait(60):
        print("Modbus server did not start", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        mosq = Mosquitto(state_dir=tmp, port=free_port())
        mosq.start()
        try:
            raw_polls, raw_cpu = asyncio.run(_raw_rate(port, args.devices, 8.0))
            cfg = _site(tmp, port, mosq.port, args.devices, interval=0.1)
            plans = {dev.id: plan for dev in cfg.devices}
            agent = asyncio.run(_agent_rate(cfg, plans, warmup=3.0, seconds=args.seconds))
            replay, backlog = asyncio.run(_replay_rate(cfg, plans, backlog_per_device=200))
        finally:
            mosq.stop()
            server.terminate()
            server.join(10)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    points = agent["published"] * points_per_poll
    raw_points = raw_polls * points_per_poll
    cpu_per_1000 = agent["cpu"] / (agent["published"] * points_per_poll * args.seconds / 1000)
    live = args.devices / 15.0  # the example site: every device every 15 s
    print(f"devices {args.devices} x {PROFILE}: {len(plan.reads)} reads, {points_per_poll} points per poll")
    print(
        f"raw pymodbus (limit)       {raw_points:10.0f} points/s  "
        f"({raw_polls:.0f} polls/s, same reads, 4 connections)"
    )
    print(f"agent polled+decoded+sent  {points:10.0f} points/s  ({agent['published']:.0f} readings/s acked)")
    print(f"  ratio to the raw limit   {points / raw_points:10.2f}")
    print(
        f"CPU per 1,000 points       {cpu_per_1000:10.4f} CPU-s (agent process: poller, outbox fsyncs, MQTT)"
    )
    print(f"  raw client, same work    {raw_cpu / (raw_points * 8.0 / 1000):10.4f} CPU-s")
    print(f"peak RSS                   {peak_rss_mb:10.1f} MB")
    print(
        f"replay of a backlog        {replay:10.0f} readings/s "
        f"({backlog} readings of {points_per_poll} values, 100 per message)"
    )
    print(
        f"  ratio to live rate       {replay / live:10.0f}x  "
        f"(live: {args.devices} devices / 15 s = {live:.1f}/s)"
    )
    print(f"  ratio to polled rate     {replay / max(agent['published'], 1e-9):10.1f}x")
    return 0


def _raw_answer(read: Any) -> list[int] | list[bool]:
    """A plausible answer to one read, decoded only to count the points a poll yields."""
    from epcwatch.edge.profile_plan import FUNCTION_CODES

    image = _image()
    table = {c: n for n, c in FUNCTION_CODES.items()}[read.function]
    cells = image.get(table, {})
    return [cells.get(a, 0) for a in range(read.address, read.address + read.count)]  # type: ignore[return-value]


if __name__ == "__main__":
    sys.exit(main())
