"""The collector's write path: messages in, points written, dead letters published, acks out.

Independent of paho: the consumer hands :class:`Inbound` messages to :meth:`Pipeline.add` and
the pipeline talks back through the :class:`Broker` interface (acks and dead letters), so the
whole policy is tested with fakes as well as end to end.

The guarantee (DESIGN "Delivery guarantees", 3 and 4): a message is acked only after every point
of it is written, or after it is dead-lettered with a reason and the broker has confirmed the
dead letter. Acks go out in the order the messages came in (MQTT requires PUBACKs in order).
Writes are retried forever on transient errors with capped exponential backoff (honouring
Retry-After); meanwhile nothing is acked and the broker keeps the messages. A batch the server
partly refuses (400) is resolved: the refused lines are identified from the server's message
(or by bisecting the batch when it names none), their messages dead-lettered, and the rest
written again — harmless, because a rewrite of the same series and timestamp overwrites.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from epcwatch import logs, topics
from epcwatch.backoff import backoff_delay, jittered
from epcwatch.collector import fastpath, partial
from epcwatch.collector.errors import (
    RejectedWriteError,
    StoppedError,
    TooLargeError,
    TransientWriteError,
)
from epcwatch.collector.health import HealthReporter, Stats, agent_health_lines, status_lines
from epcwatch.collector.lineprotocol import LineProtocolError, body, telemetry_lines
from epcwatch.collector.validate import Reason, Rejection, validate
from epcwatch.collector.writers import Writer
from epcwatch.wire import DeadLetter, HealthMessage, TelemetryMessage

log = logging.getLogger("epcwatch.collector")


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message as received: packet id, QoS and connection generation are for the ack."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int
    gen: int = 0
    dup: bool = False


class Broker(Protocol):
    def ack(self, items: Sequence[Inbound]) -> None:
        """Acknowledge ``items`` in order (skipping those of an earlier connection)."""
        ...

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Publish dead letters and return once the broker confirmed them; raise otherwise."""
        ...


