"""A Modbus TCP device that answers every read and records every function code it receives.

Used to prove the edge agent is read-only (the test looks at what arrived on the wire, not at
what the agent's code claims to send) and as the simulated device of the chaos run. Every
unit id is served; every register holds the float32 pattern of ``1.0`` (``0x3F80, 0x0000``),
a plausible value for any measurement a profile may map, and every bit is on.

Recording happens at the byte level (pymodbus' ``trace_packet`` hook, before the server
decodes the request), so a write request, or a function code pymodbus does not know, is
recorded too even though the server may refuse it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

#: coils, discrete inputs, holding registers, input registers
READ_CODES: Final = frozenset({1, 2, 3, 4})
_MBAP_LEN: Final = 7


def request_codes(packet: bytes) -> list[tuple[int, int]]:
    """``(unit, function code)`` of each Modbus TCP frame in ``packet`` (pure).

    A frame is the 7-byte MBAP header (transaction id, protocol id 0, length, unit) followed by
    the PDU, whose first byte is the function code. A trailing partial frame counts if its
    function code byte is present; a packet that is not MBAP at all yields ``(-1, -1)`` so that
    the caller sees that something unexplained arrived.
    """
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(packet):
        header = packet[i : i + _MBAP_LEN + 1]
        if len(header) < _MBAP_LEN + 1 or header[2:4] != b"\x00\x00":
            out.append((-1, -1))
            break
        length = int.from_bytes(header[4:6], "big")  # unit id + PDU
        out.append((header[6], header[7]))
        if length < 2:
            break
        i += 6 + length
    return out


@dataclass
class RecordingDevice:
    """A pymodbus TCP server on ``127.0.0.1:port`` running in a background thread."""

    port: int
    host: str = "127.0.0.1"
    codes: Counter[int] = field(default_factory=Counter)
    frames: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)
    _server: object | None = field(default=None, repr=False)
    _stop: asyncio.Event | None = field(default=None, repr=False)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            with self._lock:
                for _unit, code in request_codes(data):
                    self.codes[code] += 1
                    self.frames += 1
        return data

    def snapshot(self) -> tuple[int, dict[int, int]]:
        with self._lock:
            return self.frames, dict(self.codes)

    def _device(self) -> Any:
        from pymodbus.simulator import DataType, SimData, SimDevice

        # id 0: answer every unit id; one shared block of 65,534 registers (coils and discrete
        # inputs read the bits of the same registers)
        return SimDevice(
            id=0,
            simdata=[SimData(address=0, count=32767, values=[0x3F80, 0x0000], datatype=DataType.REGISTERS)],
        )

    def start(self) -> None:
        from pymodbus.server import ModbusTcpServer

        ready = threading.Event()
        errors: list[BaseException] = []

        async def serve() -> None:
            # pymodbus is untyped here (ignore_missing_imports)
            server: Any = ModbusTcpServer(
                self._device(),
                address=(self.host, self.port),
                trace_packet=self._trace_packet,
            )
            self._server = server
            self._stop = asyncio.Event()
            try:
                await server.listen()
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            await self._stop.wait()
            await server.shutdown()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(serve())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"modbus-{self.port}", daemon=True)
        self._thread.start()
        if not ready.wait(30):
            raise TimeoutError(f"Modbus device on port {self.port} did not start")
        if errors:
            raise errors[0]

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(30)


@contextmanager
def recording_device(port: int) -> Iterator[RecordingDevice]:
    dev = RecordingDevice(port)
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()
