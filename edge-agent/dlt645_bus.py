"""The agent's DL/T 645 access: the same narrow read interface as Modbus, over RS-485 or a
transparent serial-over-TCP gateway.

:class:`Dlt645Transport` implements :class:`~epcwatch.edge.transport.ModbusTransport`, so the
bus poller, its schedule, retries, backoff and health are the same for both protocols. A read is
``read(function, address, count, unit, timeout)`` with ``function`` the DL/T 645 read control
code (0x11 for the 2007 edition, 0x01 for 1997), ``address`` the data identifier, ``count`` the
value's byte count, and ``unit`` the meter address as a number (``address_number``); it returns
the value bytes. Only read requests exist here: the agent cannot write to a meter.

One request is on the line at a time (an :class:`asyncio.Lock`), separated by the inter-frame
gap. Every defect of an answer is converted at this boundary: no answer within the timeout is
:class:`DeviceTimeoutError`; a damaged frame (checksum, length, end byte), an answer from another
address, for another data identifier or garbage is :class:`FrameError`; an error reply is
:class:`Dlt645ErrorReplyError`; a port or gateway that cannot be opened is
:class:`BusUnavailableError`. A failed exchange closes nothing but drops what is left in the
receive buffer, so one bad answer cannot poison the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

from epcwatch.edge.errors import (
    BusUnavailableError,
    DeviceTimeoutError,
    Dlt645ErrorReplyError,
    FrameError,
    ReadOnlyError,
)
from epcwatch.edge.site import Dlt645SerialBus, Dlt645TcpBus
from epcwatch.profiles import dlt645

#: the read control codes the agent sends, by the edition they belong to
VERSION_OF_FUNCTION: Final[dict[int, dlt645.Version]] = {v: k for k, v in dlt645.READ_DATA.items()}


class Link(Protocol):
    """A byte pipe to the RS-485 line: a serial port or a TCP connection to a gateway."""

    async def open(self) -> None: ...

    async def write(self, data: bytes) -> None: ...

    async def read(self, max_wait: float) -> bytes:
        """Bytes received so far or within ``max_wait`` seconds; ``b""`` when none came."""
        ...

    def discard(self) -> None:
        """Drop whatever is buffered (late answers, noise)."""
        ...

    async def close(self) -> None: ...

    @property
    def is_open(self) -> bool: ...


class _BufferedLink:
    """Received bytes collect in a buffer; ``read`` waits for some."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._arrived = asyncio.Event()

    def _received(self, data: bytes) -> None:
        self._buf += data
        self._arrived.set()

    async def read(self, max_wait: float) -> bytes:
        if not self._buf:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, max_wait)):
                    await self._arrived.wait()
        out = bytes(self._buf)
        self._buf.clear()
        return out

    def discard(self) -> None:
        self._buf.clear()


class TcpLink(_BufferedLink):
    """A transparent gateway: the frames travel as they are over one TCP connection."""

    def __init__(self, host: str, port: int, connect_timeout: float = 5.0) -> None:
        super().__init__()
        self.host, self.port, self.connect_timeout = host, port, connect_timeout
        self._writer: asyncio.StreamWriter | None = None
        self._pump: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def open(self) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise BusUnavailableError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        self._writer = writer
        self._pump = asyncio.create_task(self._read_loop(reader), name=f"dlt645-{self.host}:{self.port}")

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(512):
                self._received(data)
        except OSError:
            pass
        if self._writer is not None:
            self._writer.close()

    async def write(self, data: bytes) -> None:
        if self._writer is None:
            raise BusUnavailableError("not connected")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            await self.close()
            raise BusUnavailableError(f"{self.host}:{self.port}: {exc}") from None

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pump
            self._pump = None
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
            self._writer = None


