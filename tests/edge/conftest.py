"""Fixtures of the edge tests: a clock the test steps by hand, and real Modbus peers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest


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
