"""The poller against real pymodbus servers: a TCP gateway with several units, RTU over a socat
pseudo-terminal pair, RTU over TCP; a dead unit never changes the others' poll counts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from epcwatch.edge.health import HealthBook
from epcwatch.edge.outbox import NewReading
from epcwatch.edge.poller import BusPoller, DevicePlan, ReadSpec, poll_device
from epcwatch.edge.site import DeviceConfig, RtuBus, RtuOverTcpBus, TcpBus
from epcwatch.edge.transport import PymodbusTransport, Registers
from epcwatch.wire import Quality, Value

pytestmark = pytest.mark.integration


def _decode(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
    out: dict[str, Value] = {}
    if answers[0] is not None:
        out["active_power"] = float(answers[0][0])
        out["energy_import"] = float((int(answers[0][1]) << 16) | int(answers[0][2]))
    if answers[1] is not None:
        out["run_status"] = bool(answers[1][0])
    return out, "good"


PLAN = DevicePlan("test-meter", "meter", (ReadSpec(3, 100, 3), ReadSpec(1, 5, 1)), _decode)


def _image(unit: int) -> dict[str, dict[int, int | bool]]:
    energy = 100_000 + unit
    return {"holding": {100: unit * 10, 101: energy >> 16, 102: energy & 0xFFFF}, "coil": {5: unit % 2 == 1}}


def _expected(unit: int) -> dict[str, Value]:
    return {
        "active_power": float(unit * 10),
        "energy_import": float(100_000 + unit),
        "run_status": unit % 2 == 1,
    }


def _dev(unit: int, bus: str, **kw: Any) -> DeviceConfig:
    return DeviceConfig.model_validate(
        {"id": f"u{unit}", "bus": bus, "unit": unit, "profile": "test", "poll_interval_s": 10, **kw}
    )


def test_tcp_gateway_serves_several_units(modbus_peer: Callable[..., Any]) -> None:
    peer = modbus_peer({u: _image(u) for u in (1, 2, 3)})
    bus = TcpBus(type="tcp", id="gw", host="127.0.0.1", port=peer.port, max_concurrency=2)

    async def main() -> list[Any]:
        transport = PymodbusTransport.for_bus(bus)
        try:
            return list(
                await asyncio.gather(*(poll_device(transport, PLAN, u, 2.0, 1) for u in (1, 2, 3, 1, 2, 3)))
            )
        finally:
            await transport.close()

    outcomes = asyncio.run(main())
    assert [o.values for o in outcomes] == [_expected(u) for u in (1, 2, 3, 1, 2, 3)]
    assert all(o.quality == "good" for o in outcomes)
    assert dict(peer.requests) == {1: 4, 2: 4, 3: 4}


def test_exception_response_from_a_real_server_gives_partial(modbus_peer: Callable[..., Any]) -> None:
    image = _image(1)
    del image["coil"]  # the coil table does not reach address 5: exception 2
    peer = modbus_peer({1: image})
    bus = TcpBus(type="tcp", id="gw", host="127.0.0.1", port=peer.port)

    calls: list[int] = []

    class Counting(PymodbusTransport):
        async def read(self, function: int, address: int, count: int, unit: int, timeout: float) -> Registers:
            calls.append(function)
            return await super().read(function, address, count, unit, timeout)

    async def main() -> Any:
        transport = PymodbusTransport.for_bus(bus)
        counting = Counting(transport._make_client, connections=1)
        try:
            return await poll_device(counting, PLAN, 1, 2.0, 2)
        finally:
            await counting.close()

    out = asyncio.run(main())
    assert out.quality == "partial" and "run_status" not in out.values
    assert out.values["active_power"] == 10.0
    assert out.error is not None and "illegal data address" in out.error
    assert calls == [3, 1]  # the exception response is an answer: not retried
    assert peer.requests[1] == 1  # (the server counts only reads of valid addresses)


def test_dead_unit_leaves_the_others_poll_counts_unchanged(
    modbus_peer: Callable[..., Any], step_clock: Any
) -> None:
    """Counted, not timed: K schedule steps; unit 9 never answers (its poll stays in flight the
    whole time), and every live unit is still polled exactly K times."""
    peer = modbus_peer({u: _image(u) for u in (1, 2, 3)})
    bus = TcpBus(type="tcp", id="gw", host="127.0.0.1", port=peer.port, max_concurrency=2)
    devices = [_dev(u, "gw", timeout_s=60) for u in (1, 2, 3, 9)]
    K = 8
    readings: list[NewReading] = []
    health = HealthBook([d.id for d in devices])

    async def main() -> BusPoller:
        transport = PymodbusTransport.for_bus(bus)
        poller = BusPoller(
            "gw",
            transport=transport,
            devices=[(d, PLAN) for d in devices],
            clock=step_clock,
            sink=readings.append,
            health=health,
        )
        try:
            for k in range(K):
                live = [t for t in poller.tick() if t.get_name() != "poll-u9"]
                await asyncio.wait_for(asyncio.gather(*live), 60)  # a safety net, not a measurement
                assert [health.counts(f"u{u}")[0] for u in (1, 2, 3)] == [k + 1] * 3
                step_clock.advance(10.0)
            return poller
        finally:
            for d in poller.devices:
                if d.task is not None:
                    d.task.cancel()
            await asyncio.sleep(0)
            await transport.close()

    poller = asyncio.run(main())
    assert [health.counts(f"u{u}") for u in (1, 2, 3)] == [(K, 0)] * 3
    assert health.counts("u9") == (0, 0)  # its one poll never finished
    assert poller.devices[3].overruns == K - 1
    assert [peer.requests[u] for u in (1, 2, 3)] == [2 * K] * 3
    for u in (1, 2, 3):
        got = [r for r in readings if r.device == f"u{u}"]
        assert [r.ts for r in got] == [int((1_700_000_000 + 10 * k) * 1000) for k in range(K)]
        assert all(r.values == _expected(u) for r in got)


def _poll_all(bus: RtuBus | RtuOverTcpBus, units: Sequence[int], rounds: int) -> list[Any]:
    async def main() -> list[Any]:
        transport = PymodbusTransport.for_bus(bus)
        out = []
        try:
            for _ in range(rounds):
                # started together; the single-connection transport serialises them
                out += await asyncio.gather(*(poll_device(transport, PLAN, u, 2.0, 2) for u in units))
        finally:
            await transport.close()
        return out

    return asyncio.run(main())


def test_rtu_over_a_socat_pty_pair(modbus_peer: Callable[..., Any], pty_pair: tuple[str, str]) -> None:
    agent_end, device_end = pty_pair
    peer = modbus_peer({u: _image(u) for u in (1, 2, 7)}, serial_port=device_end, baud=19200)
    bus = RtuBus(type="rtu", id="rs485", port=agent_end, baud=19200)
    outcomes = _poll_all(bus, (1, 2, 7), rounds=3)
    assert [o.values for o in outcomes] == [_expected(u) for u in (1, 2, 7)] * 3
    assert all(o.quality == "good" and o.error is None for o in outcomes)
    assert dict(peer.requests) == {1: 6, 2: 6, 7: 6}


def test_rtu_over_tcp_gateway(modbus_peer: Callable[..., Any]) -> None:
    peer = modbus_peer({u: _image(u) for u in (4, 5)}, framer="rtu")
    bus = RtuOverTcpBus(type="rtu_over_tcp", id="conv", host="127.0.0.1", port=peer.port)
    outcomes = _poll_all(bus, (4, 5), rounds=2)
    assert [o.values for o in outcomes] == [_expected(u) for u in (4, 5)] * 2
    assert dict(peer.requests) == {4: 4, 5: 4}


def test_garbage_answers_are_errors_not_crashes() -> None:
    """A line with noise: a peer answering every request with bytes that are not a valid frame
    (RTU over TCP, bad CRC, and a TCP frame with a wrong length) gives a failed poll with a
    reason, after exactly the configured attempts; the agent goes on."""
    import socket
    import threading

    received: list[bytes] = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(256):
                    received.append(data)
                    # function 3 answer of 2 bytes with a wrong CRC, then line noise
                    conn.sendall(bytes([data[0], 3, 2, 0x12, 0x34, 0xDE, 0xAD]) + b"\xff\x00\x55")

    threading.Thread(target=serve, daemon=True).start()
    bus = RtuOverTcpBus(type="rtu_over_tcp", id="noisy", host="127.0.0.1", port=port, inter_frame_gap_ms=0)

    async def main() -> Any:
        transport = PymodbusTransport.for_bus(bus)
        try:
            return await poll_device(transport, PLAN, 3, 0.3, 2)
        finally:
            await transport.close()

    try:
        out = asyncio.run(main())
    finally:
        srv.close()
    assert not out.ok and out.error is not None
    assert len(received) == 3  # first read: 1 try + 2 retries; the second read is skipped