@dataclass(frozen=True, slots=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 300.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        # jitter: collectors must not retry in lockstep
        return jittered(backoff_delay(attempt + 1, self.initial_s, self.max_s))


@dataclass
class _Batch:
    items: list[Inbound] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    #: owner[i] = index into items of line i, or -1 (the collector's own health)
    owners: list[int] = field(default_factory=list)
    rejections: dict[int, str] = field(default_factory=dict)
    first_t: float | None = None
    max_ts: int = 0


#: a batch closed for writing (opaque to callers)
Sealed = _Batch


class Pipeline:
    def __init__(
        self,
        writer: Writer,
        broker: Broker,
        *,
        group: str,
        collector: str,
        max_points: int = 10_000,
        max_wait_s: float = 1.0,
        max_payload_bytes: int = 262_144,
        backoff: Backoff = Backoff(),
        stats: Stats | None = None,
        health_interval_s: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.writer = writer
        self.broker = broker
        self.group = group
        self.collector = collector
        self.max_points = max_points
        self.max_wait_s = max_wait_s
        self.max_payload_bytes = max_payload_bytes
        self.backoff = backoff
        self.stats = stats or Stats()
        self.health = HealthReporter(self.stats, collector, group, health_interval_s)
        self.monotonic = monotonic
        self.wall = wall
        #: sleeps; returns True when the collector is stopping (threading.Event.wait)
        self.wait = wait or _sleep
        self._batch = _Batch()

    # -- intake -------------------------------------------------------------------------------
    def add(self, item: Inbound) -> None:
        """Parse one message into the current batch (never raises on input)."""
        b = self._batch
        idx = len(b.items)
        b.items.append(item)
        if b.first_t is None:
            b.first_t = self.monotonic()
        try:
            lines, max_ts = self._parse(item)
        except _RejectError as rej:
            b.rejections[idx] = str(rej.rejection)
            return
        b.lines.extend(lines)
        b.owners.extend([idx] * len(lines))
        b.max_ts = max(b.max_ts, max_ts)

    def _parse(self, item: Inbound) -> tuple[list[str], int]:
        payload = item.payload
        if len(payload) <= self.max_payload_bytes:
            parts = item.topic.split("/")
            # the fast path handles well-formed telemetry; anything else goes to pydantic
            if len(parts) == 5 and parts[4] == "telemetry" and parts[0] == "epc" and parts[1] == "v1":
                try:
                    t = topics.parse(item.topic)
                except topics.TopicError:
                    t = None
                if t is not None and t.device is not None:
                    try:
                        fast = fastpath.telemetry(t.site, t.device, payload)
                    except Exception:  # a bug in the fast path must not crash on input
                        log.exception("fast path failed; using the model")
                        fast = None
                    if fast is not None:
                        return fast.lines, fast.max_ts
        result = validate(item.topic, payload, self.max_payload_bytes)
        if isinstance(result, Rejection):
            raise _RejectError(result)
        try:
            if isinstance(result, TelemetryMessage):
                return telemetry_lines(result), max(r.ts for r in result.readings)
            if isinstance(result, HealthMessage):
                return agent_health_lines(result), 0
            return status_lines(result, item.received_ms), 0
        except LineProtocolError as exc:  # pragma: no cover - validation prevents it
            raise _RejectError(Rejection(Reason.UNWRITABLE, str(exc))) from None

    # -- flushing -----------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        return len(self._batch.items)

    def full(self) -> bool:
        return len(self._batch.lines) >= self.max_points

    def due(self) -> bool:
        b = self._batch
        if len(b.lines) >= self.max_points:
            return True
        if b.first_t is not None and self.monotonic() - b.first_t >= self.max_wait_s:
            return True
        return self.health.due(self.monotonic())

    def flush(self) -> None:
        """Seal the batch and commit it on the caller's thread (see :meth:`commit`)."""
        self.commit(self.seal())

    def seal(self) -> Sealed:
        """Close the current batch (adding the collector's health point when due) and start a new
        one. The sealed batch goes to :meth:`commit`, possibly on another thread, so parsing the
        next batch overlaps writing this one."""
        b = self._batch
        self._batch = _Batch()
        mono = self.monotonic()
        if self.health.due(mono):
            line = self.health.line(self.wall(), mono)
            if line:
                b.lines.append(line)
                b.owners.append(-1)
        return b

    def commit(self, b: Sealed, writer: Writer | None = None) -> None:
        """:meth:`write` then :meth:`finish` a sealed batch on the caller's thread."""
        self.finish(b, self.write(b, writer))

    def write(self, b: Sealed, writer: Writer | None = None) -> dict[int, str]:
        """Write a sealed batch (retrying, resolving partial writes) through ``writer`` (default:
        the pipeline's); returns the refused lines. Batches may be written concurrently through
        different writers, since a rewrite of the same point is harmless.

        Raises :class:`StoppedError` when the collector stops before the batch is written: then
        nothing of it is acked and the broker redelivers it to the next collector session.
        """
        return self._write_resolving(b.lines, writer or self.writer) if b.lines else {}

    def finish(self, b: Sealed, refused: dict[int, str]) -> None:
        """Dead-letter what cannot be stored, then ack every message of the batch in order.
        Batches must be finished in the order they were sealed (MQTT wants PUBACKs in order)."""
        if refused:
            for i, reason in refused.items():
                owner = b.owners[i]
                if owner < 0:
                    log.warning("collector health point refused", extra=logs.fields(reason=reason))
                    continue
                prev = b.rejections.get(owner)
                msg = f"{Reason.REJECTED_BY_DATABASE.value}: {reason}"
                b.rejections[owner] = msg if prev is None else prev
        if b.rejections:
            now_ms = int(self.wall() * 1000)
            letters = [
                DeadLetter(
                    topic=b.items[i].topic,
                    reason=reason,
                    received_ts=b.items[i].received_ms or now_ms,
                    payload_b64=base64.b64encode(b.items[i].payload).decode("ascii"),
                    collector=self.collector,
                )
                for i, reason in sorted(b.rejections.items())
            ]
            self.broker.dead_letter(letters)
            for letter in letters[:5]:
                log.info("dead letter", extra=logs.fields(topic=letter.topic, reason=letter.reason[:300]))
        if b.items:
            self.broker.ack(b.items)
        written = sum(1 for i, o in enumerate(b.owners) if o >= 0 and i not in refused)
        self.stats.add(messages=len(b.items), points=written, dead_letters=len(b.rejections))
        if b.max_ts:
            self.stats.set_lag(self.wall() * 1000 - b.max_ts)

    # -- writing ------------------------------------------------------------------------------
    def _write_retrying(self, lines: Sequence[str], writer: Writer) -> None:
        data = body(lines)
        attempt = 0
        while True:
            t0 = self.monotonic()
            try:
                writer.write(data)
            except TransientWriteError as exc:
                self.stats.write_failed()
                delay = self.backoff.delay(attempt, exc.retry_after)
                if attempt == 0 or attempt % 10 == 0:
                    log.warning(
                        "write failed, retrying",
                        extra=logs.fields(error=str(exc)[:300], attempt=attempt + 1, delay_s=round(delay, 2)),
                    )
                attempt += 1
                if self.wait(delay):
                    raise StoppedError("stopping while a write was being retried") from None
                continue
            self.stats.write_done(self.monotonic() - t0)
            if attempt:
                log.info("write succeeded after retries", extra=logs.fields(attempts=attempt + 1))
            return

    def _write_resolving(self, lines: list[str], writer: Writer) -> dict[int, str]:
        """Write ``lines``; returns ``{line index: reason}`` of the lines the server refused."""
        refused: dict[int, str] = {}
        work = [list(range(len(lines)))]
        while work:
            idx = work.pop()
            try:
                self._write_retrying([lines[i] for i in idx], writer)
            except TooLargeError as exc:
                if len(idx) == 1:
                    refused[idx[0]] = str(exc)
                else:
                    work += [idx[len(idx) // 2 :], idx[: len(idx) // 2]]
            except RejectedWriteError as exc:
                message = str(exc)
                named = partial.identify(message, [lines[i] for i in idx])
                if named:
                    for p in named:
                        refused[idx[p]] = message[:1000]
                    rest = [i for p, i in enumerate(idx) if p not in named]
                    if rest:
                        work.append(rest)
                elif len(idx) == 1:
                    refused[idx[0]] = message[:1000]
                else:
                    work += [idx[len(idx) // 2 :], idx[: len(idx) // 2]]
        return refused


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class _RejectError(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(str(rejection))
        self.rejection = rejection
