"""What the shipped broker config keeps across a restart, measured on a real Mosquitto:

- a clean stop (SIGTERM) keeps every message queued for an absent collector;
- a crash (SIGKILL) loses what arrived since the last snapshot (``autosave_interval``): the
  broker is no store; the edge keeps every reading until a collector acknowledges it end to
  end and sends it again (tests/edge/integration/test_delivery.py);
- Mosquitto 2.0 does not restore shared subscriptions: until a collector re-subscribes, a
  publish is answered with reason 0x10 "no matching subscribers" and dropped, which is why the
  edge keeps such readings in its outbox and retries.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from epcwatch import topics
from epcwatch.broker import acl as mqtt_acl
from epcwatch.broker import credentials, lab_ca
from epcwatch.devservices.services import SecureMosquitto, free_port
from epcwatch.testing.modbus_recorder import recording_device
from epcwatch.wire import telemetry_messages
from tests.support import EPCWATCH

pytestmark = pytest.mark.integration

NO_MATCHING_SUBSCRIBERS = 0x10
N = 50


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[SecureMosquitto, dict[str, str], ssl.SSLContext]]:
    pki = lab_ca.create(tmp_path / "pki")
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    pw = {
        b.username: credentials.issue(b, passwd, acl).password
        for b in (mqtt_acl.site_block("site-a"), mqtt_acl.collector_block("collector-1"))
    }
    b = SecureMosquitto(
        state_dir=tmp_path,
        port=free_port(),
        cafile=pki.ca_cert,
        certfile=pki.server_cert,
        keyfile=pki.server_key,
        password_file=passwd,
        acl_file=acl,
    )
    b.start()
    yield b, pw, ssl.create_default_context(cafile=str(pki.ca_cert))
    b.stop()


def queue_for_absent_collector(broker, client: Callable) -> list[bytes]:
    b, pw, tls = broker
    coll = client("chaos-collector-1")
    assert (
        coll.connect(
            b.port, "collector-1", pw["collector-1"], tls=tls, clean_start=False, session_expiry=3600
        )
        == 0
    )
    coll.subscribe(topics.shared_telemetry("collectors"))
    coll.close()  # away: its persistent session queues
    site = client("site-a-p")
    assert site.connect(b.port, "site-a", pw["site-a"], tls=tls) == 0
    payloads = [f'{{"n":{i}}}'.encode() for i in range(N)]
    for p in payloads:
        rc = site.publish(topics.telemetry("site-a", "m1"), p)
        assert rc is not None and rc.value == 0  # acknowledged: the edge would now delete it
    site.close()
    return payloads


def collector_comes_back(broker, client: Callable) -> list[bytes]:
    """Reconnect the collector's session (without re-subscribing) and take what it queued."""
    b, pw, tls = broker
    coll = client("chaos-collector-1")
    assert (
        coll.connect(
            b.port, "collector-1", pw["collector-1"], tls=tls, clean_start=False, session_expiry=3600
        )
        == 0
    )
    # a PUBACK round trip on the same connection: everything queued was written before it
    got: list[bytes] = []
    probe = coll.publish(topics.dead_letter("collectors"), b"{}")
    assert probe is not None and probe.value < 0x80
    while not coll.messages.empty():
        got.append(coll.messages.get_nowait().payload)
    return got


def test_clean_stop_keeps_the_queue(broker, client: Callable) -> None:
    sent = queue_for_absent_collector(broker, client)
    broker[0].stop(sig=signal.SIGTERM)
    broker[0].start()
    assert collector_comes_back(broker, client) == sent


def test_crash_loses_what_arrived_since_the_last_snapshot(broker, client: Callable) -> None:
    sent = queue_for_absent_collector(broker, client)
    broker[0].kill()  # SIGKILL well inside autosave_interval (30 s): no snapshot holds them
    broker[0].start()
    assert collector_comes_back(broker, client) == []
    assert len(sent) == N


