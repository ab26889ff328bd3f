"""Serving the simulated devices over Modbus: each device's registers are its shipped profile's
register map holding the model's values at the simulated time.

The I/O edge of the simulator. :class:`SiteImages` turns the model into register images (via
``epcwatch.profiles.encode.register_image``) once per *served instant* ``floor(now / update_s) x
update_s`` of the injected clock: like a real meter refreshing its registers, every read between
two updates sees the same values, and the served counters are the exact integrals at that
instant. :class:`ImageContext` answers Modbus reads from those images, honouring the profile's
quirks (largest read, forbidden ranges) so that the edge's read planner meets the device as
specified; unmapped addresses read as 0. Writes are refused (the simulator is read-only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from epcwatch import logs
from epcwatch.clock import Clock
from epcwatch.profiles.encode import register_image
from epcwatch.profiles.model import Profile, load_profile
from epcwatch.sim.ledger import Counters
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import Device
from epcwatch.sim.values import for_profile, values_at

log = logging.getLogger("epcwatch.sim.serve")

_TABLE_OF_FC = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}


@dataclass(frozen=True)
class ServedDevice:
    unit: int
    device: Device
    profile: Profile

    @property
    def point_names(self) -> set[str]:
        return {p.name for p in self.profile.points}


def served_devices(
    model: ComplexModel, devices: list[Device] | None = None, first_unit: int = 1
) -> list[ServedDevice]:
    """Unit ids in device order starting at ``first_unit``, each with its profile loaded.
    Devices with a DL/T 645 profile are left out: they are served on a DL/T 645 line
    (:mod:`epcwatch.sim.dlt645`), not on the Modbus gateway."""
    from epcwatch.profiles.dlt645_profile import is_dlt645_profile

    chosen = [
        d for d in (devices if devices is not None else model.devices) if not is_dlt645_profile(d.profile)
    ]
    profiles: dict[str, Profile] = {}
    out = []
    for i, d in enumerate(chosen):
        if d.profile not in profiles:
            profiles[d.profile] = load_profile(d.profile)
        out.append(ServedDevice(first_unit + i, d, profiles[d.profile]))
    return out


@dataclass
class SiteImages:
    """Register images of the served devices at the clock's current served instant."""

    model: ComplexModel
    counters: Counters
    devices: list[ServedDevice]
    clock: Clock
    update_s: float = 60.0
    #: optional sink of every image when first read: one JSON object per line
    served_log: IO[str] | None = None
    #: the model device whose values a served device carries (one-device modes)
    source: dict[int, str] = field(default_factory=dict)
    #: further model devices computed with the same instant (the DL/T 645 meters served beside
    #: the Modbus gateway: one model evaluation per instant for both, see :meth:`model_values`)
    extra: tuple[str, ...] = ()
    _instant: float | None = None
    _values: dict[str, dict[str, float]] = field(default_factory=dict)
    _images: dict[int, dict[str, dict[int, int | bool]]] = field(default_factory=dict)

    def instant(self) -> float:
        return math.floor(self.clock.now() / self.update_s) * self.update_s

    def values(self, unit: int) -> dict[str, float | int | bool]:
        """The values the device at ``unit`` serves now (its profile's points only)."""
        self._refresh()
        sd = self._by_unit()[unit]
        return for_profile(self._values[self.source.get(unit, sd.device.id)], sd.point_names)

    def image(self, unit: int) -> dict[str, dict[int, int | bool]]:
        self._refresh()
        img = self._images.get(unit)
        if img is None:
            sd = self._by_unit()[unit]
            vals = self.values(unit)
            img = {str(fn): table for fn, table in register_image(sd.profile, vals).items()}
            self._images[unit] = img
            if self.served_log is not None:
                doc = {"unit": unit, "device": sd.device.id, "t": self._instant, "values": vals}
                self.served_log.write(json.dumps(doc) + "\n")
                self.served_log.flush()
        return img

    def model_values(self, device_id: str) -> dict[str, float]:
        """The model's values of ``device_id`` (a served device's source or one of ``extra``) now."""
        self._refresh()
        return self._values.get(device_id, {})

    def _by_unit(self) -> dict[int, ServedDevice]:
        return {sd.unit: sd for sd in self.devices}

    def _refresh(self) -> None:
        t = self.instant()
        if t == self._instant:
            return
        wanted = {self.source.get(sd.unit, sd.device.id) for sd in self.devices} | set(self.extra)
        devs = [self.model.device(d) for d in sorted(wanted)]
        self._values = values_at(self.model, self.counters, t, devs)
        self._images = {}
        self._instant = t


