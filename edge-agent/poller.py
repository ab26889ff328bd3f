"""Polling: run each device's read plan on its bus, on its schedule, and turn answers into readings.

One :class:`BusPoller` per bus. It starts a poll task for every device that is due and never
waits for one device before starting another, so a dead or slow device cannot delay the
others' polls; the bus's transport enforces how many requests are really in flight (one on a
serial line, ``max_concurrency`` on a TCP gateway). A device whose previous poll is still
running when it is due again is not polled twice (counted as an overrun). Schedules and
timestamps come from the injected clock; timeouts and inter-frame gaps are physical and use
real time inside the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from epcwatch import measurements
from epcwatch.clock import Clock
from epcwatch.edge.errors import (
    BusUnavailableError,
    DeviceTimeoutError,
    ExceptionResponseError,
    FrameError,
    ModbusError,
)
from epcwatch.edge.health import HealthBook
from epcwatch.edge.holes import ILLEGAL_DATA_ADDRESS, Hole, Holes, probe_read
from epcwatch.edge.outbox import NewReading
from epcwatch.edge.schedule import next_due, next_slot
from epcwatch.edge.site import DeviceConfig
from epcwatch.edge.transport import ModbusTransport, Registers
from epcwatch.measurements import FieldType
from epcwatch.wire import DeviceKind, Quality, Value

log = logging.getLogger("epcwatch.edge.poller")

#: Modbus exception codes worth retrying within the same poll (busy, acknowledge, gateway target)
RETRYABLE_EXCEPTIONS = frozenset({5, 6, 11})


@dataclass(frozen=True, slots=True)
class ReadSpec:
    """One request: a Modbus function, address and register count, or (DL/T 645) the read
    control code, the data identifier and the value's byte count. ``points`` names the values
    decoded from it (for failure reports) and ``blocks`` lists the ``(start, count)`` ranges it
    really needs, in address order: a Modbus read of two or more blocks bridges unrequested
    registers and can be split when the device refuses it (``epcwatch.edge.holes``). Both are
    optional: a plan without them is never split."""

    function: int
    address: int
    count: int
    name: str = ""  # how errors name the read (default: fcN@address)
    points: tuple[str, ...] = ()
    blocks: tuple[tuple[int, int], ...] = ()

    def label(self) -> str:
        return self.name or f"fc{self.function}@{self.address}"


Decoder = Callable[[Sequence[Registers | None]], tuple[dict[str, Value], Quality]]


@dataclass(frozen=True, slots=True)
class ReadGroup:
    """A profile's poll group: reads with their decoder and, optionally, an interval of their own
    (e.g. energy counters every 60 s while power is read every 10 s)."""

    name: str
    interval: float | None
    reads: tuple[ReadSpec, ...]
    decode: Decoder


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """What the poller needs of a profile: the reads to issue, and how to decode their answers
    (``None`` for a read that failed) into values and a quality.

    ``reads``/``decode`` cover the whole plan (what ``edge read`` uses); ``groups`` split it into
    poll groups, read on their own intervals. Without groups the plan is one group."""

    profile: str
    kind: DeviceKind
    reads: tuple[ReadSpec, ...]
    decode: Decoder
    groups: tuple[ReadGroup, ...] = ()
    protocol: str = "modbus"  # or "dlt645": which kind of bus the reads are for
    #: the learned holes this plan avoids, the points left out because of them, and how to plan
    #: the device again around more holes (``None``: the plan cannot learn)
    holes: Holes = frozenset()
    refused: tuple[str, ...] = ()
    replan: Callable[[Holes], DevicePlan] | None = field(default=None, compare=False, repr=False)

    def poll_groups(self) -> tuple[ReadGroup, ...]:
        return self.groups or (ReadGroup("all", None, self.reads, self.decode),)

    def learn(self, learned: Holes) -> DevicePlan | None:
        """The plan around ``learned`` holes as well, or ``None`` when nothing new was learned or
        the plan cannot learn. A plan without poll groups stays one without."""
        if self.replan is None or learned <= self.holes:
            return None
        new = self.replan(self.holes | learned)
        return new if self.groups else dataclasses.replace(new, groups=())


def due_groups(groups: Sequence[ReadGroup], group_due: dict[str, float], now: float) -> tuple[ReadGroup, ...]:
    """The groups to read in a poll at ``now``: those without an interval of their own, and those
    whose next slot has come."""
    return tuple(g for g in groups if g.interval is None or group_due.get(g.name, -math.inf) <= now)


def _subplan(plan: DevicePlan, groups: tuple[ReadGroup, ...]) -> DevicePlan:
    if len(groups) == 1 and not plan.groups:
        return plan
    reads = tuple(r for g in groups for r in g.reads)

    def decode(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
        values: dict[str, Value] = {}
        quality: Quality = "good"
        i = 0
        for g in groups:
            n = len(g.reads)
            v, q = g.decode(answers[i : i + n])
            i += n
            values.update(v)
            if q != "good":
                quality = "partial"
        return values, quality

    return DevicePlan(
        plan.profile, plan.kind, reads, decode, protocol=plan.protocol, holes=plan.holes, refused=plan.refused
    )


@dataclass(frozen=True, slots=True)
class PollOutcome:
    values: dict[str, Value]
    quality: Quality
    latency_s: float
    error: str | None  # first error met, also on partial success
    frame_errors: int = 0  # answers that were not valid frames (checksum, length, address, garbage)
    error_replies: int = 0  # exception responses / DL/T 645 error replies
    #: point name -> why it has no value (its read failed, the device refuses it, no value decoded)
    failures: dict[str, str] = field(default_factory=dict)
    #: holes found by probing reads the device refused (empty unless learning was on)
    learned: Holes = frozenset()

    @property
    def ok(self) -> bool:
        return bool(self.values)


def sanitize(values: dict[str, Value]) -> tuple[dict[str, Value], bool]:
    """Keep only values the wire contract accepts (known name, finite, right type); the flag says
    whether something was removed, which makes the reading ``partial``."""
    out: dict[str, Value] = {}
    vocabulary = measurements.VOCABULARY
    for name, v in values.items():
        m = vocabulary.get(name)
        if m is None:
            continue
        if type(v) is float and m.field_type is FieldType.FLOAT:  # the common case, first
            if v - v == 0.0 and -1e15 <= v <= 1e15:  # finite and in range
                out[name] = v
            continue
        if m.field_type is FieldType.BOOL:
            if isinstance(v, bool):
                out[name] = v
            continue
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if isinstance(v, float) and not math.isfinite(v):
            continue
        if abs(v) > 1e15:
            continue
        if m.field_type is FieldType.INT:
            if not float(v).is_integer():
                continue
            out[name] = int(v)
            continue
        out[name] = v
    return out, len(out) != len(values)


REFUSED = "refused by the device (exception 2, illegal data address)"


def _failures(plan: DevicePlan, errors: Sequence[str | None], values: dict[str, Value]) -> dict[str, str]:
    out = {name: REFUSED for name in plan.refused}
    for read, err in zip(plan.reads, errors, strict=False):
        for name in read.points:
            if name not in values:
                out[name] = err or "no value decoded (the device reports none, or it is out of range)"
    return out


async def poll_device(
    transport: ModbusTransport,
    plan: DevicePlan,
    unit: int,
    timeout: float,
    retries: int,
    *,
    learn: bool = False,
) -> PollOutcome:
    """Run one poll of a device: every read of its plan, with retries, then decode.

    A timeout that outlasts the retries on the first read means the device is not there: the
    remaining reads are skipped so a dead device costs the bus one timeout per attempt only.
    Exception responses are deterministic and not retried (except busy/acknowledge/gateway).
    With ``learn``, a read of several blocks refused with ILLEGAL DATA ADDRESS is probed for
    the device's holes (``PollOutcome.learned``); :func:`poll_learning` acts on them.
    """
    started = time.monotonic()
    answers: list[Registers | None] = []
    errors: list[str | None] = []
    first_error: str | None = None
    any_answer = False
    frame_errors = error_replies = 0
    learned: set[Hole] = set()

    async def probe(function: int, address: int, count: int) -> object:
        return await transport.read(function, address, count, unit, timeout)

    for i, read in enumerate(plan.reads):
        result: Registers | None = None
        error: str | None = None
        for attempt in range(retries + 1):
            try:
                result = await transport.read(read.function, read.address, read.count, unit, timeout)
                any_answer = True
                break
            except ExceptionResponseError as exc:
                any_answer = True  # the device is alive, it just refused this read
                error = f"{read.label()}: {exc}"
                error_replies += 1
                if exc.code == ILLEGAL_DATA_ADDRESS and learn and len(read.blocks) > 1:
                    learned |= await probe_read(probe, read.function, read.blocks)
                if not exc.retryable or exc.code not in RETRYABLE_EXCEPTIONS or attempt == retries:
                    break
            except FrameError as exc:
                frame_errors += 1
                error = f"{read.label()}: {exc}"
            except DeviceTimeoutError as exc:
                error = f"{read.label()}: {exc}"
            except BusUnavailableError as exc:
                error = str(exc)
                break
        answers.append(result)
        errors.append(None if result is not None else error)
        first_error = first_error or error
        if result is None and not any_answer and i == 0:
            answers.extend([None] * (len(plan.reads) - 1))
            errors.extend([error] * (len(plan.reads) - 1))
            break
    latency = time.monotonic() - started
    found = frozenset(learned)

    def outcome(
        values: dict[str, Value], quality: Quality, error: str | None, failures: dict[str, str]
    ) -> PollOutcome:
        return PollOutcome(values, quality, latency, error, frame_errors, error_replies, failures, found)

    if first_error is None and not plan.refused and not found:  # the common case: all answered
        try:
            values, quality = plan.decode(answers)
        except (ValueError, ArithmeticError, ModbusError) as exc:
            reason = f"decode failed: {exc}"
            return outcome({}, "partial", reason, _failures(plan, [reason] * len(answers), {}))
        clean, removed = sanitize(values)
        missing = sum(len(r.points) for r in plan.reads) - len(clean)
        failures = _failures(plan, errors, clean) if missing > 0 else {}
        return outcome(clean, "partial" if removed else quality, None, failures)
    if not any(a is not None for a in answers):
        return outcome({}, "partial", first_error or "no answer", _failures(plan, errors, {}))
    try:
        values, quality = plan.decode(answers)
    except (ValueError, ArithmeticError, ModbusError) as exc:  # a decoder bug must not kill the bus
        reason = f"decode failed: {exc}"
        return outcome({}, "partial", reason, _failures(plan, [reason] * len(answers), {}))
    clean, removed = sanitize(values)
    if removed or any(a is None for a in answers):
        quality = "partial"
    return outcome(clean, quality, first_error, _failures(plan, errors, clean))


#: re-plans within one poll: each round adds at least one hole, so this only bounds pathologies
MAX_LEARNING_ROUNDS = 3


async def poll_learning(
    transport: ModbusTransport,
    plan: DevicePlan,
    unit: int,
    timeout: float,
    retries: int,
    *,
    plan_for: Callable[[DevicePlan], DevicePlan] = lambda p: p,
) -> tuple[PollOutcome, DevicePlan]:
    """:func:`poll_device` that learns: when the device refuses bridged reads, plan it around the
    holes found and poll again at once, so this poll already delivers every readable point.
    Returns the outcome and the device's plan from now on (``plan`` itself if nothing was
    learned). ``plan_for`` narrows a plan to what is read in this poll (the due poll groups)."""
    can_learn = plan.replan is not None
    outcome = await poll_device(transport, plan_for(plan), unit, timeout, retries, learn=can_learn)
    for _ in range(MAX_LEARNING_ROUNDS):
        new = plan.learn(outcome.learned)
        if new is None:
            break
        plan = new
        outcome = await poll_device(transport, plan_for(plan), unit, timeout, retries, learn=True)
        outcome = dataclasses.replace(outcome, learned=plan.holes | outcome.learned)
    return outcome, plan


@dataclass
class DeviceRuntime:
    config: DeviceConfig
    plan: DevicePlan
    due: float = 0.0
    failures: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    overruns: int = 0
    group_due: dict[str, float] = field(default_factory=dict)


Sink = Callable[[NewReading], Awaitable[None] | None]


class BusPoller:
    """Schedules the devices of one bus; see the module docstring."""

    def __init__(
        self,
        bus_id: str,
        *,
        transport: ModbusTransport,
        devices: Sequence[tuple[DeviceConfig, DevicePlan]],
        clock: Clock,
        sink: Sink,
        health: HealthBook,
        on_learned: Callable[[DeviceConfig, DevicePlan], None] | None = None,
    ) -> None:
        self.bus_id = bus_id
        self.on_learned = on_learned
        self.transport = transport
        self.clock = clock
        self.sink = sink
        self.health = health
        now = clock.now()
        # the first poll happens at once; after it, polls sit on the interval grid
        self.devices = [DeviceRuntime(c, p, due=now) for c, p in devices]
        for c, p in devices:
            if p.holes or p.refused:  # remembered from an earlier run
                health.holes(c.id, sorted(str(h) for h in p.holes), p.refused)
        self._changed = asyncio.Event()
        #: set while no poll of this bus is running: the end of a poll cycle, when the readings of
        #: every device polled in it are in the sink (the agent commits them in one transaction)
        self.idle = asyncio.Event()
        self.idle.set()
        self._running = 0
        self._wake_at = math.inf  # when run() means to wake next (inf: when a poll finishes)

    def tick(self) -> list[asyncio.Task[None]]:
        """Start a poll for every device due now (and not still polling); returns the new tasks."""
        now = self.clock.now()
        started = []
        for d in self.devices:
            if d.due > now:
                continue
            if d.task is not None:
                d.overruns += 1
                d.due = next_slot(now, d.config.poll_interval_s)
                continue
            d.task = asyncio.create_task(self._poll(d), name=f"poll-{d.config.id}")
            self._running += 1
            self.idle.clear()
            started.append(d.task)
        return started

    def _learned(self, cfg: DeviceConfig, plan: DevicePlan) -> None:
        """A device refused bridged reads: it is read around its holes from now on."""
        self.health.holes(cfg.id, sorted(str(h) for h in plan.holes), plan.refused)
        log.warning(
            "device refuses registers; read plan adapted",
            extra={
                "epc_fields": {
                    "device": cfg.id,
                    "bus": self.bus_id,
                    "holes": [str(h) for h in sorted(plan.holes)],
                    "refused_points": list(plan.refused),
                    "reads": len(plan.reads),
                }
            },
        )
        if self.on_learned is not None:
            self.on_learned(cfg, plan)

    async def _poll(self, d: DeviceRuntime) -> None:
        cfg = d.config
        try:
            groups = due_groups(d.plan.poll_groups(), d.group_due, self.clock.now())
            if not groups:  # every group has an interval of its own and none is due yet
                d.due = next_slot(self.clock.now(), cfg.poll_interval_s)
                return
            names = {g.name for g in groups}

            def plan_for(p: DevicePlan) -> DevicePlan:
                return _subplan(p, tuple(g for g in p.poll_groups() if g.name in names) or p.poll_groups())

            outcome, plan = await poll_learning(
                self.transport, d.plan, cfg.target(), cfg.timeout_s, cfg.retries, plan_for=plan_for
            )
            if plan is not d.plan:
                d.plan = plan
                self._learned(cfg, plan)
            now = self.clock.now()
            self.health.bad_answers(cfg.id, outcome.frame_errors, outcome.error_replies)
            if outcome.ok:
                d.failures = 0
                for g in groups:
                    if g.interval is not None:
                        # on the group's own grid, but never more often than the device is polled
                        d.group_due[g.name] = next_slot(now, max(g.interval, cfg.poll_interval_s))
                ts = int(now * 1000)
                self.health.poll_ok(cfg.id, outcome.latency_s, ts, outcome.error)
                res = self.sink(NewReading(cfg.id, ts, outcome.values, outcome.quality))
                if res is not None:
                    await res
            else:
                d.failures += 1
                self.health.poll_failed(cfg.id, outcome.latency_s, outcome.error or "no values")
                if d.failures in (1, 10) or d.failures % 100 == 0:
                    log.warning(
                        "poll failed",
                        extra={
                            "epc_fields": {
                                "device": cfg.id,
                                "bus": self.bus_id,
                                "failures": d.failures,
                                "error": outcome.error,
                            }
                        },
                    )
            d.due = next_due(now, cfg.poll_interval_s, d.failures, cfg.backoff_max_s)
        except Exception:  # keep the bus alive whatever one device does
            log.exception("poll crashed", extra={"epc_fields": {"device": cfg.id, "bus": self.bus_id}})
            d.failures += 1
            d.due = next_due(self.clock.now(), cfg.poll_interval_s, d.failures, cfg.backoff_max_s)
        finally:
            d.task = None
            self._running -= 1
            if self._running == 0:
                self.idle.set()
            # the scheduler re-plans only if this device is due before it means to wake anyway
            # (re-planning after every poll would cost O(devices) per poll, O(devices²) a cycle)
            if d.due < self._wake_at:
                self._changed.set()

    def next_wake(self) -> float:
        idle = [d.due for d in self.devices if d.task is None]
        return min(idle) if idle else math.inf

    async def run(self) -> None:
        """Poll until cancelled."""
        try:
            while True:
                self._changed.clear()
                self.tick()
                wake = self._wake_at = self.next_wake()
                if wake == math.inf:  # every device is polling: wait for one to finish
                    await self._changed.wait()
                    continue
                delay = wake - self.clock.now()
                if delay <= 0:
                    await asyncio.sleep(0)
                    continue
                sleeper = asyncio.ensure_future(self.clock.sleep(min(delay, 3600.0)))
                changed = asyncio.ensure_future(self._changed.wait())
                try:
                    await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for f in (sleeper, changed):
                        f.cancel()
        finally:
            tasks = [d.task for d in self.devices if d.task is not None]
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
