"""A broker started from the shipped production config (TLS, password file, ACL), with a lab CA
and credentials for two sites and one collector; plus a small synchronous MQTT client."""

from __future__ import annotations

import contextlib
import queue
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from epcwatch.broker import acl as mqtt_acl
from epcwatch.broker import credentials, lab_ca
from epcwatch.devservices.services import SecureMosquitto, free_port


@dataclass
class Lab:
    broker: SecureMosquitto
    pki: lab_ca.LabPki
    passwd: Path
    acl: Path
    secrets: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    d = tmp_path_factory.mktemp("lab")
    pki = lab_ca.create(d / "pki", clients=["site-a"])
    passwd, acl = d / "passwd", d / "acl"
    secrets = {}
    for block in (
        mqtt_acl.site_block("site-a"),
        mqtt_acl.site_block("site-b"),
        mqtt_acl.collector_block("collector-1", "collectors"),
    ):
        secrets[block.username] = credentials.issue(block, passwd, acl).password
    broker = SecureMosquitto(
        state_dir=d,
        port=free_port(),
        plain_port=free_port(),
        cafile=pki.ca_cert,
        certfile=pki.server_cert,
        keyfile=pki.server_key,
        password_file=passwd,
        acl_file=acl,
    )
    broker.start()
    yield Lab(broker, pki, passwd, acl, secrets)
    broker.stop()


class Client:
    """paho in a background loop, with connect/publish/subscribe results as plain values."""

    def __init__(self, client_id: str, protocol: int = mqtt.MQTTv5) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.acks: dict[int, ReasonCode | None] = {}
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self._acked = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda _c, _u, m: self.messages.put(m)
        self.c.on_publish = self._on_publish
        self.c.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.put(list(rcs))

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connack.put(rc)

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._acked:
            self.acks[mid] = rc
            self._acked.notify_all()

    def connect(
        self,
        port: int,
        username: str | None = None,
        password: str | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        clean_start: bool = True,
        session_expiry: int = 0,
    ) -> ReasonCode:
        if username is not None:
            self.c.username_pw_set(username, password)
        if tls is not None:
            self.c.tls_set_context(tls)
        props = None
        if self.c.protocol == mqtt.MQTTv5:
            props = Properties(mqtt.PacketTypes.CONNECT)
            props.SessionExpiryInterval = session_expiry
            self.c.connect("127.0.0.1", port, keepalive=30, clean_start=clean_start, properties=props)
        else:
            self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        return self.connack.get(timeout=30)

    def publish(self, topic: str, payload: bytes | str) -> ReasonCode | None:
        info = self.c.publish(topic, payload, qos=1)
        with self._acked:
            self._acked.wait_for(lambda: info.mid in self.acks, timeout=30)
        return self.acks.get(info.mid)

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self.c.subscribe(topic, qos=1)
        return self.subacks.get(timeout=30)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def client() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(client_id: str = "", protocol: int = mqtt.MQTTv5) -> Client:
        c = Client(client_id, protocol)
        made.append(c)
        return c

    yield make
    for c in made:
        with contextlib.suppress(Exception):  # a client the broker already refused
            c.close()


def trusting(ca: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    return ctx


@pytest.fixture
def tls_for(lab: Lab) -> ssl.SSLContext:
    return trusting(lab.pki.ca_cert)
