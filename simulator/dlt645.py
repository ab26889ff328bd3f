"""Simulated DL/T 645 meters: a slave that answers read requests on one line, over TCP (as
behind a transparent serial-over-TCP gateway) or on a serial port (one end of a socat
pseudo-terminal pair).

:class:`Dlt645Slave` holds the meters of one line. :meth:`Dlt645Slave.answer` is pure frame
logic (request frame in, reply frame or silence out) built on the shared codec in
``epcwatch.profiles.dlt645``; :meth:`Dlt645Slave.feed` turns received bytes into reply bytes;
:func:`serve_tcp` and :func:`serve_serial` are the I/O edges. A meter answers:

- a read of one of its profile's data identifiers with the value its ``values()`` callable gives
  now (energy counters roll over at the format's limit like a real register);
- a read of an identifier it does not have, or of a value that does not fit its format, with an
  error reply (0x02 "no requested data", 0x01 "other error");
- the read-address request to the wildcard address with its address (the only meter on the line
  is expected to answer it);
- nothing to a request for another address or to a broadcast.

For tests, ``silent`` makes a meter dead (it never answers) and ``faults`` makes a meter's
replies defective (``checksum``, ``length``, ``address``, ``error``); ``requests`` counts the
requests addressed to each meter.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from epcwatch import measurements
from epcwatch.measurements import Kind
from epcwatch.profiles import dlt645
from epcwatch.profiles.dlt645_profile import Dlt645Point, Dlt645Profile, encode_point

Fault = Literal["checksum", "length", "address", "error"]
ValueSource = Callable[[], Mapping[str, float | int | bool]]


@dataclass
class Dlt645Meter:
    address: str
    profile: Dlt645Profile
    values: ValueSource

    def __post_init__(self) -> None:
        self.address = dlt645.address_text(dlt645.address_number(self.address))


def encode_reading(p: Dlt645Point, value: float) -> bytes:
    """The value bytes of ``value``; counters wrap at the format's limit as a meter register does."""
    if measurements.VOCABULARY[p.name].kind is Kind.COUNTER:
        limit = p.bcd.max_magnitude + 1
        raw = round(value / p.scale * 10**p.bcd.decimals) % limit
        return dlt645.encode_bcd_int(raw, p.bcd)
    return encode_point(p, value)


@dataclass
class Dlt645Slave:
    meters: Sequence[Dlt645Meter]
    silent: set[str] = field(default_factory=set)
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    preamble: int = 2

    def __post_init__(self) -> None:
        self._by_address = {m.address: m for m in self.meters}
        if len(self._by_address) != len(self.meters):
            raise ValueError("two meters share an address on one line")

    def answer(self, request: dlt645.Frame) -> dlt645.Frame | None:
        """The reply to one request frame, or ``None`` (silence)."""
        if request.is_reply or request.address == dlt645.BROADCAST_ADDRESS:
            return None
        if request.control == dlt645.READ_ADDRESS_2007:
            if request.address != dlt645.WILDCARD_ADDRESS or not self.meters:
                return None
            meter = self.meters[0]
            if meter.address in self.silent:
                return None
            self.requests[meter.address] += 1
            reply = dlt645.Frame(
                meter.address, request.control | dlt645.DIRECTION_BIT, dlt645.encode_address(meter.address)
            )
            return self._faulty(meter, reply)
        matches = [m for m in self.meters if dlt645.addresses_match(request.address, m.address)]
        if not matches:
            return None
        meter = matches[0]
        self.requests[meter.address] += 1
        if meter.address in self.silent:
            return None
        version = next((v for v, c in dlt645.READ_DATA.items() if c == request.control), None)
        if version is None or version != meter.profile.version:
            return dlt645.error_reply(request, 0x01, meter.address)
        n = dlt645.DI_LEN[version]
        if len(request.data) != n:
            return dlt645.error_reply(request, 0x01, meter.address)
        di = int.from_bytes(request.data, "little")
        point = next((p for p in meter.profile.points if p.di == di), None)
        if point is None:
            return self._faulty(meter, dlt645.error_reply(request, 0x02, meter.address))
        value = meter.values().get(point.name)
        if value is None or isinstance(value, bool):
            return self._faulty(meter, dlt645.error_reply(request, 0x02, meter.address))
        try:
            raw = encode_reading(point, float(value))
        except dlt645.BcdError:
            return self._faulty(meter, dlt645.error_reply(request, 0x01, meter.address))
        return self._faulty(meter, dlt645.read_reply(request, raw, meter.address))

    def _faulty(self, meter: Dlt645Meter, reply: dlt645.Frame) -> dlt645.Frame:
        fault = self.faults.get(meter.address)
        if fault == "address":
            other = (dlt645.address_number(meter.address) + 1) % 1_000_000_000_000
            return dlt645.Frame(dlt645.address_text(other), reply.control, reply.data)
        if fault == "error":
            return dlt645.Frame(reply.address, reply.control | dlt645.ERROR_BIT, b"\x02")
        return reply

    def reply_bytes(self, reply: dlt645.Frame) -> bytes:
        out = bytearray(dlt645.encode_frame(reply, self.preamble))
        fault = self.faults.get(reply.address)
        if fault == "checksum":
            out[-2] ^= 0x5A
        elif fault == "length":
            out[self.preamble + 9] = (out[self.preamble + 9] + 1) & 0xFF
        return bytes(out)

    def feed(self, buf: bytearray) -> bytes:
        """Consume the complete request frames in ``buf`` (in place) and return the reply bytes.
        Damaged requests are dropped silently, as a meter does."""
        out = b""
        while True:
            try:
                frame, end = dlt645.next_frame(bytes(buf))
            except dlt645.Dlt645Error:
                # drop the damaged frame's start byte and look again
                del buf[: bytes(buf).index(dlt645.START) + 1]
                continue
            if frame is None:
                del buf[:end]
                return out
            del buf[:end]
            reply = self.answer(frame)
            if reply is not None:
                out += self.reply_bytes(reply)


