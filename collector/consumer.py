"""The MQTT side: a paho 2.x client with a persistent session, shared subscriptions and manual acks.

Threading: paho's network loop runs in its own thread (``loop_start``) and only appends
received messages to a queue; the writer thread (:mod:`epcwatch.collector.runner`) parses,
writes and then acks. ``Client.ack`` and ``Client.publish`` only queue a packet under paho's
own lock and wake the loop, so calling them from the writer thread is safe.

What makes an ack safe: packet ids belong to one connection. Every (re)connect starts a new
*generation*; a message is acked only if it arrived in the current generation. Messages of a
lost connection are never acked — the broker redelivers them (persistent session) and they are
written again, harmlessly. The check and the ack happen under one lock that the connect and
disconnect callbacks also take, so no ack of an old packet id can reach a new connection.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any, cast

import paho.mqtt.client as mqtt

from epcwatch import logs, topics
from epcwatch.collector.errors import CollectorError
from epcwatch.collector.pipeline import Inbound
from epcwatch.collector.settings import Mqtt
from epcwatch.mqtt import MqttError, connect_async, make_client
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
        self._lock = threading.Lock()
        self._gen = 0
        self._connected = threading.Event()
        self.connect_failures = 0
        try:
            password = settings.resolve_password()
            self.client = make_client(
                settings, client_id=settings.client_id, password=password, manual_ack=True
            )
        except MqttError as exc:
            raise BrokerError(str(exc)) from None
        # outgoing dead letters may pile up during a burst; do not cap them at paho's default 20
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        #: PUBACKs of our dead letters: packet id → accepted
        self._published = threading.Condition()
        self._pub_done: dict[int, bool] = {}
        #: packet ids of acknowledgements, whose PUBACK nobody waits for
        self._unwatched: set[int] = set()
        self.subscribed = threading.Event()
        self.acks_published = 0

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        s = self.settings
        try:
            connect_async(
                self.client,
                s,
                properties={"SessionExpiryInterval": s.session_expiry_s, "ReceiveMaximum": s.receive_maximum},
            )
        except MqttError as exc:
            raise BrokerError(str(exc)) from None
        self.client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def stop(self) -> None:
        with self._lock:
            self._gen += 1  # nothing acked after this point
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def generation(self) -> int:
        return self._gen

    # -- paho callbacks (network thread) -------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.connect_failures += 1
            log.error("MQTT connection refused", extra=logs.fields(reason=str(reason)))
            return
        with self._lock:
            self._gen += 1
        self._connected.set()
        session = getattr(flags, "session_present", None)
        log.info(
            "MQTT connected", extra=logs.fields(client_id=self.settings.client_id, session_present=session)
        )
        client.subscribe([(t, 1) for t in subscriptions(self.settings.group)])

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._lock:
            self._gen += 1
        self._connected.clear()
        self.subscribed.clear()
        log.warning("MQTT disconnected", extra=logs.fields(reason=str(reason)))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        failed = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            log.error("MQTT subscription refused", extra=logs.fields(reasons=", ".join(failed)))
            return
        self.subscribed.set()
        # tests and operators wait for this line: from here on the group receives telemetry
        log.info("MQTT subscribed", extra=logs.fields(topics=len(reasons)))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # keep this trivial: anything raised here would stop paho's loop
        self.inbox.put(
            Inbound(
                msg.mid,
                msg.qos,
                msg.topic,
                cast(bytes, msg.payload),
                int(time.time() * 1000),
                self._gen,
                msg.dup,
            )
        )

    # -- Broker interface (writer thread) -------------------------------------------------------
    def ack(self, items: Sequence[Inbound]) -> None:
        with self._lock:
            gen = self._gen
            for it in items:
                if it.qos > 0 and it.gen == gen:
                    self.client.ack(it.mid, it.qos)

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACKs. A dead letter published while the
        connection is down is kept by paho and sent after the reconnect, so this waits for the
        acknowledgement itself (``on_publish``), not for paho's "published now" status."""
        mids = []
        for letter in letters:
            info = self.client.publish(self.dead_letter_topic, letter.model_dump_json(), qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise BrokerError(f"dead letter not published: {mqtt.error_string(info.rc)}")
            mids.append(info.mid)
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
            info = self.client.publish(topics.ack(a.site), a.model_dump_json(exclude_none=True), qos=1)
            if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                mids.append(info.mid)
        self.acks_published += len(mids)
        with self._published:
            for m in mids:
                if self._pub_done.pop(m, None) is None:
                    self._unwatched.add(m)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # reason codes below 0x80 are successes (0x10: accepted, but no subscriber at the moment)
        ok = not getattr(reason, "is_failure", False)
        with self._published:
            if mid in self._unwatched:
                self._unwatched.discard(mid)
                return
            self._pub_done[mid] = ok
            self._published.notify_all()
