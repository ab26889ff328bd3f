"""An honest in-memory :class:`~epcwatch.edge.transport.ModbusTransport` for pure-logic tests.

It serves register images per unit id and behaves like the real thing where the poller cares:
unknown addresses answer exception 2, dead units time out, scripted faults (exception codes,
garbage frames, timeouts) fire per request, and a unit can be made to *hang* until released
so a test can prove that a slow device does not hold the others up. Every request is recorded,
and it enforces the same read-only and size checks as the real transport.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from dataclasses import dataclass, field

from epcwatch.edge.errors import DeviceTimeoutError, ExceptionResponseError, FrameError, ModbusError
from epcwatch.edge.transport import Registers, check_read


@dataclass(frozen=True, slots=True)
class Request:
    function: int
    address: int
    count: int
    unit: int


@dataclass
class FakeTransport:
    #: unit → {(function, address): value}; registers are ints 0..65535, bits are bools
    images: dict[int, dict[tuple[int, int], int | bool]] = field(default_factory=dict)
    dead: set[int] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    #: unit → queue of faults to raise on its next requests (consumed in order)
    faults: dict[int, deque[ModbusError]] = field(default_factory=lambda: defaultdict(deque))
    #: units whose requests block until :meth:`release` (or the caller's timeout)
    hanging: dict[int, asyncio.Event] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0

    def set_image(self, unit: int, image: dict[tuple[int, int], int | bool]) -> None:
        self.images[unit] = dict(image)

    def hang(self, unit: int) -> None:
        self.hanging[unit] = asyncio.Event()

    def release(self, unit: int) -> None:
        ev = self.hanging.pop(unit, None)
        if ev is not None:
            ev.set()

    def fail_next(self, unit: int, *errors: ModbusError) -> None:
        self.faults[unit].extend(errors)

    def count(self, unit: int) -> int:
        return sum(1 for r in self.requests if r.unit == unit)

    async def read(self, function: int, address: int, count: int, unit: int, timeout: float) -> Registers:
        check_read(function, address, count)
        self.requests.append(Request(function, address, count, unit))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # a real request always yields to the loop
            ev = self.hanging.get(unit)
            if ev is not None:
                try:
                    await asyncio.wait_for(ev.wait(), timeout)
                except TimeoutError:
                    raise DeviceTimeoutError(f"unit {unit}: no answer within {timeout:g} s") from None
            if self.faults.get(unit):
                raise self.faults[unit].popleft()
            if unit in self.dead or unit not in self.images:
                raise DeviceTimeoutError(f"unit {unit}: no answer within {timeout:g} s")
            image = self.images[unit]
            out: list[int | bool] = []
            for a in range(address, address + count):
                v = image.get((function, a))
                if v is None:
                    raise ExceptionResponseError(2)
                out.append(v)
            if function in (1, 2):
                return [bool(v) for v in out]
            if any(isinstance(v, bool) or not 0 <= int(v) <= 0xFFFF for v in out):
                raise FrameError(f"unit {unit}: register image holds a non-register value")
            return [int(v) for v in out]
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        for unit in list(self.hanging):
            self.release(unit)
