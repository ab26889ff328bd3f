"""Learned register holes: addresses a device refuses (exception 2, ILLEGAL DATA ADDRESS).

A profile's ``max_gap`` lets one read bridge unrequested registers between two points, which
saves requests on every device that answers its whole address range. Some devices refuse any
read that touches a register outside their map, so a bridged read fails as a whole. The poller
then *probes* the failed read (:func:`probe_read`): it reads every atomic block of points on its
own, then every bridge between two readable neighbours, and learns which gaps (and which points)
the device refuses. The device is re-planned around those holes (``max_gap`` stays a hint, not
a trap) and the holes are kept in a small JSON file beside the outbox (:class:`HoleStore`), so a
restarted agent plans around them from its first poll.

The probe costs at most ``2k - 1`` extra requests for a read of ``k`` blocks, once in a device's
life; it only runs after the device has answered (an exception response), and stops at the first
timeout or frame error, so a dead device never pays for it.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from epcwatch import logs
from epcwatch.edge.errors import ExceptionResponseError, ModbusError

log = logging.getLogger("epcwatch.edge.holes")

#: the Modbus exception that says "this address is not in my map"
ILLEGAL_DATA_ADDRESS: Final = 2
STORE_VERSION: Final = 1


@dataclass(frozen=True, slots=True, order=True)
class Hole:
    """Addresses ``first..last`` (inclusive) of function code ``function`` that the device refuses."""

    function: int
    first: int
    last: int

    def overlaps(self, function: int, start: int, count: int) -> bool:
        return function == self.function and start <= self.last and self.first < start + count

    def __str__(self) -> str:
        if self.first == self.last:
            return f"fc{self.function} {self.first}"
        return f"fc{self.function} {self.first}..{self.last}"


Holes = frozenset[Hole]
ReadFn = Callable[[int, int, int], Awaitable[object]]  # (function, address, count) -> answer


def gaps(blocks: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The unrequested ``(first, last)`` ranges between sorted ``(start, count)`` blocks."""
    out = []
    prev_end: int | None = None
    for start, count in sorted(blocks):
        if prev_end is not None and start > prev_end:
            out.append((prev_end, start - 1))
        prev_end = start + count if prev_end is None else max(prev_end, start + count)
    return out


async def probe_read(read: ReadFn, function: int, blocks: tuple[tuple[int, int], ...]) -> Holes:
    """Find the holes behind a bridged read of ``blocks`` (``(start, count)``, address order) that
    the device refused with ILLEGAL DATA ADDRESS; see the module docstring.

    A block refused on its own is a hole (its points cannot be read); a bridge between two
    readable blocks that is refused makes the gap between them a hole. If every block and every
    bridge reads on its own although the whole read was refused, every gap of the read becomes a
    hole (the conservative answer: the device is then read in separate blocks). Any other error
    ends the probe with what was learned so far.
    """
    learned: set[Hole] = set()
    readable: list[tuple[int, int]] = []
    try:
        for start, count in blocks:
            try:
                await read(function, start, count)
                readable.append((start, count))
            except ExceptionResponseError as exc:
                if exc.code != ILLEGAL_DATA_ADDRESS:
                    return frozenset(learned)
                learned.add(Hole(function, start, start + count - 1))
        for (a, an), (b, bn) in itertools.pairwise(readable):
            if b <= a + an:
                continue  # adjacent: nothing is bridged
            try:
                await read(function, a, b + bn - a)
            except ExceptionResponseError as exc:
                if exc.code != ILLEGAL_DATA_ADDRESS:
                    return frozenset(learned)
                learned.add(Hole(function, a + an, b - 1))
    except ModbusError:
        return frozenset(learned)
    if not learned:
        learned = {Hole(function, first, last) for first, last in gaps(blocks)}
    return frozenset(learned)


# -- persistence ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceHoles:
    """What is remembered of one device; ``key`` ties it to the device's profile and address, so
    holes learned on one meter are forgotten when the site file points the id at another."""

    key: str
    holes: Holes


def device_key(profile: str, bus: str, unit: int) -> str:
    return f"{profile}@{bus}/{unit}"


def encode(devices: Mapping[str, DeviceHoles]) -> bytes:
    doc = {
        "version": STORE_VERSION,
        "devices": {
            dev: {"key": d.key, "holes": [[h.function, h.first, h.last] for h in sorted(d.holes)]}
            for dev, d in sorted(devices.items())
            if d.holes
        },
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def decode(data: bytes) -> dict[str, DeviceHoles]:
    """Parse a store; raises ValueError on anything that is not one."""
    try:
        doc: Any = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("version") != STORE_VERSION
        or not isinstance(doc.get("devices"), dict)
    ):
        raise ValueError("not a learned-holes file of this version")
    out: dict[str, DeviceHoles] = {}
    for dev, entry in doc["devices"].items():
        try:
            holes = frozenset(
                Hole(int(f), int(a), int(b))
                for f, a, b in entry["holes"]
                if int(f) in (1, 2, 3, 4) and 0 <= int(a) <= int(b) <= 0xFFFF
            )
            out[str(dev)] = DeviceHoles(str(entry["key"]), holes)
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"device {dev!r}: malformed entry") from None
    return out


class HoleStore:
    """The learned holes of a site's devices in one JSON file, replaced atomically (write, fsync,
    rename). A missing or unreadable file means nothing learned yet: the agent relearns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.devices: dict[str, DeviceHoles] = {}
        try:
            self.devices = decode(path.read_bytes())
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as exc:
            log.warning("ignoring learned holes", extra=logs.fields(path=str(path), error=str(exc)))

    def holes(self, device: str, key: str) -> Holes:
        d = self.devices.get(device)
        return d.holes if d is not None and d.key == key else frozenset()

    def remember(self, device: str, key: str, holes: Holes) -> None:
        self.devices[device] = DeviceHoles(key, frozenset(holes))
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            os.write(fd, encode(self.devices))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)


def store_path(outbox_path: Path) -> Path:
    """Where a site's learned holes live: beside its outbox (the agent's state directory)."""
    return outbox_path.with_name("learned-holes.json")