class ImageContext:
    """A pymodbus server datastore answering from :class:`SiteImages` (duck-types pymodbus' SimCore)."""

    def __init__(self, images: SiteImages) -> None:
        self.images = images
        self.units = {sd.unit: sd for sd in images.devices}
        #: reads answered per (unit, function code), exceptions included
        self.reads: Counter[tuple[int, int]] = Counter()

    def device_ids(self) -> list[int]:
        return sorted(self.units)

    async def async_getValues(  # noqa: N802 - pymodbus datastore protocol
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        sd = self.units.get(device_id)
        if sd is None:
            raise NoSuchIdException(f"no device at unit {device_id}")
        self.reads[(device_id, func_code)] += 1
        table = _TABLE_OF_FC.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        quirks = sd.profile.quirks
        if count > quirks.max_per_read(table):
            return ExcCodes.ILLEGAL_VALUE
        if quirks.is_forbidden(table, address, count) or address + count > 0x10000:
            return ExcCodes.ILLEGAL_ADDRESS
        try:
            img = self.images.image(device_id)[table]
        except Exception:  # the datastore must answer; the failure is logged, the master sees it
            log.exception("image failed", extra=logs.fields(unit=device_id))
            return ExcCodes.DEVICE_FAILURE
        if table in ("coil", "discrete"):
            return [bool(img.get(a, False)) for a in range(address, address + count)]
        return [int(img.get(a, 0)) for a in range(address, address + count)]

    async def async_setValues(  # noqa: N802 - pymodbus datastore protocol
        self, device_id: int, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        if device_id not in self.units:
            raise NoSuchIdException(f"no device at unit {device_id}")
        return ExcCodes.ILLEGAL_FUNCTION


def _placeholder() -> SimDevice:
    return SimDevice(id=1, simdata=SimData(0, values=0, datatype=DataType.REGISTERS))


def tcp_server(context: ImageContext, host: str, port: int) -> ModbusTcpServer:
    """A Modbus TCP server (one gateway, many unit ids) answering from ``context``.

    pymodbus builds its own datastore from SimDevice lists; the simulator's registers are
    computed on demand, so the server's datastore is replaced by ``context``, which offers the
    same three methods the request handler calls.
    """
    server = ModbusTcpServer(_placeholder(), address=(host, port), ignore_missing_devices=True)
    server.context = context  # type: ignore[assignment]
    return server


def rtu_server(context: ImageContext, port: str, baudrate: int = 19200) -> ModbusSerialServer:
    """A Modbus RTU server on a serial line (e.g. one end of a socat pseudo-terminal pair)."""
    server = ModbusSerialServer(
        _placeholder(), framer=FramerType.RTU, port=port, baudrate=baudrate, ignore_missing_devices=True
    )
    server.context = context  # type: ignore[assignment]
    return server


async def run_servers(
    servers: list[ModbusTcpServer | ModbusSerialServer],
    stop: asyncio.Event,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until ``stop`` is set, then shut every server down."""
    for s in servers:
        await s.serve_forever(background=True)
    if on_ready is not None:
        on_ready()
    try:
        await stop.wait()
    finally:
        for s in servers:
            with contextlib.suppress(Exception):
                await s.shutdown()  # type: ignore[no-untyped-call]


def describe(images: SiteImages) -> list[dict[str, Any]]:
    """What is served where, for the command line and generated configs."""
    return [
        {
            "unit": sd.unit,
            "device": sd.device.id,
            "source": images.source.get(sd.unit, sd.device.id),
            "profile": sd.profile.id,
            "kind": sd.device.kind,
        }
        for sd in images.devices
    ]
