"""The shipped broker config with per-site credentials, against a real Mosquitto:
cross-site publishing is refused, TLS works with the lab CA, anonymous and wrong passwords
are refused."""

from __future__ import annotations

import queue
import socket
import ssl
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from epcwatch import topics
from epcwatch.broker import acl as mqtt_acl
from epcwatch.broker import credentials, lab_ca
from epcwatch.collector import fastpath
from epcwatch.collector.validate import Reason, Rejection, validate
from epcwatch.wire import MIN_TS_MS, TelemetryMessage
from tests.support import EPCWATCH, wait_for

pytestmark = pytest.mark.integration

EPC = EPCWATCH
NOT_AUTHORIZED = 135  # MQTT 5 reason code


def telemetry(site: str, device: str, seq: int) -> bytes:
    msg = TelemetryMessage.model_validate(
        {
            "site": site,
            "device": device,
            "kind": "meter",
            "readings": [{"seq": seq, "ts": MIN_TS_MS + seq, "values": {"active_power": 1000.0 + seq}}],
        }
    )
    return msg.model_dump_json().encode()


def accepted(rc: object) -> bool:
    """PUBACK success: reason codes below 0x80 (0 success, 16 no matching subscribers)."""
    return rc is not None and getattr(rc, "value", 255) < 0x80


def drain_until(
    q: queue.Queue[mqtt.MQTTMessage], last_topic: str, last_payload: bytes
) -> list[mqtt.MQTTMessage]:
    """Everything delivered up to and including the marker message (QoS 1 keeps one publisher's order)."""
    got = []
    while True:
        m = q.get(timeout=30)
        got.append(m)
        if m.topic == last_topic and m.payload == last_payload:
            return got


def test_site_a_cannot_publish_into_site_b(lab, client: Callable, tls_for: ssl.SSLContext) -> None:
    coll = client("collector-1-t1")
    assert coll.connect(lab.broker.port, "collector-1", lab.secrets["collector-1"], tls=tls_for) == 0
    assert [rc.value for rc in coll.subscribe(topics.shared_telemetry("collectors"))] == [1]

    a = client("site-a-t1")
    assert a.connect(lab.broker.port, "site-a", lab.secrets["site-a"], tls=tls_for) == 0
    own_first = telemetry("site-a", "m1", 1)
    forged = telemetry("site-b", "m1", 1)
    own_last = telemetry("site-a", "m1", 2)
    assert a.publish(topics.telemetry("site-a", "m1"), own_first) == 0
    # the broker refuses the write into site-b's tree (MQTT 5 tells the publisher why) ...
    rc = a.publish(topics.telemetry("site-b", "m1"), forged)
    assert rc is not None and rc.value == NOT_AUTHORIZED
    assert a.publish(topics.telemetry("site-a", "m1"), own_last) == 0
    # ... and the collector, which sees site-a's messages before and after it, never gets it
    got = drain_until(coll.messages, topics.telemetry("site-a", "m1"), own_last)
    assert [m.payload for m in got] == [own_first, own_last]
    assert all(topics.parse(m.topic).site == "site-a" for m in got)
    # what did arrive passes the collector's validation
    assert all(isinstance(validate(m.topic, m.payload), TelemetryMessage) for m in got)


def test_collector_rejects_a_payload_claiming_another_site(
    lab, client: Callable, tls_for: ssl.SSLContext
) -> None:
    """The second line of defence: the broker lets site-a write its own topic, whatever the
    payload says, but the collector refuses a payload whose site is not the topic's."""
    coll = client("collector-1-t1b")
    assert coll.connect(lab.broker.port, "collector-1", lab.secrets["collector-1"], tls=tls_for) == 0
    coll.subscribe(topics.shared_telemetry("collectors"))
    a = client("site-a-t1b")
    assert a.connect(lab.broker.port, "site-a", lab.secrets["site-a"], tls=tls_for) == 0
    forged = telemetry("site-b", "m1", 1)  # site-b's data, under site-a's own topic
    assert accepted(a.publish(topics.telemetry("site-a", "m1"), forged))
    [m] = drain_until(coll.messages, topics.telemetry("site-a", "m1"), forged)
    verdict = validate(m.topic, m.payload)
    assert isinstance(verdict, Rejection) and verdict.reason is Reason.TOPIC_MISMATCH, verdict
    assert "site-b" in verdict.detail and "site-a" in verdict.detail
    # and had the broker let site-a's data into site-b's tree, the same check refuses it
    verdict = validate(topics.telemetry("site-b", "m1"), telemetry("site-a", "m1", 1))
    assert isinstance(verdict, Rejection) and verdict.reason is Reason.TOPIC_MISMATCH
    # the collector's fast path does not store it either (it falls back to this validation)
    assert fastpath.telemetry("site-a", "m1", forged) is None


