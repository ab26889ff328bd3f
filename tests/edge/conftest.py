"""Fixtures of the edge tests: a clock the test steps by hand, and real Modbus peers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from epcwatch.devservices.services import free_port
from tests.support import wait_for


class StepClock:
    """A clock whose time moves only when the test calls :meth:`advance`; ``sleep`` really waits
    for it (unlike ``ManualClock.sleep``, which moves time itself), so concurrent sleepers and
    in-flight I/O see one consistent time."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t
        self._moved: asyncio.Event | None = None

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
        if self._moved is not None:
            self._moved.set()
            self._moved = None

    async def sleep(self, seconds: float) -> None:
        target = self.t + max(0.0, seconds)
        while self.t < target:
            if self._moved is None:
                self._moved = asyncio.Event()
            await self._moved.wait()


@pytest.fixture
def step_clock() -> Iterator[StepClock]:
    yield StepClock()


# -- real Modbus peers ---------------------------------------------------------------------------



#: image layout of ``epcwatch.profiles.encode.register_image``: table name → {address: value}
Image = Mapping[str, Mapping[int, int | bool]]
TABLES = ("coil", "discrete", "holding", "input")


def _blocks(table: Mapping[int, int | bool], bits: bool, refuse_gaps: bool = False) -> list[Any]:
    """One contiguous SimData from the lowest to the highest address, gaps filled with 0, so that
    reads bridging gaps (as the planner issues them) are answered like most devices do; with
    ``refuse_gaps`` one SimData per run of mapped addresses, so that any read touching an
    unmapped address is answered with exception 2, as some devices do."""
    from pymodbus.simulator import DataType, SimData

    if not table:  # pymodbus needs every table to exist: one unused cell at the top of the map
        table = {0xFFFF: False if bits else 0}
    if refuse_gaps:
        runs: list[list[int]] = []
        for a in sorted(table):
            if runs and a == runs[-1][-1] + 1:
                runs[-1].append(a)
            else:
                runs.append([a])
        kind = DataType.BITS if bits else DataType.REGISTERS
        return [
            SimData(address=r[0], values=[(bool if bits else int)(table[a]) for a in r], datatype=kind)
            for r in runs
        ]
    lo, hi = min(table), max(table)
    values = [table.get(a, False if bits else 0) for a in range(lo, hi + 1)]
    if bits:
        return [SimData(address=lo, values=[bool(v) for v in values], datatype=DataType.BITS)]
    return [SimData(address=lo, values=[int(v) for v in values], datatype=DataType.REGISTERS)]


