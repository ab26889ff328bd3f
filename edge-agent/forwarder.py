"""Store-and-forward: moves readings from the outbox to the broker and deletes them once a
collector acknowledged them end to end.

Rows are handed to the publisher strictly in outbox order. With ``wire=2`` (the agent's default)
consecutive rows of every device of the site go into one schema-2 site message of up to
``max_readings_per_message`` readings, so a poll cycle of a site is one message (``linger_s``
waits briefly for the cycle's last devices); with ``wire=1`` rows are grouped per device into
schema-1 messages. Either way a backlog
drains many readings per message, far faster than the live rate. Two windows bound what is out:

* ``max_inflight`` messages awaiting the broker's PUBACK. A PUBACK deletes nothing: it only
  moves the message from this window to the next;
* ``max_unacked`` messages published (PUBACK received, or still in flight) but not yet
  acknowledged end to end. This bounds what the broker ever holds for a site, whatever the
  outage: the rest waits in the outbox.

A row is deleted only when a collector's acknowledgement (:class:`~epcwatch.wire.Ack` on
``epc/v1/{site}/ack``) names its (device, seq): the reading is in InfluxDB or durably
dead-lettered. A message PUBACKed but not acknowledged within ``ack_timeout_s`` is published
again (the ack, or the message, was lost: a broker crash, an overflowing broker queue); the
timeout doubles while nothing is acknowledged at all, up to ``ack_timeout_max_s``, so a long
collector outage costs a re-send per window every few minutes, not a flood. Writes are
idempotent, so a repeat is harmless. After a restart nothing is known to be in flight and the
whole outbox is sent again.

A PUBACK whose reason code is 0x80 or more, or 0x10 "no matching subscribers" (the broker
stored the message for nobody; see below), stops the dispatch, waits until nothing is in
flight, and after a capped backoff sends again, in outbox order, *everything* not yet
acknowledged, also what followed the refused message: so from the refusal on, the collector
receives each device's readings in seq order again.

A signing site's messages carry a ``proof`` per device (on the schema-1 message, or on each
device block of a schema-2 message; docs/provenance.md): the Ed25519 signature of that device's
signed range, built from the chain links the outbox fixed at append time.

All outbox calls run on one dedicated thread (``executor``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import orjson

from epcwatch import logs, provenance, topics
from epcwatch.backoff import backoff_delay
from epcwatch.edge.batching import (
    Batch,
    SiteBatch,
    batch_rows,
    batch_site_rows,
    block_prefix,
    envelope_prefix,
    message_body,
    site_message_body,
)
from epcwatch.edge.errors import OutboxError, PublishError
from epcwatch.edge.outbox import Outbox
from epcwatch.wire import Ack, DeviceKind, DeviceTags

log = logging.getLogger("epcwatch.edge.forwarder")

T = TypeVar("T")

SUCCESS_LIMIT = 0x80  # MQTT 5: reason codes below 0x80 are successes ...
#: ... but 0x10 "no matching subscribers" means the broker dropped the message: nobody will get
#: it. Mosquitto 2.0 does not restore shared subscriptions from its persistence, so right after
#: a broker restart, until a collector re-subscribes, every publish is answered 0x10. Such rows
#: stay in the outbox and are retried like a rejected publish.
NO_MATCHING_SUBSCRIBERS = 0x10


class Uplink(Protocol):
    """What the forwarder needs of the MQTT publisher (``publisher.Publisher``)."""

    connected: bool

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int: ...


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    kind: DeviceKind
    tags: DeviceTags


@dataclass(slots=True)
class _Sent:
    """A published message not yet acknowledged end to end."""

    ids: set[int]
    mid: int
    #: monotonic time of the PUBACK; None while the message is in flight
    puback_at: float | None = None
    rows: int = 0


class Forwarder:
    def __init__(
        self,
        site: str,
        outbox: Outbox,
        publisher: Uplink,
        devices: dict[str, DeviceInfo],
        executor: ThreadPoolExecutor,
        *,
        max_inflight: int = 20,
        max_readings: int = 100,
        max_bytes: int = 256 * 1024,
        retry_min_s: float = 0.5,
        retry_max_s: float = 60.0,
        max_unacked: int = 100,
        ack_timeout_s: float = 60.0,
        ack_timeout_max_s: float = 900.0,
        monotonic: Callable[[], float] = time.monotonic,
        signing_key: provenance.Signer | None = None,
        wire: int = 1,
        linger_s: float = 0.0,
    ) -> None:
        self.site = site
        self.outbox = outbox
        self.publisher = publisher
        self.executor = executor
        self.max_inflight = max_inflight
        self.max_readings = max_readings
        self.max_bytes = max_bytes
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.max_unacked = max(max_unacked, max_inflight)
        self.ack_timeout_s = ack_timeout_s
        self.ack_timeout_max_s = max(ack_timeout_max_s, ack_timeout_s)
        self.monotonic = monotonic
        self.signing_key = signing_key
        self._kid = provenance.key_id(signing_key.public_key()) if signing_key is not None else ""
        self.wire = wire
        self.linger_s = linger_s
        self._linger_from: float | None = None
        self._site_topic = topics.site_telemetry(site)
        self._block = {
            d: block_prefix(d, info.kind, orjson.dumps(info.tags.model_dump(exclude_none=True)))
            for d, info in devices.items()
        }
        self._prefix = {
            d: envelope_prefix(site, d, info.kind, orjson.dumps(info.tags.model_dump(exclude_none=True)))
            for d, info in devices.items()
        }
        self._topic = {d: topics.telemetry(site, d) for d in devices}
        self._key = 0
        self._in_flight: dict[int, int] = {}  # mid → key of the message awaiting its PUBACK
        self._unacked: dict[int, _Sent] = {}  # key → message, in publish order
        self._row_key: dict[int, int] = {}  # row id → key of the message that carries it
        self._sent: set[int] = set()  # row ids handed over and not acknowledged end to end
        self._acks: list[tuple[str, int, int]] = []  # (device, first, last) to delete
        self._cursor = 0
        self._wake = asyncio.Event()
        self._rejected = False
        self._rejections = 0
        self._resends = 0  # consecutive ack timeouts without any acknowledgement
        self.published_messages = 0
        self.published_readings = 0
        self.acked_readings = 0
        self.resent_messages = 0

    # -- signals from the rest of the agent ---------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def on_ack(self, mid: int, reason: int) -> None:
        """Called on the loop thread for every PUBACK (and for unrelated publishes: ignored)."""
        key = self._in_flight.pop(mid, None)
        if key is None:
            return
        msg = self._unacked.get(key)
        if msg is None:  # acknowledged end to end before its PUBACK came back
            self._wake.set()
            return
        if reason < SUCCESS_LIMIT and reason != NO_MATCHING_SUBSCRIBERS:
            msg.puback_at = self.monotonic()
            self.published_messages += 1
            self.published_readings += msg.rows
            self._rejections = 0
        else:
            # not stored by the broker: keep the rows, resend from the oldest once in-flight drains
            self._forget(key)
            self._rejected = True
            self._rejections += 1
            if reason == NO_MATCHING_SUBSCRIBERS:
                log.warning("no subscriber; readings kept for retry", extra=logs.fields(readings=msg.rows))
            else:
                log.error("publish rejected", extra=logs.fields(reason=hex(reason), readings=msg.rows))
        self._wake.set()

    def on_e2e_ack(self, payload: bytes) -> None:
        """Called on the loop thread with the payload of a message on the site's ack topic."""
        try:
            ack = Ack.model_validate_json(payload)
        except ValueError as exc:
            log.warning("invalid acknowledgement ignored", extra=logs.fields(error=str(exc)[:300]))
            return
        if ack.site != self.site:
            log.warning("acknowledgement for another site ignored", extra=logs.fields(site=ack.site))
            return
        for device, ranges in ack.devices.items():
            self._acks.extend((device, first, last) for first, last in ranges)
        self._wake.set()

    async def wait_woken(self) -> None:
        """Until the next PUBACK, acknowledgement or new reading."""
        await self._wake.wait()
        self._wake.clear()

    def in_flight(self) -> int:
        return len(self._in_flight)

    def unacked(self) -> int:
        """Readings handed to the broker and not yet acknowledged end to end."""
        return len(self._sent)

    def _forget(self, key: int) -> None:
        """Drop a message's bookkeeping: its rows become sendable again (they stay in the outbox)."""
        msg = self._unacked.pop(key, None)
        if msg is None:
            return
        for rid in msg.ids:
            self._row_key.pop(rid, None)
        self._sent.difference_update(msg.ids)
        if msg.ids:
            self._cursor = min(self._cursor, min(msg.ids) - 1)

    def _acked(self, ids: list[int]) -> None:
        """Rows deleted on an end-to-end acknowledgement: they are done."""
        for rid in ids:
            self._sent.discard(rid)
            key = self._row_key.pop(rid, None)
            if key is None:
                continue
            msg = self._unacked.get(key)
            if msg is None:
                continue
            msg.ids.discard(rid)
            if not msg.ids:
                del self._unacked[key]
        if ids:
            self.acked_readings += len(ids)
            self._resends = 0

    def _timeout(self) -> float:
        return min(self.ack_timeout_max_s, self.ack_timeout_s * 2.0 ** min(self._resends, 30))

    def _expire(self) -> int:
        """Make PUBACKed messages that waited too long for their acknowledgement sendable again."""
        now = self.monotonic()
        limit = self._timeout()
        expired = [
            k for k, m in self._unacked.items() if m.puback_at is not None and now - m.puback_at >= limit
        ]
        for k in expired:
            self._forget(k)
        if expired:
            self._resends += 1
            self.resent_messages += len(expired)
            log.warning(
                "not acknowledged in time; sending again",
                extra=logs.fields(messages=len(expired), timeout_s=round(limit, 1)),
            )
        return len(expired)

    # -- the loop -----------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def flush_deletes(self) -> None:
        """Delete what was acknowledged end to end."""
        if self._acks:
            ranges, self._acks = self._acks, []
            self._acked(await self._call(self.outbox.delete_acked, ranges))
        elif self.outbox.flush_due():  # acknowledged rows no append deleted (nothing polled)
            await self._call(self.outbox.flush, False)

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except (OutboxError, PublishError) as exc:
                log.error("forwarding failed", extra=logs.fields(error=str(exc)))
                await asyncio.sleep(1.0)
            # asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for swallows a cancel
            # that arrives just as the awaited event fires, and this loop would never stop
            try:
                async with asyncio.timeout(0.25):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def step(self) -> int:
        """Delete what was acknowledged, then dispatch as much as the windows allow; returns the
        number of messages handed to the publisher."""
        await self.flush_deletes()
        if self._rejected:
            if self._in_flight:
                return 0
            delay = backoff_delay(self._rejections + 1, self.retry_min_s, self.retry_max_s)
            await asyncio.sleep(delay)
            self._rejected = False
            # send again everything not acknowledged, in outbox order (see the module docstring)
            for key in list(self._unacked):
                self._forget(key)
            self._cursor = 0
        self._expire()
        if not self.publisher.connected:
            return 0
        room = min(self.max_inflight - len(self._in_flight), self.max_unacked - len(self._unacked))
        if room <= 0:
            return 0
        rows = await self._call(self.outbox.fetch, self._cursor, max(1000, room * self.max_readings * 2))
        fresh = [r for r in rows if r.id not in self._sent]
        if self._lingering(len(fresh)):
            return 0
        batches: list[Batch] | list[SiteBatch]
        if self.wire == 2:
            batches = batch_site_rows(fresh, self.max_readings, self.max_bytes)
        else:
            batches = batch_rows(fresh, self.max_readings, self.max_bytes)
        sent = 0
        for b in batches:
            if sent >= room or not self.publisher.connected:
                break
            if isinstance(b, SiteBatch):
                self._dispatch_site(b)
            else:
                self._dispatch(b)
            sent += 1
        # advance the cursor over the prefix of rows that are all handed over
        for r in rows:
            if r.id not in self._sent:
                break
            self._cursor = r.id
        return sent

    def _lingering(self, fresh: int) -> bool:
        """True while a partial message waits (at most ``linger_s``) for the rest of its cycle."""
        if not fresh or fresh >= self.max_readings or self.linger_s <= 0:
            self._linger_from = None
            return False
        now = self.monotonic()
        if self._linger_from is None:
            self._linger_from = now
        if now - self._linger_from < self.linger_s:
            return True
        self._linger_from = None
        return False

    def _dispatch_site(self, b: SiteBatch) -> None:
        for block in b.blocks:
            if block.device not in self._block:  # removed from the config since it was stored
                self._block[block.device] = block_prefix(block.device, "meter", b"{}")
                log.warning(
                    "device not in config, forwarding as kind meter", extra=logs.fields(device=block.device)
                )
        proofs = [self.proof(block) for block in b.blocks] if self.signing_key is not None else None
        payload = site_message_body(self.site, self._block, b, proofs)
        mid = self.publisher.publish(self._site_topic, payload, qos=1)
        self._track(mid, b.ids)

    def proof(self, b: Batch) -> bytes:
        """The ``proof`` object of a batch (JSON), or b"" when the site does not sign or a row
        has no chain link (stored before signing was turned on)."""
        if self.signing_key is None or any(r.chain is None for r in b.rows):
            return b""
        links = [r.chain for r in b.rows if r.chain is not None]
        sr = provenance.SignedRange(
            self.site, b.device, b.rows[0].seq, b.rows[-1].seq, links[0][:32], tuple(c[32:] for c in links)
        )
        sig = provenance.sign(self.signing_key, sr)
        return orjson.dumps(
            {
                "kid": self._kid,
                "first_prev": base64.b64encode(sr.first_prev).decode(),
                "sig": base64.b64encode(sig).decode(),
            }
        )

    def _dispatch(self, b: Batch) -> None:
        prefix = self._prefix.get(b.device)
        if prefix is None:  # a device removed from the config since its readings were stored
            prefix = envelope_prefix(self.site, b.device, "meter", b"{}")
            self._prefix[b.device] = prefix
            self._topic[b.device] = topics.telemetry(self.site, b.device)
            log.warning("device not in config, forwarding as kind meter", extra=logs.fields(device=b.device))
        payload = message_body(prefix, b.rows, self.proof(b))
        mid = self.publisher.publish(self._topic[b.device], payload, qos=1)
        self._track(mid, b.ids)

    def _track(self, mid: int, ids: list[int]) -> None:
        """Bookkeeping of a message handed to the publisher (either schema)."""
        self._key += 1
        self._unacked[self._key] = _Sent(set(ids), mid, rows=len(ids))
        self._in_flight[mid] = self._key
        for rid in ids:
            self._row_key[rid] = self._key
        self._sent.update(ids)
