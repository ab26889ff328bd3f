"""The agent's whole Modbus access: one narrow, read-only interface and its pymodbus implementation.

:class:`ModbusTransport` is what the poller uses: ``read(function, address, count, unit,
timeout)`` returning registers or bits, raising only :mod:`epcwatch.edge.errors`. Only the read
function codes 1–4 exist in it, so the agent cannot write to a device by construction.

:class:`PymodbusTransport` holds a small pool of pymodbus async clients for one bus: one
connection on serial lines and RTU-over-TCP gateways (so requests are strictly sequential,
separated by the inter-frame gap) and ``max_concurrency`` connections to a Modbus TCP gateway
(pymodbus runs one transaction per client at a time, so the pool size *is* the concurrency
limit). :class:`FakeTransport` (``fake_transport.py``) serves the pure-logic tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from epcwatch.edge.errors import (
    BusUnavailableError,
    DeviceTimeoutError,
    ExceptionResponseError,
    FrameError,
    ReadOnlyError,
)
from epcwatch.edge.site import RtuBus, RtuOverTcpBus, TcpBus

#: coils, discrete inputs, holding registers, input registers — nothing else is ever sent
READ_FUNCTIONS: Final = frozenset({1, 2, 3, 4})

Registers = list[int] | list[bool]

log = logging.getLogger("epcwatch.edge.transport")


class ModbusTransport(Protocol):
    async def read(self, function: int, address: int, count: int, unit: int, timeout: float) -> Registers:
        """Issue one read; registers (functions 3, 4) or bits (1, 2), exactly ``count`` of them.

        Raises DeviceTimeoutError, ExceptionResponseError, FrameError, BusUnavailableError or ReadOnlyError.
        """
        ...

    async def close(self) -> None: ...


def check_read(function: int, address: int, count: int) -> None:
    if function not in READ_FUNCTIONS:
        raise ReadOnlyError(f"function code {function} is not a read (allowed: 1, 2, 3, 4)")
    limit = 2000 if function in (1, 2) else 125
    if not 1 <= count <= limit or not 0 <= address <= 0xFFFF or address + count > 0x10000:
        raise ValueError(f"invalid read: function {function} address {address} count {count}")


def transport_for_bus(bus: TcpBus | RtuBus | RtuOverTcpBus) -> ModbusTransport:
    """The transport of a bus: our own lean client on Modbus TCP (``modbus_tcp``), pymodbus on
    serial lines and RTU over TCP."""
    if isinstance(bus, TcpBus):
        from epcwatch.edge.modbus_tcp import TcpClientTransport

        return TcpClientTransport(bus.host, bus.port, connections=bus.max_concurrency, pipeline=bus.pipeline)
    return PymodbusTransport.for_bus(bus)


class PymodbusTransport:
    """A bus served by pymodbus async clients; see the module docstring."""

    def __init__(self, make_client: Callable[[], Any], connections: int = 1, gap_s: float = 0.0) -> None:
        self._make_client = make_client
        self._gap = gap_s
        self._pool: asyncio.Queue[Any] = asyncio.Queue()
        self._clients: list[Any] = []
        self._size = connections
        self._last_frame = 0.0

    @classmethod
    def for_bus(cls, bus: TcpBus | RtuBus | RtuOverTcpBus) -> PymodbusTransport:
        from pymodbus import FramerType
        from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

        # retries=0 and reconnect_delay=0: retries, backoff and reconnects are the poller's job
        if isinstance(bus, TcpBus):
            return cls(
                lambda: AsyncModbusTcpClient(bus.host, port=bus.port, retries=0, reconnect_delay=0),
                connections=bus.max_concurrency,
            )
        if isinstance(bus, RtuOverTcpBus):
            return cls(
                lambda: AsyncModbusTcpClient(
                    bus.host, port=bus.port, framer=FramerType.RTU, retries=0, reconnect_delay=0
                ),
                connections=1,
                gap_s=bus.gap_s(),
            )
        return cls(
            lambda: AsyncModbusSerialClient(
                bus.port,
                framer=FramerType.RTU,
                baudrate=bus.baud,
                bytesize=bus.byte_size,
                parity=bus.parity,
                stopbits=bus.stop_bits,
                retries=0,
                reconnect_delay=0,
            ),
            connections=1,
            gap_s=bus.gap_s(),
        )

    async def _acquire(self) -> Any:
        if self._pool.empty() and len(self._clients) < self._size:
            client = self._make_client()
            self._clients.append(client)
            return client
        return await self._pool.get()

    async def read(self, function: int, address: int, count: int, unit: int, timeout: float) -> Registers:
        check_read(function, address, count)
        client = await self._acquire()
        try:
            if self._gap:
                # the line must stay silent for the inter-frame gap between two frames
                wait = self._last_frame + self._gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                return await self._read(client, function, address, count, unit=unit, timeout=timeout)
            finally:
                self._last_frame = time.monotonic()
        finally:
            self._pool.put_nowait(client)

    async def _read(
        self, client: Any, function: int, address: int, count: int, *, unit: int, timeout: float
    ) -> Registers:
        from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

        # pymodbus' per-request timeout is the client's; we own this client for the request
        client.ctx.comm_params.timeout_connect = timeout
        try:
            if not client.connected:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
                # arrives as the connect completes, and a stopping agent would poll on
                async with asyncio.timeout(timeout + 1.0):
                    ok = await client.connect()
                if not ok:
                    raise BusUnavailableError(f"cannot connect to {client}")
            call = {
                1: client.read_coils,
                2: client.read_discrete_inputs,
                3: client.read_holding_registers,
                4: client.read_input_registers,
            }[function]
            # the outer timeout only guards against a transport that never returns
            # (asyncio.timeout, unlike wait_for, costs no extra task per request)
            async with asyncio.timeout(timeout * 2 + 1.0):
                rr = await call(address, count=count, device_id=unit)
        except BusUnavailableError:
            raise
        except TimeoutError:
            raise DeviceTimeoutError(f"unit {unit}: no answer within {timeout:g} s") from None
        except ConnectionException as exc:
            raise BusUnavailableError(f"unit {unit}: {exc}") from None
        except ModbusIOException as exc:
            text = str(exc)
            if "No response" in text:
                raise DeviceTimeoutError(f"unit {unit}: no answer within {timeout:g} s") from None
            raise FrameError(f"unit {unit}: {text}") from None
        except ModbusException as exc:
            raise FrameError(f"unit {unit}: {exc}") from None
        except OSError as exc:
            raise BusUnavailableError(f"unit {unit}: {exc}") from None
        if rr is None:
            raise DeviceTimeoutError(f"unit {unit}: no answer")
        if rr.isError():
            code = getattr(rr, "exception_code", None)
            if isinstance(code, int):
                raise ExceptionResponseError(code)
            raise FrameError(f"unit {unit}: error response {rr}")
        if function in (1, 2):
            bits = list(getattr(rr, "bits", []) or [])
            if len(bits) < count:
                raise FrameError(f"unit {unit}: asked for {count} bits, got {len(bits)}")
            return [bool(b) for b in bits[:count]]
        regs = list(getattr(rr, "registers", []) or [])
        if len(regs) != count:
            raise FrameError(f"unit {unit}: asked for {count} registers, got {len(regs)}")
        return [int(r) for r in regs]

    async def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                client.close()
        self._clients.clear()
        self._pool = asyncio.Queue()