def test_site_cannot_forge_status_health_or_dead_letters(
    lab, client: Callable, tls_for: ssl.SSLContext
) -> None:
    a = client("site-a-t2")
    assert a.connect(lab.broker.port, "site-a", lab.secrets["site-a"], tls=tls_for) == 0
    for topic in (
        topics.status("site-b"),
        topics.health("site-b"),
        topics.dead_letter("collectors"),
        "epc/v1/x",
    ):
        rc = a.publish(topic, b"{}")
        assert rc is not None and rc.value == NOT_AUTHORIZED, topic
    for topic in (topics.status("site-a"), topics.health("site-a")):
        assert accepted(a.publish(topic, b"{}")), topic


def test_sites_cannot_read_and_collectors_cannot_write(
    lab, client: Callable, tls_for: ssl.SSLContext
) -> None:
    # Mosquitto 2.0 grants the SUBSCRIBE and applies the read ACL to every message it would
    # deliver, so the proof is that nothing arrives
    a = client("site-a-t3")
    assert a.connect(lab.broker.port, "site-a", lab.secrets["site-a"], tls=tls_for) == 0
    for flt in (topics.TELEMETRY_FILTER, f"{topics.PREFIX}/site-a/#", "#"):
        a.subscribe(flt)
    b = client("site-b-t3")
    assert b.connect(lab.broker.port, "site-b", lab.secrets["site-b"], tls=tls_for) == 0
    assert accepted(b.publish(topics.telemetry("site-b", "m1"), telemetry("site-b", "m1", 9)))
    assert accepted(b.publish(topics.status("site-b"), b"{}"))
    # site-a's own message, and then a PUBACK round trip: the broker writes to a client's
    # socket in order, so anything routed to site-a would have arrived before this PUBACK
    assert accepted(a.publish(topics.telemetry("site-a", "m1"), telemetry("site-a", "m1", 9)))
    assert accepted(a.publish(topics.health("site-a"), b"{}"))
    assert a.messages.empty()

    coll = client("collector-1-t3")
    assert coll.connect(lab.broker.port, "collector-1", lab.secrets["collector-1"], tls=tls_for) == 0
    rc = coll.publish(topics.telemetry("site-a", "m1"), telemetry("site-a", "m1", 5))
    assert rc is not None and rc.value == NOT_AUTHORIZED
    assert accepted(coll.publish(topics.dead_letter("collectors"), b"{}"))
    rc = coll.publish(topics.dead_letter("other-group"), b"{}")
    assert rc is not None and rc.value == NOT_AUTHORIZED


def test_anonymous_and_wrong_password_are_refused(lab, client: Callable, tls_for: ssl.SSLContext) -> None:
    for port, tls in ((lab.broker.port, tls_for), (lab.broker.plain_port, None)):
        assert client().connect(port, tls=tls).value == NOT_AUTHORIZED  # anonymous
        assert client().connect(port, "site-a", "not-the-password", tls=tls).value in (134, NOT_AUTHORIZED)
        assert client().connect(port, "site-a", lab.secrets["site-b"], tls=tls).value in (134, NOT_AUTHORIZED)
        assert client().connect(port, "nobody", lab.secrets["site-a"], tls=tls).value in (134, NOT_AUTHORIZED)
    # MQTT 3.1.1 clients get CONNACK 5 (not authorised), which paho reports as reason 135
    assert client(protocol=mqtt.MQTTv311).connect(lab.broker.port, tls=tls_for).value == NOT_AUTHORIZED
    # the right password works on both listeners
    assert client().connect(lab.broker.plain_port, "site-a", lab.secrets["site-a"]) == 0


