"""The edge agent: wires the site's buses, pollers, outbox, forwarder, publisher and health.

``Agent.run()`` polls until cancelled (``epcwatch edge run`` cancels it on SIGTERM/SIGINT).
Readings go from the pollers through an in-memory queue to one writer task that commits them
to the outbox in groups (one transaction, one fsync per group), so 100 devices polled in the
same second cost a handful of fsyncs, not a hundred.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from epcwatch import logs
from epcwatch.clock import Clock
from epcwatch.edge.dlt645_bus import Dlt645Transport
from epcwatch.edge.errors import SiteConfigError
from epcwatch.edge.forwarder import DeviceInfo, Forwarder
from epcwatch.edge.health import HealthBook, write_status_file
from epcwatch.edge.outbox import NewReading, Outbox
from epcwatch.edge.poller import BusPoller, DevicePlan
from epcwatch.edge.publisher import Publisher
from epcwatch.edge.site import AnyBus, Dlt645SerialBus, Dlt645TcpBus, SiteConfig
from epcwatch.edge.transport import ModbusTransport, PymodbusTransport
from epcwatch.wire import DeviceTags

log = logging.getLogger("epcwatch.edge.agent")

TransportFactory = Callable[[AnyBus], ModbusTransport]


def transport_for_bus(bus: AnyBus) -> ModbusTransport:
    """The transport of a bus: pymodbus for Modbus buses, the DL/T 645 transport for DL/T 645 ones."""
    if isinstance(bus, Dlt645SerialBus | Dlt645TcpBus):
        return Dlt645Transport.for_bus(bus)
    return PymodbusTransport.for_bus(bus)

#: largest group of readings committed in one outbox transaction
WRITE_GROUP = 2000


def check_protocols(cfg: SiteConfig, plans: Mapping[str, DevicePlan]) -> None:
    """Every enabled device's profile speaks its bus's protocol; raises :class:`SiteConfigError`."""
    for d in cfg.devices:
        if not d.enabled:
            continue
        bus = cfg.bus(d.bus)
        wanted = "dlt645" if isinstance(bus, Dlt645SerialBus | Dlt645TcpBus) else "modbus"
        got = plans[d.id].protocol
        if got != wanted:
            raise SiteConfigError(
                f"device {d.id}: profile {plans[d.id].profile} is a {got} profile, bus {bus.id} is {wanted}"
            )


class Agent:
    def __init__(
        self,
        cfg: SiteConfig,
        plans: Mapping[str, DevicePlan],
        clock: Clock,
        *,
        password: str | None = None,
        transport_factory: TransportFactory = transport_for_bus,
    ) -> None:
        self.cfg = cfg
        self.plans = plans
        self.clock = clock
        self.transport_factory = transport_factory
        self.started_wall = time.monotonic()
        devices = [d for d in cfg.devices if d.enabled]
        check_protocols(cfg, plans)
        self.health = HealthBook([d.id for d in devices], cfg.health.offline_after_failures)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self.outbox = Outbox(
            cfg.outbox.path,
            max_bytes=cfg.outbox.max_bytes,
            full_policy=cfg.outbox.full_policy,
            synchronous=cfg.outbox.synchronous,
        )
        self.publisher = Publisher(cfg, clock, password)
        info = {
            d.id: DeviceInfo(
                kind=plans[d.id].kind,
                tags=DeviceTags(**d.tags.model_dump(), profile=plans[d.id].profile),
            )
            for d in devices
        }
        m = cfg.mqtt
        self.forwarder = Forwarder(
            cfg.site,
            self.outbox,
            self.publisher,
            info,
            self.executor,
            max_inflight=m.max_inflight,
            max_readings=m.max_readings_per_message,
            max_bytes=m.max_message_bytes,
            retry_max_s=m.reconnect_max_s,
        )
        self.transports: list[ModbusTransport] = []
        self.pollers: list[BusPoller] = []
        self._queue: asyncio.Queue[NewReading] = asyncio.Queue()
        self.stored = 0
        self.dropped_now = 0
        self.refused_now = 0
        for bus in cfg.buses:
            members = [
                (d, plans[d.id] if d.use_group_intervals else dataclasses.replace(plans[d.id], groups=()))
                for d in devices
                if d.bus == bus.id
            ]
            if not members:
                continue
            transport = transport_factory(bus)
            self.transports.append(transport)
            self.pollers.append(
                BusPoller(
                    bus.id,
                    transport=transport,
                    devices=members,
                    clock=clock,
                    sink=self._enqueue,
                    health=self.health,
                )
            )

    def _enqueue(self, reading: NewReading) -> None:
        self._queue.put_nowait(reading)

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            while not self._queue.empty() and len(group) < WRITE_GROUP:
                group.append(self._queue.get_nowait())
            try:
                res = await loop.run_in_executor(self.executor, self.outbox.append, group)
            except Exception as exc:
                log.error("outbox write failed", extra=logs.fields(error=str(exc), readings=len(group)))
                await asyncio.sleep(1.0)
                continue
            self.stored += res.stored
            self.dropped_now += res.dropped
            self.refused_now += res.refused
            if res.dropped or res.refused:
                log.warning(
                    "outbox full",
                    extra=logs.fields(
                        policy=self.outbox.full_policy, dropped=res.dropped, refused=res.refused
                    ),
                )
            self.forwarder.wake()

    def health_message(self) -> bytes:
        msg = self.health.message(
            site=self.cfg.site,
            agent=self.cfg.agent_name(),
            ts_ms=int(self.clock.now() * 1000),
            uptime_s=time.monotonic() - self.started_wall,
            outbox_depth=self.outbox.depth,
            outbox_bytes=self.outbox.bytes,
            outbox_dropped=self.outbox.dropped + self.outbox.refused,
            published=self.forwarder.published_readings,
            connected=self.publisher.connected,
        )
        try:
            write_status_file(
                self.cfg.status_file(),
                msg,
                {"outbox_in_flight": self.forwarder.in_flight(), "outbox_refused": self.outbox.refused},
            )
        except OSError as exc:
            log.warning("cannot write status file", extra=logs.fields(error=str(exc)))
        return msg.model_dump_json(exclude_none=True).encode()

    async def _health_loop(self) -> None:
        # wall-clock period: health is about the box, not about simulated time
        while True:
            self.publisher.publish_health(self.health_message())
            await asyncio.sleep(self.cfg.health.interval_s)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.publisher.start(loop, self.forwarder.on_ack, self.forwarder.wake)
        log.info(
            "agent started",
            extra=logs.fields(
                site=self.cfg.site,
                devices=len(self.health.devices),
                buses=len(self.pollers),
                outbox_depth=self.outbox.depth,
            ),
        )
        tasks = [
            asyncio.create_task(self._writer(), name="outbox-writer"),
            asyncio.create_task(self.forwarder.run(), name="forwarder"),
            asyncio.create_task(self._health_loop(), name="health"),
            *(asyncio.create_task(p.run(), name=f"bus-{p.bus_id}") for p in self.pollers),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:  # a task only ends by raising: surface it
                t.result()
        finally:
            await self._shutdown(tasks)

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        for t in tasks:
            if t.get_name() != "outbox-writer":
                t.cancel()
        for t in tasks:
            if t.get_name() != "outbox-writer":
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        # commit what was polled but not yet written, then stop the writer
        loop = asyncio.get_running_loop()
        pending = []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        writer = next(t for t in tasks if t.get_name() == "outbox-writer")
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        if pending:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self.executor, self.outbox.append, pending)
        with contextlib.suppress(Exception):
            await self.forwarder.flush_deletes()
        for tr in self.transports:
            with contextlib.suppress(Exception):
                await tr.close()
        with contextlib.suppress(Exception):
            self.health_message()
        await loop.run_in_executor(None, self.publisher.stop)
        await loop.run_in_executor(self.executor, self.outbox.close)
        self.executor.shutdown(wait=True)
        log.info("agent stopped", extra=logs.fields(site=self.cfg.site))