async def serve_tcp(slave: Dlt645Slave, host: str, port: int) -> asyncio.Server:
    """A transparent gateway: every TCP client talks to the same line of meters."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        try:
            while data := await reader.read(512):
                buf += data
                reply = slave.feed(buf)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except OSError:
            pass
        except asyncio.CancelledError:
            # the server is shutting down with a client still connected. Python 3.11's
            # start_server calls task.exception() on the handler task when it ends, which raises
            # for a cancelled task and logs "Exception in callback" on every `sim serve` stop
            # with the edge connected: end the handler quietly instead
            pass
        finally:
            writer.close()  # (not awaited: the handler must not wait during shutdown)

    return await asyncio.start_server(handle, host, port)


async def serve_serial(
    slave: Dlt645Slave, port: str, baud: int = 2400, parity: str = "E"
) -> Callable[[], None]:
    """Answer on a serial port (e.g. a socat pty end) from the running loop; returns a closer."""
    import serial

    s: Any = serial.Serial(port, baudrate=baud, parity=parity, stopbits=1, bytesize=8, timeout=0)
    loop = asyncio.get_running_loop()
    buf = bytearray()

    def readable() -> None:
        try:
            data = s.read(s.in_waiting or 1)
        except Exception:  # the pty went away: stop serving it
            loop.remove_reader(s.fileno())
            return
        if not data:
            return
        buf.extend(data)
        reply = slave.feed(buf)
        if reply:
            s.write(reply)

    loop.add_reader(s.fileno(), readable)

    def close() -> None:
        with contextlib.suppress(Exception):
            loop.remove_reader(s.fileno())
        with contextlib.suppress(Exception):
            s.close()

    return close


@dataclass
class ModelValues:
    """Values of the simulated complex's devices at the clock's served instant
    (``floor(now / update_s) · update_s``), computed once per instant for every served device."""

    model: Any  # epcwatch.sim.model.ComplexModel
    counters: Any  # epcwatch.sim.ledger.Counters
    devices: list[Any]  # epcwatch.sim.spec.Device
    clock: Any  # epcwatch.clock.Clock
    update_s: float = 60.0
    _instant: float | None = None
    _values: dict[str, dict[str, float]] = field(default_factory=dict)

    def source(self, device_id: str, profile: Dlt645Profile) -> ValueSource:
        from epcwatch.sim.values import for_profile

        names = {p.name for p in profile.points}

        def get() -> Mapping[str, float | int | bool]:
            return for_profile(self.at_instant().get(device_id, {}), names)

        return get

    def at_instant(self) -> dict[str, dict[str, float]]:
        from epcwatch.sim.values import values_at

        t = (self.clock.now() // self.update_s) * self.update_s
        if t != self._instant:
            self._values = values_at(self.model, self.counters, t, self.devices)
            self._instant = t
        return self._values
