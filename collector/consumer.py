"""The MQTT side: a persistent session, shared subscriptions and acks after the write.

The connection is :class:`epcwatch.collector.mqttlink.Link`: its thread reads the broker's
stream in large chunks and puts each message on the inbox as an :class:`Inbound`; the writer
thread (:mod:`epcwatch.collector.runner`) parses, writes and then acks. ``ack``,
``dead_letter`` and ``confirm`` only queue packets for the link's thread, so calling them from
the writer thread is safe.

What makes an ack safe: packet ids belong to one connection. Every (re)connect and every loss
starts a new *generation*; a message is acked only if it arrived in the current generation.
Messages of a lost connection are never acked: the broker redelivers them (persistent session)
and they are written again, harmlessly. The link checks the generation and queues the PUBACKs
under the lock under which a loss drops the queue, so no ack of an old packet id can reach a
new connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from epcwatch import logs, topics
from epcwatch.collector import mqttwire
from epcwatch.collector.errors import CollectorError
from epcwatch.collector.mqttlink import Link, LinkError
from epcwatch.collector.pipeline import Inbound
from epcwatch.collector.settings import Mqtt
from epcwatch.mqtt import MqttError
from epcwatch.wire import Ack, DeadLetter

log = logging.getLogger("epcwatch.collector.mqtt")


class BrokerError(CollectorError):
    """The broker cannot be reached or did not confirm a dead letter."""


def subscriptions(group: str) -> list[str]:
    """The shared subscriptions of a collector group (telemetry, agents' health and status)."""
    return [
        topics.shared_telemetry(group),
        f"$share/{group}/{topics.PREFIX}/+/health",
        f"$share/{group}/{topics.PREFIX}/+/status",
    ]


class Consumer:
    def __init__(
        self, settings: Mqtt, inbox: queue.SimpleQueue[Inbound], *, dead_letter_timeout_s: float = 60.0
    ):
        self.settings = settings
        self.inbox = inbox
        self.dead_letter_topic = topics.dead_letter(settings.group)
        self.dead_letter_timeout_s = dead_letter_timeout_s
        self._connected = threading.Event()
        self.connect_failures = 0
        try:
            self.link = Link(
                settings,
                self,
                client_id=settings.client_id,
                password=settings.resolve_password(),
                subscriptions=[(t, 1) for t in subscriptions(settings.group)],
                connect_properties={
                    mqttwire.SESSION_EXPIRY: settings.session_expiry_s,
                    mqttwire.RECEIVE_MAXIMUM: settings.receive_maximum,
                },
            )
        except MqttError as exc:
            raise BrokerError(str(exc)) from None
        #: PUBACKs of our dead letters: packet id → accepted
        self._published = threading.Condition()
        self._pub_done: dict[int, bool] = {}
        #: packet ids of acknowledgements, whose PUBACK nobody waits for
        self._unwatched: set[int] = set()
        self.subscribed = threading.Event()
        self.acks_published = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.link.start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self.link.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def generation(self) -> int:
        return self.link.generation

    # -- link events (the link's thread) -------------------------------------------------------
    def on_connect(self, session_present: bool) -> None:
        self._connected.set()
        log.info(
            "MQTT connected",
            extra=logs.fields(client_id=self.settings.client_id, session_present=session_present),
        )

    def on_refused(self, reason: str) -> None:
        self.connect_failures += 1
        log.error("MQTT connection refused", extra=logs.fields(reason=reason))

    def on_lost(self, reason: str) -> None:
        self._connected.clear()
        self.subscribed.clear()
        log.warning("MQTT disconnected", extra=logs.fields(reason=reason))

    def on_subscribe(self, codes: tuple[int, ...]) -> None:
        failed = [mqttwire.reason_text(c) for c in codes if c >= 0x80]
        if failed:
            log.error("MQTT subscription refused", extra=logs.fields(reasons=", ".join(failed)))
            return
        self.subscribed.set()
        # tests and operators wait for this line: from here on the group receives telemetry
        log.info("MQTT subscribed", extra=logs.fields(topics=len(codes)))

    def on_messages(self, items: list[mqttwire.Publish], gen: int, received_ms: int) -> None:
        put = self.inbox.put
        for m in items:
            put(Inbound(m.packet_id, m.qos, m.topic, m.payload, received_ms, gen, m.dup))

    # -- Broker interface (writer thread) -------------------------------------------------------
    def ack(self, items: Sequence[Inbound]) -> None:
        gen = self.link.generation
        self.link.ack([it.mid for it in items if it.qos > 0 and it.gen == gen], gen)

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACKs. A dead letter published while the
        connection is down is kept by the link and sent after the reconnect, so this waits for the
        acknowledgement itself."""
        try:
            mids = [
                self.link.publish(self.dead_letter_topic, letter.model_dump_json().encode())
                for letter in letters
            ]
        except LinkError as exc:
            raise BrokerError(f"dead letter not published: {exc}") from None
        deadline = time.monotonic() + self.dead_letter_timeout_s
        with self._published:
            while True:
                refused = [m for m in mids if self._pub_done.get(m) is False]
                if refused:
                    raise BrokerError(f"the broker refused {len(refused)} dead letter(s)")
                if all(m in self._pub_done for m in mids):
                    for m in mids:
                        del self._pub_done[m]
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BrokerError("dead letters not confirmed by the broker in time")
                self._published.wait(min(remaining, 1.0))

    def confirm(self, acks: Sequence[Ack]) -> None:
        """Publish end-to-end acknowledgements at QoS 1 without waiting for the broker: a lost one
        only makes the edge send those readings again (and they are stored again, harmlessly)."""
        mids = []
        for a in acks:
            try:
                mids.append(
                    self.link.publish(topics.ack(a.site), a.model_dump_json(exclude_none=True).encode())
                )
            except LinkError:
                break
        self.acks_published += len(mids)
        with self._published:
            for m in mids:
                if self._pub_done.pop(m, None) is None:
                    self._unwatched.add(m)

    def on_published(self, packet_id: int, ok: bool) -> None:
        with self._published:
            if packet_id in self._unwatched:
                self._unwatched.discard(packet_id)
                return
            self._pub_done[packet_id] = ok
            self._published.notify_all()