def handshake(port: int, ctx: ssl.SSLContext, server_name: str = "localhost") -> str | None:
    """A bare TLS handshake with the broker; returns the negotiated protocol version."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        ctx.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        return tls.version()


def test_tls_with_the_lab_ca(lab, client: Callable, tmp_path: Path) -> None:
    trusting = ssl.create_default_context(cafile=str(lab.pki.ca_cert))
    assert handshake(lab.broker.port, trusting) in ("TLSv1.2", "TLSv1.3")
    # the certificate names both the host name and the loopback address (SAN)
    assert handshake(lab.broker.port, trusting, "127.0.0.1") in ("TLSv1.2", "TLSv1.3")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(lab.broker.port, trusting, "broker.example.org")
    # and MQTT over it, with the site's password
    assert client().connect(lab.broker.port, "site-a", lab.secrets["site-a"], tls=trusting) == 0

    # a client trusting another CA refuses the broker's certificate ...
    other = lab_ca.create(tmp_path / "other")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(lab.broker.port, ssl.create_default_context(cafile=str(other.ca_cert)))
    # ... and so does one with the system trust store
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(lab.broker.port, ssl.create_default_context())


def test_tls_below_1_2_is_refused_by_the_broker(lab) -> None:
    ctx = ssl.create_default_context(cafile=str(lab.pki.ca_cert))
    # let the client offer TLS 1.1 only (OpenSSL 3 needs security level 0 for that), so the
    # refusal comes from the broker's tls_version, not from the client
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # TLS 1.1 is deprecated: that is the point here
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError) as ei:
        handshake(lab.broker.port, ctx)
    assert not isinstance(ei.value, ssl.SSLCertVerificationError)
    ctx12 = ssl.create_default_context(cafile=str(lab.pki.ca_cert))
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    assert handshake(lab.broker.port, ctx12) == "TLSv1.2"


def test_plain_tcp_on_the_tls_port_is_refused(lab) -> None:
    """A client that skips TLS gets no CONNACK: the broker drops what is not a TLS handshake."""
    # MQTT 3.1.1 CONNECT, client id "x", clean session, keepalive 30
    connect = bytes([0x10, 13, 0, 4, *b"MQTT", 4, 2, 0, 30, 0, 1, *b"x"])
    with socket.create_connection(("127.0.0.1", lab.broker.port), timeout=30) as s:
        s.sendall(connect)
        try:
            reply = s.recv(16)
        except ConnectionResetError:
            reply = b""
    assert not reply.startswith(b"\x20"), reply  # 0x20 would be a CONNACK


def test_new_site_after_reload_and_rotation(lab, client: Callable, tls_for: ssl.SSLContext) -> None:
    """Credentials added with the CLI work after SIGHUP; a rotated password replaces the old one."""
    out = subprocess.run(
        [
            EPC,
            "security",
            "site-credentials",
            "site-c",
            "--passwd-file",
            str(lab.passwd),
            "--acl-file",
            str(lab.acl),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    pw = out.stdout.strip()
    assert len(pw) >= 40 and pw not in out.stderr
    lab.broker.reload()
    c = client("site-c-t1")
    # SIGHUP is asynchronous: the broker reads the files on its next loop; wait for that by
    # retrying the connect (a count of attempts, no timing assertion)
    for _ in range(50):
        rc = c.connect(lab.broker.port, "site-c", pw, tls=tls_for)
        if rc == 0:
            break
        c = client("site-c-t1")
    assert rc == 0
    assert accepted(c.publish(topics.telemetry("site-c", "m1"), telemetry("site-c", "m1", 1)))
    rc = c.publish(topics.telemetry("site-a", "m1"), telemetry("site-a", "m1", 1))
    assert rc is not None and rc.value == NOT_AUTHORIZED

    rotated = credentials.issue(mqtt_acl.site_block("site-c"), lab.passwd, lab.acl).password
    lab.broker.reload()
    for _ in range(50):
        rc = client().connect(lab.broker.port, "site-c", pw, tls=tls_for)
        if rc != 0:
            break
    assert rc.value in (134, NOT_AUTHORIZED)
    assert client().connect(lab.broker.port, "site-c", rotated, tls=tls_for) == 0
    assert mqtt_acl.parse(lab.acl.read_text())[1].count(mqtt_acl.site_block("site-c")) == 1


def test_collectors_write_acks_and_a_site_reads_only_its_own(
    lab, client: Callable, tls_for: ssl.SSLContext
) -> None:
    coll = client("collector-1-t-ack")
    assert coll.connect(lab.broker.port, "collector-1", lab.secrets["collector-1"], tls=tls_for) == 0
    a = client("site-a-t-ack")
    assert a.connect(lab.broker.port, "site-a", lab.secrets["site-a"], tls=tls_for) == 0
    for flt in (topics.ack("site-a"), topics.ack("site-b"), topics.ACK_FILTER):
        a.subscribe(flt)
    # a site cannot forge acknowledgements, neither its own (which would delete unstored
    # readings from its outbox) nor another site's
    for topic in (topics.ack("site-a"), topics.ack("site-b")):
        rc = a.publish(topic, b"{}")
        assert rc is not None and rc.value == NOT_AUTHORIZED, topic
    ack_b = b'{"v":1,"site":"site-b","devices":{"m1":[[0,9]]}}'
    ack_a = b'{"v":1,"site":"site-a","devices":{"m1":[[0,9]]}}'
    assert accepted(coll.publish(topics.ack("site-b"), ack_b))
    assert accepted(coll.publish(topics.ack("site-a"), ack_a))
    # site-a gets its own acknowledgement (once per matching subscription) and never site-b's
    got = drain_until(a.messages, topics.ack("site-a"), ack_a)
    while not a.messages.empty():
        got.append(a.messages.get_nowait())
    assert got and {(m.topic, m.payload) for m in got} == {(topics.ack("site-a"), ack_a)}
    # the collector's rights stop at acks: it cannot publish telemetry or status for a site
    for topic in (topics.telemetry("site-a", "m1"), topics.status("site-a")):
        rc = coll.publish(topic, b"{}")
        assert rc is not None and rc.value == NOT_AUTHORIZED, topic


def test_the_collector_connects_over_tls_with_its_password_and_reads_through_its_group(
    lab, client, tls_for, tmp_path
) -> None:
    """The collector's own MQTT connection against the production config: TLS with the lab CA,
    its password from a file, the group's shared subscription, a dead letter confirmed; a wrong
    password is refused by name."""
    from epcwatch.collector.consumer import Consumer
    from epcwatch.collector.settings import Mqtt
    from epcwatch.wire import DeadLetter

    secret = tmp_path / "collector-1.secret"
    secret.write_text(lab.secrets["collector-1"])

    def settings(password_file: Path, client_id: str) -> Mqtt:
        return Mqtt.model_validate(
            {
                "host": "localhost",
                "port": lab.broker.port,
                "client_id": client_id,
                "group": "collectors",
                "username": "collector-1",
                "password": {"file": str(password_file)},
                "tls": {"ca_file": str(lab.pki.ca_cert)},
            }
        )

    inbox: queue.SimpleQueue = queue.SimpleQueue()
    consumer = Consumer(settings(secret, "collector-1-link"), inbox, dead_letter_timeout_s=30)
    consumer.start()
    try:
        assert consumer.subscribed.wait(30), "no SUBACK over TLS"
        site = client("site-a-link")
        assert site.connect(lab.broker.port, "site-a", lab.secrets["site-a"], tls=tls_for) == 0
        body = telemetry("site-a", "m1", 7)
        assert accepted(site.publish(topics.telemetry("site-a", "m1"), body))
        m = inbox.get(timeout=30)
        assert (m.topic, m.payload, m.qos) == (topics.telemetry("site-a", "m1"), body, 1)
        consumer.ack([m])
        consumer.dead_letter(
            [DeadLetter(topic=m.topic, reason="bad_json", received_ts=MIN_TS_MS, payload_b64="ew==")]
        )
    finally:
        consumer.stop()

    wrong = tmp_path / "wrong.secret"
    wrong.write_text("not-the-password")
    refused = Consumer(settings(wrong, "collector-1-wrong"), queue.SimpleQueue())
    refused.start()
    try:
        wait_for(lambda: refused.connect_failures >= 1, 30, "the refusal")
        assert not refused.connected
    finally:
        refused.stop()
