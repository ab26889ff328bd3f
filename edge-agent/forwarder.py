"""Store-and-forward: moves readings from the outbox to the broker and deletes them on PUBACK.

Rows are handed to the publisher strictly in outbox order, grouped per device into messages
of up to ``max_readings_per_message`` readings (so a backlog drains many readings per message,
far faster than the live rate), with at most ``max_inflight`` messages awaiting PUBACK.
A row is deleted only after a PUBACK whose reason code is below 0x80 and is not 0x10 "no
matching subscribers" (the broker stored the message for nobody; see below); deletions are batched
(a crash before the delete only means a harmless re-delivery). A rejected PUBACK stops the
dispatch, waits until nothing is in flight, and restarts from the oldest row after a capped
backoff, so the per-device order still holds.

All outbox calls run on one dedicated thread (``executor``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

import orjson

from epcwatch import logs, topics
from epcwatch.backoff import backoff_delay
from epcwatch.edge.batching import Batch, batch_rows, envelope_prefix, message_body
from epcwatch.edge.errors import OutboxError, PublishError
from epcwatch.edge.outbox import Outbox
from epcwatch.wire import DeviceKind, DeviceTags

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
        self._prefix = {
            d: envelope_prefix(site, d, info.kind, orjson.dumps(info.tags.model_dump(exclude_none=True)))
            for d, info in devices.items()
        }
        self._topic = {d: topics.telemetry(site, d) for d in devices}
        self._in_flight: dict[int, list[int]] = {}  # mid → row ids
        self._sent: set[int] = set()  # row ids in flight or acked but not yet deleted
        self._to_delete: list[int] = []
        self._cursor = 0
        self._wake = asyncio.Event()
        self._rejected = False
        self._rejections = 0
        self.published_messages = 0
        self.published_readings = 0

    # -- signals from the rest of the agent ---------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def on_ack(self, mid: int, reason: int) -> None:
        """Called on the loop thread for every PUBACK (and for unrelated publishes: ignored)."""
        ids = self._in_flight.pop(mid, None)
        if ids is None:
            return
        if reason < SUCCESS_LIMIT and reason != NO_MATCHING_SUBSCRIBERS:
            self._to_delete.extend(ids)
            self.published_messages += 1
            self.published_readings += len(ids)
            self._rejections = 0
        else:
            # not stored by the broker: keep the rows, resend from the oldest once in-flight drains
            self._sent.difference_update(ids)
            self._rejected = True
            self._rejections += 1
            if reason == NO_MATCHING_SUBSCRIBERS:
                log.warning("no subscriber; readings kept for retry", extra=logs.fields(readings=len(ids)))
            else:
                log.error("publish rejected", extra=logs.fields(reason=hex(reason), readings=len(ids)))
        self._wake.set()

    def in_flight(self) -> int:
        return len(self._in_flight)

    # -- the loop -----------------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def flush_deletes(self) -> None:
        if not self._to_delete:
            return
        ids, self._to_delete = self._to_delete, []
        await self._call(self.outbox.delete, ids)
        self._sent.difference_update(ids)

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except (OutboxError, PublishError) as exc:
                log.error("forwarding failed", extra=logs.fields(error=str(exc)))
                await asyncio.sleep(1.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=0.25)
            self._wake.clear()

    async def step(self) -> int:
        """Delete what was acknowledged, then dispatch as much as the window allows; returns the
        number of messages handed to the publisher."""
        await self.flush_deletes()
        if self._rejected:
            if self._in_flight:
                return 0
            delay = backoff_delay(self._rejections + 1, self.retry_min_s, self.retry_max_s)
            await asyncio.sleep(delay)
            self._rejected = False
            self._cursor = 0
        if not self.publisher.connected:
            return 0
        room = self.max_inflight - len(self._in_flight)
        if room <= 0:
            return 0
        rows = await self._call(self.outbox.fetch, self._cursor, max(1000, room * self.max_readings * 2))
        fresh = [r for r in rows if r.id not in self._sent]
        batches = batch_rows(fresh, self.max_readings, self.max_bytes)
        sent = 0
        for b in batches:
            if sent >= room or not self.publisher.connected:
                break
            self._dispatch(b)
            sent += 1
        # advance the cursor over the prefix of rows that are all handed over
        for r in rows:
            if r.id not in self._sent:
                break
            self._cursor = r.id
        return sent

    def _dispatch(self, b: Batch) -> None:
        prefix = self._prefix.get(b.device)
        if prefix is None:  # a device removed from the config since its readings were stored
            prefix = envelope_prefix(self.site, b.device, "meter", b"{}")
            self._prefix[b.device] = prefix
            self._topic[b.device] = topics.telemetry(self.site, b.device)
            log.warning("device not in config, forwarding as kind meter", extra=logs.fields(device=b.device))
        payload = message_body(prefix, b.rows)
        mid = self.publisher.publish(self._topic[b.device], payload, qos=1)
        ids = b.ids
        self._in_flight[mid] = ids
        self._sent.update(ids)