class ModbusPeer:
    """A real pymodbus server (TCP, RTU-over-TCP or serial RTU) in a thread of its own, serving
    one register image per unit id (``refuse_gaps``: answering only the mapped addresses). Unknown
    unit ids never answer, as a dead device behind a gateway would (a catch-all device whose
    handler waits forever: pymodbus 3.16's
    ``ignore_missing_devices`` does not apply to simulator devices). ``requests[unit]`` counts
    requests per unit, ``slow[unit]`` delays a unit's answers."""

    def __init__(
        self,
        images: Mapping[int, Image],
        *,
        framer: str = "socket",
        serial_port: str | None = None,
        baud: int = 19200,
        refuse_gaps: bool = False,
    ) -> None:
        self.images = images
        self.refuse_gaps = refuse_gaps
        self.framer = framer
        self.serial_port = serial_port
        self.baud = baud
        self.port = free_port()
        self.requests: Counter[int] = Counter()
        self.slow: dict[int, float] = {}  # unit → seconds to wait before answering
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def _devices(self) -> list[Any]:
        import functools

        from pymodbus.simulator import SimDevice

        devices = []
        for unit, image in self.images.items():
            simdata = tuple(
                _blocks(image.get(t, {}), t in ("coil", "discrete"), self.refuse_gaps) for t in TABLES
            )
            devices.append(
                SimDevice(id=unit, simdata=simdata, action=functools.partial(self._action, unit))
            )
        from pymodbus.simulator import DataType, SimData

        bits = [SimData(address=0, count=4096, values=False, datatype=DataType.BITS)]
        regs = [SimData(address=0, count=65535, values=0, datatype=DataType.REGISTERS)]
        devices.append(SimDevice(id=0, simdata=(bits, bits, regs, regs), action=self._silent))
        return devices

    async def _silent(self, *args: Any) -> None:
        await asyncio.sleep(3600)

    async def _action(self, unit: int, function_code: int, *args: Any) -> None:
        self.requests[unit] += 1
        delay = self.slow.get(unit)
        if delay:
            await asyncio.sleep(delay)

    async def _main(self) -> None:
        from pymodbus import FramerType
        from pymodbus.server import ModbusSerialServer, ModbusTcpServer

        self._stop = asyncio.Event()
        if self.serial_port is not None:
            server: Any = ModbusSerialServer(
                self._devices(),
                framer=FramerType.RTU,
                port=self.serial_port,
                baudrate=self.baud,
            )
        else:
            server = ModbusTcpServer(
                self._devices(),
                framer=FramerType.RTU if self.framer == "rtu" else FramerType.SOCKET,
                address=("127.0.0.1", self.port),
            )
        await server.serve_forever(background=True)
        self._ready.set()
        await self._stop.wait()
        await server.shutdown()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    def start(self) -> ModbusPeer:
        self._thread = threading.Thread(target=self._run, name="modbus-peer", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("Modbus peer did not start")
        if self._error is not None:
            raise RuntimeError(f"Modbus peer failed: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)


@pytest.fixture
def modbus_peer() -> Iterator[Callable[..., ModbusPeer]]:
    """Factory: ``modbus_peer({unit: image, …}, framer="socket"|"rtu", serial_port=None)``."""
    peers: list[ModbusPeer] = []

    def make(images: Mapping[int, Image], **kw: Any) -> ModbusPeer:
        peer = ModbusPeer(images, **kw).start()
        peers.append(peer)
        return peer

    yield make
    for p in peers:
        p.stop()


class Dlt645Peer:
    """A simulated DL/T 645 line (``epcwatch.sim.dlt645.Dlt645Slave``) served over TCP (a
    transparent gateway) or on a serial port, from an event loop in a thread of its own.
    ``slave.requests``, ``slave.silent`` and ``slave.faults`` count and break meters."""

    def __init__(self, slave: Any, *, serial_port: str | None = None, baud: int = 2400) -> None:
        self.slave = slave
        self.serial_port = serial_port
        self.baud = baud
        self.port = free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    async def _main(self) -> None:
        from epcwatch.sim.dlt645 import serve_serial, serve_tcp

        self._stop = asyncio.Event()
        if self.serial_port is not None:
            close = await serve_serial(self.slave, self.serial_port, self.baud)
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                close()
            return
        server = await serve_tcp(self.slave, "127.0.0.1", self.port)
        self._ready.set()
        await self._stop.wait()
        server.close()
        await server.wait_closed()

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
        finally:
            self._loop.close()

    def start(self) -> Dlt645Peer:
        self._thread = threading.Thread(target=self._run, name="dlt645-peer", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("DL/T 645 peer did not start")
        if self._error is not None:
            raise RuntimeError(f"DL/T 645 peer failed: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(10)


@pytest.fixture
def dlt645_peer() -> Iterator[Callable[..., Dlt645Peer]]:
    """Factory: ``dlt645_peer(slave, serial_port=None, baud=2400)``."""
    peers: list[Dlt645Peer] = []

    def make(slave: Any, **kw: Any) -> Dlt645Peer:
        peer = Dlt645Peer(slave, **kw).start()
        peers.append(peer)
        return peer

    yield make
    for p in peers:
        p.stop()


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two pseudo-terminals joined by ``socat`` (an RS-485 line in a box): (agent end, device end)."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.fail("socat not found: install the Debian package 'socat' (or run scripts/install.sh)")
    a, b = tmp_path / "ttyAgent", tmp_path / "ttyDevice"
    log = tmp_path / "socat.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait(5)
            pytest.fail(f"socat did not create the pty pair: {log.read_text()}")
        time.sleep(0.05)
    yield os.path.realpath(a), os.path.realpath(b)
    proc.terminate()
    proc.wait(5)


# -- an agent in a thread of its own, and an MQTT subscriber with a persistent session ---------


class AgentThread:
    """Runs ``Agent.run()`` on its own event loop in a thread, so the test can block and count."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name="agent", daemon=True)
        self.error: BaseException | None = None
        self._started = threading.Event()

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._started.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self.agent.run()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self.error = exc
            self._started.set()

    def start(self) -> AgentThread:
        self._thread.start()
        self._started.wait(30)
        return self

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the agent's loop (for state only the loop may touch)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(60)
        if self.error is not None:
            raise self.error


class Subscriber:
    """A QoS 1 subscriber with a persistent session (its own client id, clean_session=False), so
    that it misses nothing across a broker restart; records (topic, payload) in arrival order.

    With ``ack=True`` it also plays the collector's part of the end-to-end acknowledgement: each
    telemetry message it receives is acknowledged on the site's ack topic, so the edge deletes
    those readings from its outbox. The constructor returns once the broker confirmed the
    subscription (SUBACK)."""

    def __init__(
        self,
        port: int,
        topic: str,
        client_id: str = "edge-test-sub",
        username: str | None = None,
        password: str | None = None,
        ack: bool = False,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.topic = topic
        self.ack = ack
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False
        )
        self.client.reconnect_delay_set(1, 2)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        if not self.subscribed.wait(30):
            raise RuntimeError("subscription not confirmed (no SUBACK)")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
        if self.ack and msg.topic.endswith("/telemetry"):
            from epcwatch import topics
            from epcwatch.wire import Ack, coalesce, telemetry_messages

            ms = telemetry_messages(msg.payload)  # either schema: one per device block
            devices = {m.device: coalesce((r.seq, r.seq) for r in m.readings) for m in ms}
            ack = Ack(site=ms[0].site, devices=devices)
            client.publish(topics.ack(ms[0].site), ack.model_dump_json(), qos=1)

    def snapshot(self) -> list[tuple[str, bytes, bool]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def helpers() -> Any:
    class H:
        AgentThread = AgentThread
        Subscriber = Subscriber
        wait_for = staticmethod(wait_for)
        ModbusPeer = ModbusPeer
        StepClock = StepClock

    return H
