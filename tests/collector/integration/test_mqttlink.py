"""The collector's MQTT connection against a real Mosquitto: acks, redelivery, a broker restart,
a half-open connection, the broker's Receive Maximum, MQTT 3.1.1 and messages with properties."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from epcwatch.collector.consumer import Consumer
from epcwatch.collector.pipeline import Inbound
from epcwatch.collector.settings import Mqtt
from epcwatch.wire import Ack, DeadLetter
from tests.collector.conftest import FreezableProxy, Publisher, telemetry, wait_for

pytestmark = pytest.mark.integration
TS = 1_700_000_000_000


def _settings(port: int, client_id: str, **kw: Any) -> Mqtt:
    return Mqtt.model_validate(
        {"host": "127.0.0.1", "port": port, "client_id": client_id, "group": "g", **kw}
    )


class _Running:
    def __init__(self, settings: Mqtt) -> None:
        self.inbox: queue.SimpleQueue[Inbound] = queue.SimpleQueue()
        self.consumer = Consumer(settings, self.inbox, dead_letter_timeout_s=30)
        self.consumer.start()
        assert self.consumer.subscribed.wait(30), "no SUBACK"

    def take(self, n: int, timeout: float = 30) -> list[Inbound]:
        return [self.inbox.get(timeout=timeout) for _ in range(n)]


@pytest.fixture
def running() -> Iterator[Any]:
    made: list[_Running] = []

    def make(settings: Mqtt) -> _Running:
        r = _Running(settings)
        made.append(r)
        return r

    yield make
    for r in made:
        r.consumer.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_acked_messages_stay_acked_and_the_rest_come_again_marked_dup(
    private_mosquitto, running, protocol
) -> None:
    port = private_mosquitto.port
    first = running(_settings(port, f"link-{protocol}", protocol=protocol))
    pub = Publisher(port)
    sent = [(f"epc/v1/s1/m{i}/telemetry", telemetry("s1", f"m{i}", i, TS)) for i in range(6)]
    pub.publish(sent)
    got = first.take(6)
    assert sorted((m.topic, m.payload) for m in got) == sorted(sent)
    assert all(m.qos == 1 and not m.dup for m in got)
    first.consumer.ack(got[:2])
    first.consumer.stop()  # DISCONNECT: the broker keeps the session and the 4 unacked messages

    again = running(_settings(port, f"link-{protocol}", protocol=protocol))
    redelivered = again.take(4)
    assert sorted(m.payload for m in redelivered) == sorted(m.payload for m in got[2:])
    assert all(m.dup for m in redelivered)
    again.consumer.ack(redelivered)
    pub.publish([sent[0]])
    [fresh] = again.take(1)  # nothing else was left: the next message is the new one
    assert fresh.payload == sent[0][1] and not fresh.dup
    pub.close()


def test_an_ack_of_a_lost_connection_never_reaches_the_next(private_mosquitto, running) -> None:
    port = private_mosquitto.port
    r = running(_settings(port, "link-gen"))
    pub = Publisher(port)
    pub.publish([("epc/v1/s1/m1/telemetry", telemetry("s1", "m1", 1, TS))])
    [m] = r.take(1)
    gen = r.consumer.generation
    private_mosquitto.stop()
    private_mosquitto.start()
    wait_for(lambda: r.consumer.generation > gen + 1 and r.consumer.subscribed.is_set(), 60, "reconnect")
    assert r.consumer.link.ack([m.mid], m.gen) == 0  # of the old connection: not sent
    r.consumer.ack([m])
    [again] = r.take(1)  # redelivered from the persisted session
    assert again.payload == m.payload and again.gen == r.consumer.generation
    r.consumer.ack([again])
    pub.close()


def test_a_dead_letter_published_while_the_broker_is_down_is_confirmed_after_it_returns(
    private_mosquitto, running
) -> None:
    port = private_mosquitto.port
    r = running(_settings(port, "link-dl"))
    private_mosquitto.stop()
    wait_for(lambda: not r.consumer.connected, 30, "the link to notice")
    letter = DeadLetter(topic="epc/v1/s1/m1/telemetry", reason="bad_json", received_ts=TS, payload_b64="ew==")
    done: list[BaseException | None] = []
    t = threading.Thread(target=lambda: done.append(_call(r.consumer.dead_letter, [letter])))
    t.start()
    private_mosquitto.start()
    t.join(60)
    assert done == [None]
    assert r.consumer.link.unacknowledged == 0


def _call(f: Any, *args: Any) -> BaseException | None:
    try:
        f(*args)
    except BaseException as exc:  # reported to the test thread
        return exc
    return None


def test_a_half_open_connection_is_noticed_by_keepalive(private_mosquitto, running, caplog) -> None:
    proxy = FreezableProxy(private_mosquitto.port)
    try:
        r = running(_settings(proxy.port, "link-ka", keepalive_s=5, reconnect_min_s=0.5))
        gen = r.consumer.generation
        caplog.set_level(logging.WARNING, "epcwatch.collector.mqtt")
        proxy.frozen.set()  # the broker neither answers nor hangs up
        wait_for(lambda: not r.consumer.connected, 30, "the keepalive to give up")
        assert any("PINGRESP" in str(rec.__dict__) for rec in caplog.records)
        proxy.frozen.clear()
        wait_for(lambda: r.consumer.subscribed.is_set() and r.consumer.generation > gen + 1, 60, "reconnect")
    finally:
        proxy.close()


def test_many_acknowledgements_stay_within_the_brokers_receive_maximum(private_mosquitto, running) -> None:
    r = running(_settings(private_mosquitto.port, "link-rm"))
    gen = r.consumer.generation
    acks = [Ack(site=f"s{i % 50}", collector="c", devices={"m1": [(i, i)]}) for i in range(3000)]
    r.consumer.confirm(acks)
    assert r.consumer.acks_published == 3000
    wait_for(lambda: r.consumer.link.unacknowledged == 0, 60, "every PUBACK")
    assert r.consumer.link.send_maximum < 3000  # the window mattered
    assert r.consumer.generation == gen  # never disconnected for exceeding it


def test_messages_with_properties_arrive_whole(private_mosquitto, running) -> None:
    r = running(_settings(private_mosquitto.port, "link-props"))
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", private_mosquitto.port)
    c.loop_start()
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = [("agent", "1.2"), ("k", "v")]
    props.ContentType = "application/json"
    props.MessageExpiryInterval = 3600
    body = telemetry("s1", "m1", 1, TS)
    c.publish("epc/v1/s1/m1/telemetry", body, qos=1, properties=props).wait_for_publish(30)
    c.publish("epc/v1/s1/m1/telemetry", body, qos=0).wait_for_publish(30)
    got = r.take(2)
    assert [(m.payload, m.qos) for m in got] == [(body, 1), (body, 0)]
    c.disconnect()
    c.loop_stop()


def test_two_processes_with_one_client_id_back_off_instead_of_storming(private_mosquitto) -> None:
    """The broker drops a session's connection when a second client takes it over; each side
    then waits longer before taking it back (0.5, 1, 2 s ...), rather than reconnecting at once
    in a loop. (A lower bound on time: a slow machine only makes it longer.)"""
    settings = _settings(private_mosquitto.port, "link-twin", reconnect_min_s=0.5, reconnect_max_s=8)
    a = Consumer(settings, queue.SimpleQueue())
    b = Consumer(settings, queue.SimpleQueue())
    a.start()
    assert a.wait_connected(30)
    t0 = time.monotonic()
    b.start()
    try:
        # four connections of a (each connect and each loss is a generation): three waits between
        wait_for(lambda: a.link.generation >= 8, 120, "a to reconnect three times")
        assert time.monotonic() - t0 >= 0.5 + 1 + 2
    finally:
        a.stop()
        b.stop()
