"""Clocks are passed in, never read from a global, so simulation, replay and tests control time.

``AcceleratedClock`` maps wall time to simulated time with a fixed speed-up from an anchor;
two processes given the same anchor, start and speed share the same simulated time, which is
how the simulator and the edge agent run a simulated year in minutes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from epcwatch.errors import EpcwatchError


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the Unix epoch (UTC), possibly simulated."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep for ``seconds`` of this clock's time."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@dataclass
class AcceleratedClock:
    """Simulated time = ``start + (wall - anchor) * speed``."""

    start: float
    speed: float
    anchor: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be positive")

    def now(self) -> float:
        return self.start + (time.time() - self.anchor) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


@dataclass
class ManualClock:
    """A clock tests advance by hand; ``sleep`` advances it and yields to the loop."""

    t: float = 1_700_000_000.0

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)


class ClockOptionError(EpcwatchError, ValueError):
    """Clock options that do not fit together or do not parse (a ``ValueError`` too, as before)."""


def build_clock(sim_start: str | None, speed: float, anchor: float | None) -> Clock:
    """The clock of ``--sim-start/--speed/--anchor`` (docs/data-model.md, shared clock options):
    an :class:`AcceleratedClock` anchored at ``anchor`` (default: now), else wall time.

    Raises :class:`ClockOptionError`."""
    if sim_start is None:
        if speed != 1.0 or anchor is not None:
            raise ClockOptionError("--speed and --anchor need --sim-start")
        return SystemClock()
    try:
        start = datetime.fromisoformat(sim_start)
    except ValueError:
        raise ClockOptionError(f"--sim-start: {sim_start!r} is not an ISO 8601 date or time") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return AcceleratedClock(
        start=start.timestamp(), speed=speed, anchor=anchor if anchor is not None else time.time()
    )
