"""MQTT uplink: a paho-mqtt 2.x client (callback API v2) wrapped for an asyncio agent.

* QoS 1 with a persistent session: MQTT 5 ``clean_start=False`` plus a session expiry
  interval; MQTT 3.1.1 ``clean_session=False``. The client id is stable per site.
* ``online`` birth (retained, QoS 1) on every connect, ``offline`` last will (retained), and an
  explicit retained ``offline`` on a clean shutdown (a will is not sent on a clean disconnect).
* The client comes from the project's one paho factory (:func:`epcwatch.mqtt.make_client`).
  Reconnection is paho's network thread with capped exponential backoff
  (``reconnect_delay_set``); messages handed to paho while the link is down stay in its
  in-flight window and are re-sent on reconnect; the outbox holds every reading until its
  end-to-end acknowledgement.
* Acknowledgements (``on_publish``, with the MQTT 5 PUBACK reason code) are passed to the asyncio
  loop thread through ``call_soon_threadsafe``; no outbox state is touched from paho's thread.
* The end-to-end acknowledgements of the collectors (``epc/v1/{site}/ack``, QoS 1) are
  subscribed on every connect (a broker that lost its state forgets subscriptions) and passed
  to the loop thread the same way.

paho exceptions and TLS/secret problems are converted to :class:`PublishError` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from epcwatch import logs, topics
from epcwatch.clock import Clock
from epcwatch.edge.errors import PublishError
from epcwatch.edge.site import SiteConfig
from epcwatch.mqtt import MqttError, connect_async, make_client
from epcwatch.wire import StatusMessage

log = logging.getLogger("epcwatch.edge.publisher")

AckHandler = Callable[[int, int], None]  # (mid, reason code value)
E2eAckHandler = Callable[[bytes], None]  # payload of an end-to-end acknowledgement


def _reason_value(rc: Any) -> int:
    value = getattr(rc, "value", rc)
    return int(value) if isinstance(value, int) else 0


class Publisher:
    def __init__(self, cfg: SiteConfig, clock: Clock, password: str | None = None) -> None:
        self.cfg = cfg
        self.clock = clock
        self.site = cfg.site
        self.agent = cfg.agent_name()
        self.status_topic = topics.status(cfg.site)
        self.health_topic = topics.health(cfg.site)
        self.ack_topic = topics.ack(cfg.site)
        self.subscribed = False
        self.connected = False
        self.connects = 0
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_ack: AckHandler | None = None
        self._on_connect: Callable[[], None] | None = None
        self._acks: list[tuple[int, int]] = []
        self._acks_lock = threading.Lock()
        self._acks_scheduled = False
        self._on_e2e_ack: E2eAckHandler | None = None
        m = cfg.mqtt
        self.v5 = m.protocol == "5"
        logs.redact(password)
        try:
            self.client = make_client(m, client_id=cfg.client_id(), password=password)
        except MqttError as exc:
            raise PublishError(str(exc)) from None
        will = StatusMessage(site=self.site, state="offline", agent=self.agent)
        self.client.will_set(self.status_topic, will.model_dump_json(exclude_none=True), qos=1, retain=True)
        self.client.max_inflight_messages_set(m.max_inflight)
        self.client.max_queued_messages_set(0)  # the forwarder bounds what it hands over
        self.client.on_connect = self._cb_connect
        self.client.on_disconnect = self._cb_disconnect
        self.client.on_publish = self._cb_publish
        self.client.on_message = self._cb_message
        self.client.on_subscribe = self._cb_subscribe

    # -- lifecycle --------------------------------------------------------------------------
    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_ack: AckHandler,
        on_connect: Callable[[], None] | None = None,
        on_e2e_ack: E2eAckHandler | None = None,
    ) -> None:
        self._loop = loop
        self._on_ack = on_ack
        self._on_connect = on_connect
        self._on_e2e_ack = on_e2e_ack
        m = self.cfg.mqtt
        try:
            connect_async(self.client, m, properties={"SessionExpiryInterval": m.session_expiry_s})
        except MqttError as exc:
            raise PublishError(str(exc)) from None
        self.client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish a retained ``offline`` (when connected), disconnect, stop the network thread."""
        self._stopping = True
        if self.connected:
            try:
                info = self.client.publish(self.status_topic, self._status("offline"), qos=1, retain=True)
                deadline = time.monotonic() + timeout
                while not info.is_published() and time.monotonic() < deadline and self.connected:
                    time.sleep(0.02)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    # -- publishing -------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Hand a message to paho; returns its mid (the ack arrives through ``on_ack``)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        return int(info.mid)

    def publish_health(self, payload: bytes) -> None:
        if self.connected:
            self.client.publish(self.health_topic, payload, qos=0, retain=False)

    # -- paho callbacks (network thread) -----------------------------------------------------
    def _status(self, state: str) -> str:
        msg = StatusMessage(
            site=self.site,
            state="online" if state == "online" else "offline",
            ts=int(self.clock.now() * 1000),
            agent=self.agent,
        )
        return msg.model_dump_json(exclude_none=True)

    def _cb_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if getattr(rc, "is_failure", False):
            log.error("mqtt connect refused", extra=logs.fields(reason=str(rc)))
            return
        self.connected = True
        self.connects += 1
        client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        if self._on_e2e_ack is not None:
            client.subscribe(self.ack_topic, qos=1)
        log.info(
            "mqtt connected",
            extra=logs.fields(
                host=self.cfg.mqtt.host, session_present=bool(getattr(flags, "session_present", False))
            ),
        )
        if self._loop is not None and self._on_connect is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                self._loop.call_soon_threadsafe(self._on_connect)

    def _cb_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        was = self.connected
        self.connected = False
        self.subscribed = False
        if was and not self._stopping:
            log.warning("mqtt disconnected", extra=logs.fields(reason=str(rc)))

    def _cb_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        failed = [str(r) for r in reasons if getattr(r, "is_failure", False)]
        if failed:
            log.error(
                "ack subscription refused; nothing will be deleted from the outbox",
                extra=logs.fields(topic=self.ack_topic, reason=", ".join(failed)),
            )
            return
        self.subscribed = True
        log.info("ack subscription active", extra=logs.fields(topic=self.ack_topic))

    def _cb_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic != self.ack_topic or self._loop is None or self._on_e2e_ack is None:
            return
        with contextlib.suppress(RuntimeError):  # loop closed during shutdown
            self._loop.call_soon_threadsafe(self._on_e2e_ack, bytes(msg.payload))

    def _cb_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        # acks are handed over in batches: one wake-up of the event loop for all the PUBACKs that
        # arrive while it is busy, not one per message (100 meters → 100 acks a second)
        if self._loop is not None and self._on_ack is not None:
            with self._acks_lock:
                self._acks.append((mid, _reason_value(rc)))
                if self._acks_scheduled:
                    return
                self._acks_scheduled = True
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                self._loop.call_soon_threadsafe(self._drain_acks)

    def _drain_acks(self) -> None:
        with self._acks_lock:
            acks, self._acks = self._acks, []
            self._acks_scheduled = False
        if self._on_ack is not None:
            for mid, reason in acks:
                self._on_ack(mid, reason)
