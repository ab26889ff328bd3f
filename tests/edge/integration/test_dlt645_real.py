"""The edge against simulated DL/T 645 meters: over a transparent TCP gateway and over a socat
pseudo-terminal pair (RS-485 in a box); a dead meter on a shared line never changes the
others' poll counts; bad frames are typed errors, a quality flag and a counter, never a stall."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from epcwatch.cli import app
from epcwatch.edge.dlt645_bus import Dlt645Transport
from epcwatch.edge.health import HealthBook
from epcwatch.edge.outbox import NewReading
from epcwatch.edge.poller import BusPoller, PollOutcome, poll_device
from epcwatch.edge.profile_plan import device_plan
from epcwatch.edge.site import DeviceConfig, Dlt645SerialBus, Dlt645TcpBus
from epcwatch.profiles.dlt645_profile import load_dlt645_profile
from epcwatch.sim.dlt645 import Dlt645Meter, Dlt645Slave

pytestmark = pytest.mark.integration

PROFILE = "chint-dtsu666-dlt645"
ADDRESSES = ("000000000001", "000000000002", "202411110002")


def _values(i: int) -> dict[str, float]:
    """What meter ``i`` holds: values its formats carry exactly (0.1 V, 1 mA, 0.1 W, …)."""
    return {
        "voltage_l1": 230.1 + i, "voltage_l2": 229.5, "voltage_l3": 231.0,
        "current_l1": 10.5 + i, "current_l2": 9.875, "current_l3": -1.25,
        "active_power": 7012.5 + 100 * i, "active_power_l1": 2350.0, "active_power_l2": 2262.5,
        "active_power_l3": 2400.0, "reactive_power": -502.5, "power_factor": 0.975,
        "frequency": 50.01, "energy_import": 45678.9 + i, "energy_export": 1.25,
    }


def _slave(addresses: Sequence[str] = ADDRESSES, profile: str = PROFILE) -> Dlt645Slave:
    prof = load_dlt645_profile(profile)
    return Dlt645Slave(
        [Dlt645Meter(a, prof, lambda i=i: _values(i)) for i, a in enumerate(addresses)]
    )


def _poll(bus: Dlt645TcpBus | Dlt645SerialBus, addresses: Sequence[str], rounds: int = 1,
          timeout: float = 1.0, retries: int = 1) -> list[PollOutcome]:
    plan = device_plan(PROFILE)

    async def main() -> list[PollOutcome]:
        transport = Dlt645Transport.for_bus(bus)
        out: list[PollOutcome] = []
        try:
            for _ in range(rounds):
                # started together; the transport puts one request at a time on the line
                out += await asyncio.gather(
                    *(poll_device(transport, plan, int(a), timeout, retries) for a in addresses)
                )
        finally:
            await transport.close()
        return out

    return asyncio.run(main())


def test_tcp_gateway_reads_every_meter(dlt645_peer: Callable[..., Any]) -> None:
    peer = dlt645_peer(_slave())
    bus = Dlt645TcpBus(type="dlt645_tcp", id="gw", host="127.0.0.1", port=peer.port, inter_frame_gap_ms=0)
    outcomes = _poll(bus, ADDRESSES, rounds=2)
    assert [o.values for o in outcomes] == [_values(i) for i in range(3)] * 2
    assert all(o.quality == "good" and o.error is None for o in outcomes)
    n = len(load_dlt645_profile(PROFILE).points)
    assert dict(peer.slave.requests) == {a: 2 * n for a in ADDRESSES}


def test_rs485_over_a_socat_pty_pair(dlt645_peer: Callable[..., Any], pty_pair: tuple[str, str]) -> None:
    agent_end, device_end = pty_pair
    peer = dlt645_peer(_slave(), serial_port=device_end, baud=9600)
    bus = Dlt645SerialBus(type="dlt645_serial", id="rs485", port=agent_end, baud=9600, inter_frame_gap_ms=1)
    outcomes = _poll(bus, ADDRESSES, rounds=2)
    assert [o.values for o in outcomes] == [_values(i) for i in range(3)] * 2
    assert all(o.quality == "good" and o.error is None for o in outcomes)
    n = len(load_dlt645_profile(PROFILE).points)
    assert dict(peer.slave.requests) == {a: 2 * n for a in ADDRESSES}


def test_1997_edition_over_tcp(dlt645_peer: Callable[..., Any]) -> None:
    values = {"voltage_l1": 230.0, "current_l1": 10.5, "active_power": 7012.5, "energy_import": 45678.9}
    prof = load_dlt645_profile("generic-dlt645-1997")
    peer = dlt645_peer(Dlt645Slave([Dlt645Meter("000000000007", prof, lambda: values)]))
    bus = Dlt645TcpBus(type="dlt645_tcp", id="gw", host="127.0.0.1", port=peer.port, inter_frame_gap_ms=0)

    async def main() -> PollOutcome:
        transport = Dlt645Transport.for_bus(bus)
        try:
            return await poll_device(transport, device_plan(prof), 7, 1.0, 0)
        finally:
            await transport.close()

    out = asyncio.run(main())
    assert out.values == values  # the points the meter lacks are error replies: partial
    assert out.quality == "partial" and out.error is not None
    assert "error reply 0x02 (data identifier error)" in out.error  # the 1997 meaning of bit 1
    assert out.error_replies == len(prof.points) - len(values)


def _dev(address: str, bus: str, **kw: Any) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {"id": f"m{address}", "bus": bus, "address": address, "profile": PROFILE,
         "poll_interval_s": 10, **kw}
    )


def _shared_line(
    dlt645_peer: Callable[..., Any], pty_pair: tuple[str, str], step_clock: Any, dead: Sequence[str], k: int
) -> tuple[HealthBook, list[NewReading], Any]:
    """K schedule steps of a BusPoller on one RS-485 line; the meters in ``dead`` never answer."""
    agent_end, device_end = pty_pair
    live = list(ADDRESSES)
    slave = _slave([*live, *dead])
    slave.silent.update(dead)
    peer = dlt645_peer(slave, serial_port=device_end, baud=19200)
    bus = Dlt645SerialBus(type="dlt645_serial", id="rs485", port=agent_end, baud=19200, inter_frame_gap_ms=1)
    devices = [_dev(a, "rs485", timeout_s=0.5, retries=1) for a in (*live, *dead)]
    readings: list[NewReading] = []
    health = HealthBook([d.id for d in devices])
    plan = dataclasses.replace(device_plan(PROFILE), groups=())  # every point at every poll, as the agent

    async def main() -> None:
        transport = Dlt645Transport.for_bus(bus)
        poller = BusPoller("rs485", transport=transport, devices=[(d, plan) for d in devices],
                           clock=step_clock, sink=readings.append, health=health)
        try:
            for step in range(k):
                await asyncio.wait_for(asyncio.gather(*poller.tick()), 60)  # a safety net, not a measurement
                assert [health.counts(f"m{a}")[0] for a in live] == [step + 1] * len(live)
                step_clock.advance(10.0)
        finally:
            await transport.close()

    asyncio.run(main())
    return health, readings, peer


def test_dead_meter_leaves_the_others_poll_counts_unchanged(
    dlt645_peer: Callable[..., Any], pty_pair: tuple[str, str], step_clock: Any
) -> None:
    """Counted, not timed: with meter 99 dead on the same RS-485 line, every live meter is polled
    exactly as often as without it, and every poll of theirs is good."""
    K = 4
    health, readings, peer = _shared_line(dlt645_peer, pty_pair, step_clock, ["000000000099"], K)
    live = [f"m{a}" for a in ADDRESSES]
    assert [health.counts(d) for d in live] == [(K, 0)] * 3
    ok, failed = health.counts("m000000000099")
    assert ok == 0 and 1 <= failed <= K  # polled, failed, then backed off; never blocked the others
    for i, d in enumerate(live):
        got = [r for r in readings if r.device == d]
        assert [r.ts for r in got] == [int((1_700_000_000 + 10 * k) * 1000) for k in range(K)]
        assert all(r.values == _values(i) and r.quality == "good" for r in got)
    assert not [r for r in readings if r.device == "m000000000099"]
    n = len(load_dlt645_profile(PROFILE).points)
    assert [peer.slave.requests[a] for a in ADDRESSES] == [K * n] * 3
    # a dead meter costs one timeout per attempt of its first read, not one per point
    assert peer.slave.requests["000000000099"] == 2 * failed


@pytest.mark.parametrize("fault", ["checksum", "length", "address", "error"])
def test_bad_frames_are_typed_counted_and_never_stall(
    dlt645_peer: Callable[..., Any], step_clock: Any, fault: str
) -> None:
    slave = _slave()
    bad = ADDRESSES[1]
    slave.faults[bad] = fault  # type: ignore[assignment]
    peer = dlt645_peer(slave)
    bus = Dlt645TcpBus(type="dlt645_tcp", id="gw", host="127.0.0.1", port=peer.port, inter_frame_gap_ms=0)
    devices = [_dev(a, "gw", timeout_s=1.0, retries=1) for a in ADDRESSES]
    health = HealthBook([d.id for d in devices])
    readings: list[NewReading] = []
    plan = dataclasses.replace(device_plan(PROFILE), groups=())  # every point at every poll, as the agent

    async def main() -> None:
        transport = Dlt645Transport.for_bus(bus)
        poller = BusPoller("gw", transport=transport, devices=[(d, plan) for d in devices],
                           clock=step_clock, sink=readings.append, health=health)
        try:
            for _ in range(2):
                await asyncio.wait_for(asyncio.gather(*poller.tick()), 60)
                step_clock.advance(10.0)
        finally:
            await transport.close()

    asyncio.run(main())
    doc = {d.device: d for d in health.device_health()}
    for i in (0, 2):
        d = doc[f"m{ADDRESSES[i]}"]
        assert (d.polls_ok, d.polls_failed, d.frame_errors, d.error_replies) == (2, 0, 0, 0)
    broken = doc[f"m{bad}"]
    assert broken.polls_ok == 0 and broken.polls_failed >= 1
    assert broken.last_error is not None
    if fault == "error":
        assert broken.error_replies >= 1 and broken.frame_errors == 0
        assert "error reply" in broken.last_error
    else:
        assert broken.frame_errors >= 1 and broken.error_replies == 0
        kind = {"checksum": "ChecksumError", "length": "no complete frame", "address": "AddressMismatchError"}
        assert kind[fault] in broken.last_error
    assert not [r for r in readings if r.device == f"m{bad}"]


def test_edge_read_cli_over_tcp_with_and_without_address(dlt645_peer: Callable[..., Any]) -> None:
    peer = dlt645_peer(_slave(["202411110002"]))
    run = CliRunner()
    base = ["edge", "read", "--host", "127.0.0.1", "--port", str(peer.port), "--profile", PROFILE, "--json"]
    res = run.invoke(app, [*base, "--address", "202411110002"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == _values(0)
    res = run.invoke(app, base)  # discovers the address with the wildcard read first
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == _values(0)
    assert "meter address 202411110002" in res.stderr
    res = run.invoke(app, [*base, "--address", "000000000003", "--timeout", "0.2", "--retries", "0"])
    assert res.exit_code == 1 and "no answer" in res.stderr


def test_edge_read_cli_over_rs485(dlt645_peer: Callable[..., Any], pty_pair: tuple[str, str]) -> None:
    agent_end, device_end = pty_pair
    dlt645_peer(_slave(["000000000001"]), serial_port=device_end, baud=2400)
    res = CliRunner().invoke(app, ["edge", "read", "--serial", agent_end, "--profile", PROFILE, "--json",
                                   "--address", "000000000001", "--timeout", "2"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == _values(0)


def test_agent_publishes_dlt645_meters_beside_modbus(
    tmp_path: Path, private_mosquitto: Any, dlt645_peer: Callable[..., Any], modbus_peer: Callable[..., Any],
    helpers: Any,
) -> None:
    """The whole agent from a site.yaml: a DL/T 645 gateway line (one good meter, one with bad
    checksums) and a Modbus TCP meter, through the same outbox to a real Mosquitto; health counts
    the bad frames."""
    from epcwatch.clock import SystemClock
    from epcwatch.edge.agent import Agent
    from epcwatch.edge.site import load_site
    from epcwatch.profiles.encode import register_image
    from epcwatch.profiles.model import load_profile
    from epcwatch.wire import HealthMessage, TelemetryMessage, telemetry_messages

    slave = _slave(ADDRESSES[:2])
    slave.faults[ADDRESSES[1]] = "checksum"
    gw = dlt645_peer(slave)
    sdm120 = load_profile("eastron-sdm120")
    image = register_image(sdm120, {p.name: 1.0 for p in sdm120.points} | {"active_power": 1234.5})
    mb = modbus_peer({1: {str(fn): table for fn, table in image.items()}})
    site = tmp_path / "site.yaml"
    site.write_text(f"""\