class SerialLink(_BufferedLink):
    """A local serial port (an RS-485 adapter), read through the event loop's reader callback."""

    def __init__(self, port: str, baud: int, parity: str, stop_bits: int, byte_size: int) -> None:
        super().__init__()
        self.port, self.baud, self.parity = port, baud, parity
        self.stop_bits, self.byte_size = stop_bits, byte_size
        self._serial: Any = None

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    async def open(self) -> None:
        import serial

        try:
            s = serial.Serial(
                self.port,
                baudrate=self.baud,
                parity=self.parity,
                stopbits=self.stop_bits,
                bytesize=self.byte_size,
                timeout=0,
                write_timeout=2.0,
            )
        except (OSError, ValueError, serial.SerialException) as exc:
            raise BusUnavailableError(f"cannot open {self.port}: {exc}") from None
        self._serial = s
        asyncio.get_running_loop().add_reader(s.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            data = self._serial.read(self._serial.in_waiting or 1)
        except Exception:  # a vanished adapter: stop reading, the next request reopens
            self._drop()
            return
        if data:
            self._received(bytes(data))

    def _drop(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._serial.fileno())
            with contextlib.suppress(Exception):
                self._serial.close()
            self._serial = None

    async def write(self, data: bytes) -> None:
        if self._serial is None:
            raise BusUnavailableError("port not open")
        try:
            self._serial.write(data)
        except Exception as exc:
            self._drop()
            raise BusUnavailableError(f"{self.port}: {exc}") from None

    async def close(self) -> None:
        self._drop()


class Dlt645Transport:
    """One DL/T 645 bus; see the module docstring."""

    def __init__(self, make_link: Callable[[], Link], gap_s: float = 0.02, preamble: int = 4) -> None:
        self._make_link = make_link
        self._link: Link | None = None
        self._gap = gap_s
        self._preamble = preamble
        self._lock = asyncio.Lock()
        self._last_frame = 0.0

    @classmethod
    def for_bus(cls, bus: Dlt645SerialBus | Dlt645TcpBus) -> Dlt645Transport:
        if isinstance(bus, Dlt645TcpBus):
            return cls(lambda: TcpLink(bus.host, bus.port), bus.gap_s(), bus.preamble)
        return cls(
            lambda: SerialLink(bus.port, bus.baud, bus.parity, bus.stop_bits, bus.byte_size),
            bus.gap_s(),
            bus.preamble,
        )

    async def read(self, function: int, address: int, count: int, unit: int, timeout: float) -> list[int]:
        version = VERSION_OF_FUNCTION.get(function)
        if version is None:
            raise ReadOnlyError(f"control code {function:#04x} is not a DL/T 645 read (0x11, 0x01)")
        try:
            meter = dlt645.address_text(unit)
            request = dlt645.read_request(meter, address, version)
        except (dlt645.Dlt645Error, ValueError) as exc:
            raise ValueError(f"invalid DL/T 645 read: {exc}") from None
        reply = await self.exchange(request, timeout)
        try:
            value = dlt645.parse_read_reply(request, reply, version)
        except dlt645.ErrorReplyError as exc:
            raise Dlt645ErrorReplyError(exc.code, f"meter {meter}: {exc}") from None
        except dlt645.Dlt645Error as exc:
            raise FrameError(f"meter {meter}: {type(exc).__name__}: {exc}") from None
        if len(value) != count:
            raise FrameError(f"meter {meter}: LengthError: {len(value)} value bytes, not {count}")
        return list(value)

    async def discover(self, timeout: float) -> str:
        """The address of the one meter on the line (read-address request to the wildcard address)."""
        reply = await self.exchange(dlt645.read_address_request(), timeout)
        try:
            return dlt645.parse_address_reply(reply)
        except dlt645.ErrorReplyError as exc:
            raise Dlt645ErrorReplyError(exc.code, f"address discovery: {exc}") from None
        except dlt645.Dlt645Error as exc:
            raise FrameError(f"address discovery: {type(exc).__name__}: {exc}") from None

    async def exchange(self, request: dlt645.Frame, timeout: float) -> dlt645.Frame:
        """Send ``request`` and return the first reply frame (one exchange on the line at a time)."""
        async with self._lock:
            if self._gap:
                wait = self._last_frame + self._gap - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            try:
                return await self._exchange(request, timeout)
            finally:
                self._last_frame = time.monotonic()

    async def _exchange(self, request: dlt645.Frame, timeout: float) -> dlt645.Frame:
        link = self._link
        if link is None or not link.is_open:
            link = self._make_link()
            await link.open()
            self._link = link
        link.discard()
        await link.write(dlt645.encode_frame(request, self._preamble))
        deadline = time.monotonic() + timeout
        buf = b""
        noise = False
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if noise or buf:
                    raise FrameError(f"meter {request.address}: no complete frame, got {buf.hex(' ')[:90]!r}")
                raise DeviceTimeoutError(f"meter {request.address}: no answer within {timeout:g} s")
            chunk = await link.read(remaining)
            if not chunk:
                continue
            buf += chunk
            try:
                frame, end = dlt645.next_frame(buf)
            except dlt645.Dlt645Error as exc:
                link.discard()
                raise FrameError(f"meter {request.address}: {type(exc).__name__}: {exc}") from None
            if frame is None:
                if buf[:end].strip(bytes([dlt645.PREAMBLE_BYTE])):
                    noise = True
                buf = buf[end:]
                continue
            if not frame.is_reply:  # our own request echoed by a half-duplex adapter
                buf = buf[end:]
                continue
            return frame

    async def close(self) -> None:
        if self._link is not None:
            await self._link.close()
            self._link = None
