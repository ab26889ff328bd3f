"""The edge agent: wires the site's buses, pollers, outbox, forwarder, publisher and health.

``Agent.run()`` polls until cancelled (``epcwatch edge run`` cancels it on SIGTERM/SIGINT).
Readings go from the pollers through an in-memory queue to one writer task that commits them
to the outbox **once per poll cycle**: after the first reading of a cycle it waits until no poll
is running on any bus (every device due in that cycle has delivered), at most
:data:`COMMIT_MAX_WAIT_S` (and never longer than the shortest poll interval), then commits
everything queued in one transaction, one fsync. 100 devices polled every second thus cost one
commit a second, and the fixed pages a commit writes are shared by all of them (docs/edge.md
"Disk writes"). A reading is durable once committed, as before; what a crash can take is only
what was polled and not yet committed, at most one cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from epcwatch import logs
from epcwatch.clock import Clock
from epcwatch.edge.dlt645_bus import Dlt645Transport
from epcwatch.edge.errors import SiteConfigError
from epcwatch.edge.forwarder import DeviceInfo, Forwarder
from epcwatch.edge.health import HealthBook, write_status_file
from epcwatch.edge.holes import HoleStore, device_key, store_path
from epcwatch.edge.outbox import NewReading, Outbox
from epcwatch.edge.poller import BusPoller, DevicePlan
from epcwatch.edge.publisher import Publisher
from epcwatch.edge.site import AnyBus, DeviceConfig, Dlt645SerialBus, Dlt645TcpBus, SiteConfig
from epcwatch.edge.transport import ModbusTransport
from epcwatch.edge.transport import transport_for_bus as modbus_transport_for_bus
from epcwatch.wire import DeviceTags

log = logging.getLogger("epcwatch.edge.agent")

TransportFactory = Callable[[AnyBus], ModbusTransport]


def transport_for_bus(bus: AnyBus) -> ModbusTransport:
    """The transport of a bus: our Modbus TCP client, pymodbus on serial Modbus lines, the DL/T 645
    transport for DL/T 645 buses."""
    if isinstance(bus, Dlt645SerialBus | Dlt645TcpBus):
        return Dlt645Transport.for_bus(bus)
    return modbus_transport_for_bus(bus)



#: largest group of readings committed in one outbox transaction
WRITE_GROUP = 2000
#: longest a polled reading waits for the end of its poll cycle before it is committed anyway
#: (a dead device's retries can keep one poll running for seconds)
COMMIT_MAX_WAIT_S = 1.0
#: how long a graceful stop lets the forwarder send what is committed (uplink up only)
SEND_ON_STOP_S = 3.0


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
            site=cfg.site if cfg.signing is not None else None,
        )
        signing_key = None
        if cfg.signing is not None:  # signs with the libcrypto ssl loaded (site_key.py)
            from epcwatch.edge.site_key import load_signer

            signing_key = load_signer(cfg.signing.key_file)
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
            wire=m.wire,
            linger_s=m.linger_s,
            max_unacked=m.max_unacked,
            ack_timeout_s=m.ack_timeout_s,
            ack_timeout_max_s=m.ack_timeout_max_s,
            signing_key=signing_key,
        )
        #: poll time (ms) of the oldest reading in the outbox, refreshed by the health loop
        self.oldest_ts: int | None = None
        self.transports: list[ModbusTransport] = []
        self.pollers: list[BusPoller] = []
        self._queue: asyncio.Queue[NewReading] = asyncio.Queue()
        self._held: list[NewReading] = []
        self.stored = 0
        self.dropped_now = 0
        self.refused_now = 0
        # holes learned by earlier runs: read around them from the first poll
        self.holes = HoleStore(store_path(Path(cfg.outbox.path)))
        learned_plans: dict[str, DevicePlan] = {}
        for d in devices:
            plan = plans[d.id]
            known = self.holes.holes(d.id, device_key(plan.profile, d.bus, d.target()))
            learned_plans[d.id] = (plan.learn(known) if known else None) or plan
        for bus in cfg.buses:
            members = [
                (
                    d,
                    learned_plans[d.id]
                    if d.use_group_intervals
                    else dataclasses.replace(learned_plans[d.id], groups=()),
                )
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
                    on_learned=self._remember_holes,
                )
            )

    def _remember_holes(self, device: DeviceConfig, plan: DevicePlan) -> None:
        """Persist a device's learned holes (on the outbox thread: it fsyncs)."""
        key = device_key(plan.profile, device.bus, device.target())

        def save() -> None:
            try:
                self.holes.remember(device.id, key, plan.holes)
            except OSError as exc:
                log.warning("cannot save learned holes", extra=logs.fields(error=str(exc)))

        asyncio.get_running_loop().run_in_executor(self.executor, save)

    def _enqueue(self, reading: NewReading) -> None:
        self._queue.put_nowait(reading)

    async def _cycle_end(self) -> None:
        """Wait until no poll runs on any bus (the readings of the cycle are queued), bounded by
        :data:`COMMIT_MAX_WAIT_S` and the shortest poll interval."""
        intervals = [d.poll_interval_s for d in self.cfg.devices if d.enabled]
        wait = min([COMMIT_MAX_WAIT_S, *intervals])
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                for p in self.pollers:
                    await p.idle.wait()

    async def _writer(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            group = [await self._queue.get()]
            self._held = group  # a graceful stop commits what waits here for the end of its cycle
            await self._cycle_end()
            self._held = []
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
            outbox_unacked=self.forwarder.unacked(),
            outbox_oldest_age_s=(
                None if self.oldest_ts is None or not self.outbox.depth
                else max(0.0, self.clock.now() - self.oldest_ts / 1000.0)
            ),
            published=self.forwarder.published_readings,
            connected=self.publisher.connected,
        )
        try:
            write_status_file(
                self.cfg.status_file(),
                msg,
                {
                    "outbox_in_flight": self.forwarder.in_flight(),
                    "outbox_refused": self.outbox.refused,
                    "outbox_acked": self.forwarder.acked_readings,
                    "outbox_resent_messages": self.forwarder.resent_messages,
                },
            )
        except OSError as exc:
            log.warning("cannot write status file", extra=logs.fields(error=str(exc)))
        return msg.model_dump_json(exclude_none=True).encode()

    async def _health_loop(self) -> None:
        # wall-clock period: health is about the box, not about simulated time
        loop = asyncio.get_running_loop()
        while True:
            try:
                self.oldest_ts = await loop.run_in_executor(self.executor, self.outbox.oldest_ts)
            except Exception as exc:
                log.warning("cannot read the outbox's oldest reading", extra=logs.fields(error=str(exc)))
            self.publisher.publish_health(self.health_message())
            await asyncio.sleep(self.cfg.health.interval_s)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.publisher.start(loop, self.forwarder.on_ack, self.forwarder.wake, self.forwarder.on_e2e_ack)
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

    async def _drain(self, seconds: float) -> None:
        """Polling has stopped: for up to ``seconds``, hand over what is left and wait for its
        end-to-end acknowledgement, so that a clean stop usually leaves an empty outbox (what is
        left is sent after the next start; nothing is lost either way)."""
        try:
            async with asyncio.timeout(seconds):
                while True:
                    await self.forwarder.step()
                    if self.outbox.depth == 0 or not self.publisher.connected:
                        break
                    await self.forwarder.wait_woken()
        except TimeoutError:
            pass
        await self.forwarder.flush_deletes()

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        keep = ("outbox-writer", "forwarder")
        for t in tasks:
            if t.get_name() not in keep:
                t.cancel()
        for t in tasks:
            if t.get_name() not in keep:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        # commit what was polled but not yet written (also what waits for the end of its poll
        # cycle), then stop the writer
        loop = asyncio.get_running_loop()
        writer = next(t for t in tasks if t.get_name() == "outbox-writer")
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        pending = list(self._held)
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        if pending:
            with contextlib.suppress(Exception):
                await loop.run_in_executor(self.executor, self.outbox.append, pending)
        # with the uplink up, send what the last cycle committed before stopping (bounded); what
        # is left stays in the outbox for the next start, as always
        deadline = loop.time() + SEND_ON_STOP_S
        self.forwarder.wake()
        while self.publisher.connected and self.outbox.depth > 0 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        forwarder = next(t for t in tasks if t.get_name() == "forwarder")
        while not forwarder.done():  # asyncio.wait_for on 3.11 can swallow a cancel: repeat it
            forwarder.cancel()
            await asyncio.wait({forwarder}, timeout=0.1)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            forwarder.result()
        with contextlib.suppress(Exception):
            await self._drain(self.cfg.mqtt.stop_drain_s)
        for tr in self.transports:
            with contextlib.suppress(Exception):
                await tr.close()
        with contextlib.suppress(Exception):
            self.health_message()
        await loop.run_in_executor(None, self.publisher.stop)
        await loop.run_in_executor(self.executor, self.outbox.close)
        self.executor.shutdown(wait=True)
        log.info("agent stopped", extra=logs.fields(site=self.cfg.site))