site: t-site
buses:
  - {{type: dlt645_tcp, id: gw645, host: 127.0.0.1, port: {gw.port}, inter_frame_gap_ms: 0}}
  - {{type: tcp, id: gw, host: 127.0.0.1, port: {mb.port}}}
devices:
  - {{id: t-good, bus: gw645, address: "{ADDRESSES[0]}", profile: {PROFILE}, poll_interval_s: 0.5,
     tags: {{building: b2, tenant: finance}}}}
  - {{id: t-bad, bus: gw645, address: "{ADDRESSES[1]}", profile: {PROFILE}, poll_interval_s: 0.5,
     timeout_s: 0.5, backoff_max_s: 1}}
  - {{id: main, bus: gw, unit: 1, profile: eastron-sdm120, poll_interval_s: 0.5}}
mqtt: {{host: 127.0.0.1, port: {private_mosquitto.port}, reconnect_min_s: 1, reconnect_max_s: 2}}
outbox: {{path: {tmp_path / "outbox.sqlite"}}}
health: {{interval_s: 1}}
""")
    cfg = load_site(site)
    plans = {d.id: device_plan(d.profile) for d in cfg.devices}
    sub = helpers.Subscriber(private_mosquitto.port, "epc/v1/t-site/#")
    runner = helpers.AgentThread(Agent(cfg, plans, SystemClock())).start()

    def telemetry() -> list[TelemetryMessage]:
        msgs = sub.snapshot()
        return [m for t, p, _ in msgs if t.endswith("/telemetry") for m in telemetry_messages(p)]

    def bad_counted() -> bool:
        for t, p, _ in sub.snapshot():
            if t.endswith("/health"):
                h = {d.device: d for d in HealthMessage.model_validate_json(p).devices}
                if h["t-bad"].frame_errors >= 2 and h["t-good"].polls_ok >= 2:
                    return True
        return False

    try:
        helpers.wait_for(lambda: {"t-good", "main"} <= {m.device for m in telemetry()}, what="both protocols")
        helpers.wait_for(bad_counted, what="bad frames counted in health")
    finally:
        runner.stop()
        sub.close()
    msgs = telemetry()
    good = next(m for m in msgs if m.device == "t-good")
    assert good.tags.profile == PROFILE and good.tags.tenant == "finance" and good.kind == "meter"
    assert good.readings[0].values == _values(0) and good.readings[0].quality == "good"
    main = next(m for m in msgs if m.device == "main").readings[0]
    assert main.values.get("active_power") == 1234.5, main
    assert not [m for m in msgs if m.device == "t-bad"]
