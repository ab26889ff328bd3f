"""A lean, read-only Modbus TCP client: the MBAP codec (pure) and an asyncio transport.

Why not pymodbus on TCP buses: profiling the agent at 100 meters showed most of its CPU in
pymodbus's per-request path (framer, transaction manager, PDU objects, logging calls), about
245 µs per request, more than everything else the agent does per reading. A Modbus TCP read is
a 12-byte request and a ``9 + 2n``-byte answer; building and checking them directly costs a
few µs. pymodbus stays in use for serial RTU and RTU over TCP, where the line, not the CPU, is
the limit.

* :func:`encode_request` / :func:`decode_response` — pure, property-tested (round trip against
  a reference encoder, every malformed answer is a :class:`FrameError`, never a wrong value).
  Only function codes 1–4 can be encoded (:func:`~epcwatch.edge.transport.check_read`).
* :class:`TcpClientTransport` — ``connections`` TCP connections to one gateway, each carrying up
  to ``pipeline`` requests at a time, matched to answers by transaction id (Modbus TCP allows
  several outstanding transactions; a gateway that does not should keep ``pipeline: 1``). A
  request that times out frees its slot, and a late answer to it is dropped by its id, so a dead
  unit behind the gateway costs its own timeout only. A lost connection fails its requests with
  :class:`BusUnavailableError` and is reopened by the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Final

from epcwatch.edge.errors import BusUnavailableError, DeviceTimeoutError, ExceptionResponseError, FrameError
from epcwatch.edge.transport import Registers, check_read

_MBAP: Final = struct.Struct(">HHHBBHH")  # tid, protocol 0, length, unit, function, address, count
_HEAD: Final = struct.Struct(">HHHBB")  # tid, protocol, length, unit, function
MAX_FRAME: Final = 260  # 7-byte MBAP header + at most 253 bytes of PDU


def encode_request(tid: int, unit: int, function: int, address: int, count: int) -> bytes:
    """One read request frame (MBAP header + PDU); raises ReadOnlyError for anything but FC 1–4."""
    check_read(function, address, count)
    return _MBAP.pack(tid & 0xFFFF, 0, 6, unit & 0xFF, function, address, count)


def frame_length(buf: bytes | bytearray) -> int | None:
    """Length of the frame at the start of ``buf`` (``None`` until its header has arrived)."""
    if len(buf) < 6:
        return None
    length = (buf[4] << 8) | buf[5]
    return 6 + length


def decode_response(frame: bytes | bytearray, unit: int, function: int, count: int) -> Registers:
    """The registers (FC 3/4) or bits (FC 1/2) of one answer frame to a read of ``count``.

    Raises ExceptionResponseError for an exception answer and FrameError for anything that is
    not the answer to this request (wrong protocol, unit, function, lengths).
    """
    if len(frame) < 9:
        raise FrameError(f"unit {unit}: frame of {len(frame)} bytes is too short")
    _, proto, length, u, fc = _HEAD.unpack_from(frame)
    if proto != 0 or length != len(frame) - 6:
        raise FrameError(f"unit {unit}: bad MBAP header (protocol {proto}, length {length})")
    if u != unit:
        raise FrameError(f"unit {unit}: answer from unit {u}")
    if fc == function | 0x80:
        if len(frame) != 9:
            raise FrameError(f"unit {unit}: malformed exception answer")
        raise ExceptionResponseError(frame[8])
    if fc != function:
        raise FrameError(f"unit {unit}: answer to function {fc}, asked {function}")
    n = frame[8]
    data = memoryview(frame)[9:]
    if len(data) != n:
        raise FrameError(f"unit {unit}: byte count {n} but {len(data)} bytes")
    if function in (3, 4):
        if n != 2 * count:
            raise FrameError(f"unit {unit}: asked for {count} registers, got {n // 2}")
        return list(struct.unpack(f">{count}H", data))
    if n != (count + 7) // 8:
        raise FrameError(f"unit {unit}: asked for {count} bits, got {n} bytes")
    return [bool(data[i >> 3] >> (i & 7) & 1) for i in range(count)]


class _Connection(asyncio.Protocol):
    """One TCP connection: pending requests by transaction id, answers split out of the stream."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, asyncio.Future[bytes]] = {}
        self.buf = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            n = frame_length(buf)
            if n is None or len(buf) < n:
                if n is not None and n > MAX_FRAME:
                    self._fail(FrameError(f"frame length {n} exceeds Modbus TCP's {MAX_FRAME}"))
                return
            frame = bytes(buf[:n])
            del buf[:n]
            fut = self.pending.pop((frame[0] << 8) | frame[1], None)
            if fut is not None and not fut.done():  # else: a late answer to a timed-out request
                fut.set_result(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(BusUnavailableError(f"connection lost: {exc or 'closed by the peer'}"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(exc)
        self.pending.clear()
        if self.transport is not None:
            self.transport.abort()


class TcpClientTransport:
    """A Modbus TCP gateway (or device); see the module docstring."""

    def __init__(self, host: str, port: int, connections: int = 1, pipeline: int = 1) -> None:
        self.host = host
        self.port = port
        self._slots = asyncio.Semaphore(max(1, connections) * max(1, pipeline))
        self._conns: list[_Connection | None] = [None] * max(1, connections)
        self._pipeline = max(1, pipeline)
        self._opening: list[asyncio.Lock] = [asyncio.Lock() for _ in self._conns]
        self._tid = 0

    async def _connection(self, timeout: float) -> _Connection:
        # the least busy open connection with room, else open (or reopen) one
        best = None
        for i, conn in enumerate(self._conns):
            if conn is not None and not conn.closed:
                room = len(conn.pending) < self._pipeline
                if room and (best is None or len(conn.pending) < len(best.pending)):
                    best = conn
                continue
            async with self._opening[i]:
                fresh = self._conns[i]
                if fresh is None or fresh.closed:
                    fresh = self._conns[i] = await self._open(timeout)
            if len(fresh.pending) < self._pipeline:
                return fresh
        if best is None:  # cannot happen while the semaphore counts slots; be safe
            raise BusUnavailableError(f"{self.host}:{self.port}: no free connection")
        return best

    async def _open(self, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout + 1.0):
                _, proto = await loop.create_connection(_Connection, self.host, self.port)
        except TimeoutError:
            raise BusUnavailableError(f"{self.host}:{self.port}: connect timed out") from None
        except OSError as exc:
            raise BusUnavailableError(f"{self.host}:{self.port}: {exc.strerror or exc}") from None
        return proto

    async def read(self, function: int, address: int, count: int, unit: int, timeout: float) -> Registers:
        check_read(function, address, count)
        async with self._slots:
            conn = await self._connection(timeout)
            self._tid = tid = (self._tid + 1) & 0xFFFF
            fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            conn.pending[tid] = fut
            assert conn.transport is not None
            conn.transport.write(encode_request(tid, unit, function, address, count))
            try:
                async with asyncio.timeout(timeout):
                    frame = await fut
            except TimeoutError:
                raise DeviceTimeoutError(f"unit {unit}: no answer within {timeout:g} s") from None
            finally:
                conn.pending.pop(tid, None)
        return decode_response(frame, unit, function, count)

    async def close(self) -> None:
        for c in self._conns:
            if c is not None and c.transport is not None:
                with contextlib.suppress(Exception):
                    c.transport.close()
        self._conns = [None] * len(self._conns)