def test_shared_subscriptions_are_not_restored(broker, client: Callable) -> None:
    b, pw, tls = broker
    coll = client("chaos-collector-1")
    assert (
        coll.connect(
            b.port, "collector-1", pw["collector-1"], tls=tls, clean_start=False, session_expiry=3600
        )
        == 0
    )
    coll.subscribe(topics.shared_telemetry("collectors"))
    site = client("site-a-s")
    assert site.connect(b.port, "site-a", pw["site-a"], tls=tls) == 0
    assert site.publish(topics.telemetry("site-a", "m1"), b"{}").value == 0
    coll.close()
    site.close()
    b.stop(sig=signal.SIGTERM)
    b.start()
    site = client("site-a-s")
    assert site.connect(b.port, "site-a", pw["site-a"], tls=tls) == 0
    # the collector's session is back but its shared subscription is not
    rc = site.publish(topics.telemetry("site-a", "m1"), b"{}")
    assert rc is not None and rc.value == NO_MATCHING_SUBSCRIBERS
    coll = client("chaos-collector-1")
    assert (
        coll.connect(
            b.port, "collector-1", pw["collector-1"], tls=tls, clean_start=False, session_expiry=3600
        )
        == 0
    )
    coll.subscribe(topics.shared_telemetry("collectors"))
    assert site.publish(topics.telemetry("site-a", "m1"), b"{}").value == 0


def test_edge_keeps_readings_until_a_collector_subscribes(broker, client: Callable, tmp_path: Path) -> None:
    """The real edge agent on a broker where no collector has subscribed yet (a fresh broker, or
    one just restarted): its readings stay in the outbox and all arrive, from seq 0, once a
    collector subscribes."""
    b, pw, tls = broker
    epc = EPCWATCH
    (tmp_path / "pw").write_text(pw["site-a"])
    port = free_port()
    cfg = tmp_path / "site.yaml"
    cfg.write_text(
        f"""\
site: site-a
buses:
  - {{type: tcp, id: gw, host: 127.0.0.1, port: {port}}}
devices:
  - {{id: m1, bus: gw, unit: 1, profile: eastron-sdm630, poll_interval_s: 0.5}}
mqtt:
  host: 127.0.0.1
  port: {b.port}
  username: site-a
  password: {{file: pw}}
  tls: {{ca_file: {tmp_path / "pki" / "ca.crt"}}}
outbox: {{path: outbox.sqlite}}
"""
    )
    log_path = tmp_path / "edge.log"
    with recording_device(port), open(log_path, "wb") as log:
        agent = subprocess.Popen(
            [epc, "edge", "run", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # wait (by count) until the broker has answered "no matching subscribers" twice
            deadline = time.monotonic() + 120
            while log_path.read_text().count("no subscriber") < 2 and time.monotonic() < deadline:
                assert agent.poll() is None, log_path.read_text()[-2000:]
                time.sleep(0.2)
            assert log_path.read_text().count("no subscriber") >= 2, log_path.read_text()[-2000:]
            coll = client("collector-1-late")
            assert coll.connect(b.port, "collector-1", pw["collector-1"], tls=tls) == 0
            coll.subscribe(topics.shared_telemetry("collectors"))
            seqs: set[int] = set()
            while not set(range(10)) <= seqs:
                # one device's message (schema 1) or a site's poll cycle (schema 2)
                for m in telemetry_messages(coll.messages.get(timeout=120).payload):
                    seqs.update(r.seq for r in m.readings)
        finally:
            os.kill(agent.pid, signal.SIGTERM)
            try:
                agent.wait(60)
            except subprocess.TimeoutExpired:  # shutdown is not what this test is about
                agent.kill()
                agent.wait(30)
    # nothing was dropped while nobody listened: every reading from the first one arrives (a
    # message still in flight when the collector subscribed may overtake a resent older one)
    assert seqs == set(range(max(seqs) + 1))
