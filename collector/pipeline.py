"""The collector's write path: messages in, points written, dead letters published, acks out.

Independent of the connection: the consumer hands :class:`Inbound` messages to :meth:`Pipeline.add` and
the pipeline talks back through the :class:`Broker` interface (acks and dead letters), so the
whole policy is tested with fakes as well as end to end.

The guarantee (DESIGN "Delivery guarantees", 2 to 4): a message is acked only after every point
of it is written, or after it is dead-lettered with a reason: the dead letter written to
InfluxDB (``dead_letter`` measurement, :mod:`epcwatch.collector.deadletters`) and confirmed by
the broker on the dead-letter topic. Then two acknowledgements leave, in this order:

- the end-to-end one (:class:`~epcwatch.wire.Ack` on ``epc/v1/{site}/ack``): per site, one
  message per batch with each device's stored seq ranges, coalesced. The edge deletes readings
  from its outbox only on it. It is published at QoS 1 without waiting: if it is lost (a broker
  crash), the edge sends the readings again and they are stored again, harmlessly;
- the MQTT PUBACK of every message, in the order the messages came in (MQTT requires it).
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
from epcwatch.collector import deadletters, fastpath, partial, proofs
from epcwatch.collector.errors import (
    RejectedWriteError,
    StoppedError,
    TooLargeError,
    TransientWriteError,
)
from epcwatch.collector.health import HealthReporter, Stats, agent_health_lines, status_lines
from epcwatch.collector.intervals import IntervalBook, Snapshot
from epcwatch.collector.lineprotocol import (
    LineProtocolError,
    body,
    device_tags,
    site_telemetry_lines,
    telemetry_lines,
)
from epcwatch.collector.validate import Reason, Rejection, validate
from epcwatch.collector.writers import Writer
from epcwatch.provenance import ChainReading, Keyring
from epcwatch.wire import Ack, DeadLetter, HealthMessage, SiteTelemetryMessage, TelemetryMessage, coalesce

log = logging.getLogger("epcwatch.collector")

#: the (site, device, seq ranges) a message carries, one per device, for the end-to-end ack
Seqs = list[tuple[str, str, list[tuple[int, int]]]]


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

    def confirm(self, acks: Sequence[Ack]) -> None:
        """Publish end-to-end acknowledgements (QoS 1) to the sites; need not wait for PUBACK."""
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
    #: items index → (site, device, seq ranges) the message carries, for the end-to-end ack
    seqs: dict[int, Seqs] = field(default_factory=dict)
    #: dead letters of this batch, built (and written to InfluxDB) by Pipeline.write
    letters: list[DeadLetter] | None = None
    #: the dead letters are in InfluxDB
    letters_stored: bool = False
    first_t: float | None = None
    max_ts: int = 0
    #: interval state changes accounted for by this batch (stored before its acks)
    snapshot: Snapshot | None = None


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
        keyring: Keyring | None = None,
        intervals: IntervalBook | None = None,
        store_intervals: Callable[[Snapshot], None] | None = None,
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
        #: interval energy at ingest (None: off), and where its state goes before acks
        self.intervals = intervals
        self.store_intervals = store_intervals
        self._batch = _Batch()
        #: signed messages are checked against it on the way in (None: stored unchecked)
        self.keyring = keyring
        self._proof_ms: dict[tuple[str, str], int] = {}  # last provenance point time per device
        #: per device, the newest signed range seen: its last seq and chain head
        self._heads: dict[tuple[str, str], tuple[int, bytes]] = {}
        #: (site, device, first missing seq, last missing seq) of every chain gap seen
        self.chain_gaps: list[tuple[str, str, int, int]] = []

    # -- intake -------------------------------------------------------------------------------
    def add(self, item: Inbound) -> None:
        """Parse one message into the current batch (never raises on input)."""
        b = self._batch
        idx = len(b.items)
        b.items.append(item)
        if b.first_t is None:
            b.first_t = self.monotonic()
        try:
            lines, max_ts, seqs, blocks = self._parse(item)
        except _RejectError as rej:
            b.rejections[idx] = str(rej.rejection)
            claimed = deadletters.claimed_seqs(item.topic, item.payload)
            if claimed:
                b.seqs[idx] = claimed
            return
        if seqs is not None:
            b.seqs[idx] = seqs
        if self.intervals is not None:
            add = self.intervals.add_block
            for kind, tags, readings, signed, ident in blocks:
                add(kind, tags, readings, linked=signed, ident=ident)
        b.lines.extend(lines)
        b.owners.extend([idx] * len(lines))
        b.max_ts = max(b.max_ts, max_ts)

    def _parse(self, item: Inbound) -> tuple[list[str], int, Seqs | None, list[fastpath.Block]]:
        payload = item.payload
        if len(payload) <= self.max_payload_bytes:
            # the fast path handles well-formed telemetry; anything else goes to pydantic
            t = _telemetry_topic(item.topic)
            if t is not None:
                try:
                    if t.channel == "site_telemetry":
                        fast = fastpath.site_telemetry(t.site, payload)
                    elif t.device is not None:
                        fast = fastpath.telemetry(t.site, t.device, payload)
                    else:  # pragma: no cover - parse gives a device for telemetry
                        fast = None
                except Exception:  # a bug in the fast path must not crash on input
                    log.exception("fast path failed; using the model")
                    fast = None
                if fast is not None:
                    seqs = [(t.site, d, r) for d, r in fast.device_ranges]
                    lines = fast.lines
                    if fast.signed:
                        lines += self._proofs(item, t.site, _fast_signed(fast.signed))
                    return lines, fast.max_ts, seqs, fast.blocks
        result = validate(item.topic, payload, self.max_payload_bytes)
        if isinstance(result, Rejection):
            raise _RejectError(result)
        try:
            if isinstance(result, TelemetryMessage):
                seqs = [(result.site, result.device, coalesce((r.seq, r.seq) for r in result.readings))]
                newest = max(r.ts for r in result.readings)
                if result.proof is not None:
                    lines = proofs.reading_lines(result) + self._proofs(item, result.site, _signed([result]))
                    return lines, newest, seqs, _blocks([result])
                return telemetry_lines(result), newest, seqs, _blocks([result])
            if isinstance(result, SiteTelemetryMessage):
                msgs = result.blocks()
                newest = max(r.ts for m in msgs for r in m.readings)
                seqs = [(m.site, m.device, coalesce((r.seq, r.seq) for r in m.readings)) for m in msgs]
                signed = _signed(msgs)
                if not signed:
                    return site_telemetry_lines(result), newest, seqs, _blocks(msgs)
                lines = [
                    line
                    for m in msgs
                    for line in (proofs.reading_lines(m) if m.proof is not None else telemetry_lines(m))
                ]
                return lines + self._proofs(item, result.site, signed), newest, seqs, _blocks(msgs)
            if isinstance(result, HealthMessage):
                return agent_health_lines(result), 0, None, []
            return status_lines(result, item.received_ms), 0, None, []
        except LineProtocolError as exc:  # pragma: no cover - validation prevents it
            raise _RejectError(Rejection(Reason.UNWRITABLE, str(exc))) from None

    def _proofs(self, item: Inbound, site: str, signed: list[_SignedBlock]) -> list[str]:
        """Check the proof of every signed device of one message (keyring, signature, link to the
        device's chain) and return their ``provenance`` points; one failure refuses the whole
        message (dead letter ``provenance: <why>``), and nothing of it is remembered."""
        checked = []
        for device, readings, (kid, first_prev, sig_b64) in signed:
            try:
                sr, sig = proofs.check_range(site, device, readings, kid, first_prev, sig_b64, self.keyring)
            except proofs.ProofError as exc:
                raise _RejectError(Rejection(Reason.PROVENANCE, str(exc))) from None
            seen = self._heads.get((site, device))
            if seen is not None and sr.first_seq == seen[0] + 1 and sr.first_prev != seen[1]:
                raise _RejectError(
                    Rejection(
                        Reason.PROVENANCE, f"broken link: seq {sr.first_seq} does not follow seq {seen[0]}"
                    )
                )
            checked.append((sr, sig, kid, readings[-1].ts))
        lines = []
        for sr, sig, kid, last_ts in checked:
            dev = (site, sr.device)
            seen = self._heads.get(dev)
            if seen is not None and sr.first_seq > seen[0] + 1:
                # readings lost before they were sent (e.g. the edge's outbox full): stored data
                # shows the gap to the verifier too; here it is logged as it happens
                self.chain_gaps.append((site, sr.device, seen[0] + 1, sr.first_seq - 1))
                log.warning(
                    "chain gap",
                    extra=logs.fields(site=site, device=sr.device, first=seen[0] + 1, last=sr.first_seq - 1),
                )
            if seen is None or sr.last_seq > seen[0]:
                self._heads[dev] = (sr.last_seq, sr.head)
            # one provenance point per message received, at its receive time, made unique per
            # device (ms precision): a replayed message becomes a second point the verifier reports
            at = max(item.received_ms, self._proof_ms.get(dev, 0) + 1)
            self._proof_ms[dev] = at
            lines.append(proofs.provenance_line(sr, sig, kid, last_ts, at))
        return lines

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

    def seal(self, final: bool = False) -> Sealed:
        """Close the current batch (adding the collector's health point when due) and start a new
        one. The sealed batch goes to :meth:`commit`, possibly on another thread, so parsing the
        next batch overlaps writing this one. ``final``: the collector stops, every open interval
        goes out with it."""
        b = self._batch
        self._batch = _Batch()
        mono = self.monotonic()
        if self.health.due(mono):
            line = self.health.line(self.wall(), mono)
            if line:
                b.lines.append(line)
                b.owners.append(-1)
        if self.intervals is not None:
            lines, b.snapshot = self.intervals.flush() if final else self.intervals.take(mono)
            b.lines.extend(lines)
            b.owners.extend([-1] * len(lines))
        return b

    def commit(self, b: Sealed, writer: Writer | None = None) -> None:
        """:meth:`write` then :meth:`finish` a sealed batch on the caller's thread."""
        self.finish(b, self.write(b, writer))

    def write(self, b: Sealed, writer: Writer | None = None) -> dict[int, str]:
        """Write a sealed batch (retrying, resolving partial writes) through ``writer`` (default:
        the pipeline's), then its dead letters; returns the refused lines. Batches may be written
        concurrently through different writers, since a rewrite of the same point is harmless.

        Raises :class:`StoppedError` when the collector stops before the batch is written: then
        nothing of it is acked and the broker redelivers it to the next collector session.
        """
        w = writer or self.writer
        refused = self._write_resolving(b.lines, w) if b.lines else {}
        self._dead_letters(b, refused)
        if b.letters:
            self._store_dead_letters(b, w)
        return refused

    def _dead_letters(self, b: Sealed, refused: dict[int, str]) -> None:
        """Turn parse rejections and refused lines into the batch's dead letters."""
        if b.letters is not None:
            return
        for i, reason in refused.items():
            owner = b.owners[i]
            if owner < 0:
                log.warning("collector health point refused", extra=logs.fields(reason=reason))
                continue
            if owner not in b.rejections:
                b.rejections[owner] = f"{Reason.REJECTED_BY_DATABASE.value}: {reason}"
        now_ms = int(self.wall() * 1000)
        b.letters = [
            DeadLetter(
                topic=b.items[i].topic,
                reason=reason,
                received_ts=b.items[i].received_ms or now_ms,
                payload_b64=base64.b64encode(b.items[i].payload).decode("ascii"),
                collector=self.collector,
            )
            for i, reason in sorted(b.rejections.items())
        ]

    def _store_dead_letters(self, b: Sealed, writer: Writer) -> None:
        """Write the batch's dead letters to InfluxDB (retrying like any write). Only once they are
        stored do their messages count as handled for the end-to-end acknowledgement."""
        lines = [
            deadletters.dead_letter_line(
                topic=b.items[i].topic,
                reason=reason,
                payload=b.items[i].payload,
                received_ms=b.items[i].received_ms or int(self.wall() * 1000),
                collector=self.collector,
            )
            for i, reason in sorted(b.rejections.items())
        ]
        refused = self._write_resolving(lines, writer)
        if refused:  # pragma: no cover - dead-letter points are plain strings and integers
            log.error("dead letters refused by the database", extra=logs.fields(count=len(refused)))
            return
        b.letters_stored = True

    def finish(self, b: Sealed, refused: dict[int, str]) -> None:
        """Publish the dead letters, the end-to-end acknowledgements and then ack every message of
        the batch in order. Batches must be finished in the order they were sealed (MQTT wants
        PUBACKs in order)."""
        self._dead_letters(b, refused)
        letters = b.letters or []
        if letters:
            self.broker.dead_letter(letters)
            for letter in letters[:5]:
                log.info("dead letter", extra=logs.fields(topic=letter.topic, reason=letter.reason[:300]))
        if b.snapshot and self.store_intervals is not None:
            self.store_intervals(b.snapshot)  # state of what is written, before the acks
        acks = self.acks(b)
        if acks:
            self.broker.confirm(acks)
        if b.items:
            self.broker.ack(b.items)
        # the messages' lines (owner -1: the collector's own) less those the database refused
        owners = b.owners
        written = len(owners) - owners.count(-1) - sum(1 for i in refused if owners[i] >= 0)
        self.stats.add(messages=len(b.items), points=written, dead_letters=len(b.rejections))
        if b.max_ts:
            self.stats.set_lag(self.wall() * 1000 - b.max_ts)

    def acks(self, b: Sealed) -> list[Ack]:
        """One acknowledgement per site: every device's seq ranges that are stored, coalesced (a
        dead-lettered message's only when its dead letter is in InfluxDB)."""
        per_site: dict[str, dict[str, list[tuple[int, int]]]] = {}
        for idx, carried in b.seqs.items():
            if idx in b.rejections and not b.letters_stored:
                continue
            for site, device, ranges in carried:
                per_site.setdefault(site, {}).setdefault(device, []).extend(ranges)
        return [
            Ack(site=site, devices={d: coalesce(r) for d, r in devices.items()}, collector=self.collector)
            for site, devices in per_site.items()
        ]

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
        work: list[Sequence[int]] = [range(len(lines))]  # ranges until a write names its lines
        while work:
            idx = work.pop()
            try:
                chunk = lines[idx.start : idx.stop] if isinstance(idx, range) else [lines[i] for i in idx]
                self._write_retrying(chunk, writer)
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


#: a signed device of a message: device, its readings as the chain covers them, its proof
_SignedBlock = tuple[str, list[ChainReading], tuple[str, str, str]]


def _signed(msgs: list[TelemetryMessage]) -> list[_SignedBlock]:
    return [
        (
            m.device,
            [ChainReading(r.seq, r.ts, r.values, r.quality) for r in m.readings],
            (m.proof.kid, m.proof.first_prev, m.proof.sig),
        )
        for m in msgs
        if m.proof is not None
    ]


def _fast_signed(signed: list[fastpath.Signed]) -> list[_SignedBlock]:
    """:func:`_signed` of the fast path's parsed documents."""
    return [
        (d, [ChainReading(r["seq"], r["ts"], r["values"], r.get("quality", "good")) for r in rs], proof)
        for d, rs, proof in signed
    ]


def _blocks(msgs: list[TelemetryMessage]) -> list[fastpath.Block]:
    return [
        (
            m.kind,
            device_tags(m),
            [{"seq": r.seq, "ts": r.ts, "values": r.values} for r in m.readings],
            m.proof is not None,
            None,
        )
        for m in msgs
    ]


#: telemetry topics seen → parsed (a site's few topics come with every message; bounded memo)
_TOPICS: dict[str, topics.ParsedTopic | None] = {}
_MAX_TOPICS = 100_000


def _telemetry_topic(topic: str) -> topics.ParsedTopic | None:
    """The parsed topic when it is a valid telemetry topic (a device's or a site's), else None."""
    try:
        return _TOPICS[topic]
    except KeyError:
        pass
    parts = topic.split("/")
    t = None
    if len(parts) == 5 and parts[4] == "telemetry" and parts[0] == "epc" and parts[1] == "v1":
        try:
            t = topics.parse(topic)
        except topics.TopicError:
            t = None
    if len(_TOPICS) >= _MAX_TOPICS:
        _TOPICS.clear()
    _TOPICS[topic] = t
    return t


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class _RejectError(Exception):
    def __init__(self, rejection: Rejection) -> None:
        super().__init__(str(rejection))
        self.rejection = rejection
