"""The agent over TLS with username/password (from a file) against a real Mosquitto."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from epcwatch.clock import SystemClock
from epcwatch.devservices.services import Mosquitto, free_port
from epcwatch.edge.agent import Agent
from epcwatch.edge.poller import DevicePlan, ReadSpec
from epcwatch.edge.site import SiteConfig, load_site, resolve_password
from epcwatch.testing.fake_transport import FakeTransport
from epcwatch.wire import TelemetryMessage

pytestmark = pytest.mark.integration

PASSWORD = "edge-pw-7f3a91"


def _certs(d: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (openssl, Debian package)."""

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=epcwatch test CA",
        "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
        "-out", "server.csr")  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san.ext", "-out", "server.pem")  # fmt: skip
    return d / "ca.pem", d / "server.pem", d / "server.key"


def _decode(answers: Any) -> Any:
    return {"active_power": float(answers[0][0])}, "good"


@pytest.fixture
def tls_broker(tmp_path: Path) -> Any:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = _certs(certs)
    pwfile = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "edge", PASSWORD], check=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pwfile), "reader", "reader-pw"], check=True)
    tls_port = free_port()
    broker = Mosquitto(
        state_dir=tmp_path / "broker",
        port=free_port(),
        allow_anonymous=False,
        extra_config=f"password_file {pwfile}\nlistener {tls_port} 127.0.0.1\n"
        f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n",
    )
    broker.start()
    yield broker, tls_port, ca
    broker.stop()


def test_agent_publishes_over_tls_with_a_password_file(tmp_path: Path, tls_broker: Any, helpers: Any) -> None:
    broker, tls_port, ca = tls_broker
    (tmp_path / "secret").write_text(PASSWORD + "\n")
    site = tmp_path / "site.yaml"
    site.write_text(
        f"""\
site: tls-site
buses: [{{type: tcp, id: gw, host: 127.0.0.1, port: 1}}]
devices: [{{id: m1, bus: gw, unit: 1, profile: test, poll_interval_s: 0.2}}]
mqtt:
  host: 127.0.0.1
  port: {tls_port}
  username: edge
  password: {{file: secret}}
  tls: {{ca_file: {ca}}}
outbox: {{path: outbox.sqlite}}
"""
    )
    cfg: SiteConfig = load_site(site)
    password = resolve_password(cfg, site)
    assert password == PASSWORD
    sub = helpers.Subscriber(broker.port, "epc/v1/tls-site/#", username="reader", password="reader-pw")
    fake = FakeTransport()
    fake.set_image(1, {(3, 0): 42})
    plan = DevicePlan("test", "meter", (ReadSpec(3, 0, 1),), _decode)
    agent = Agent(cfg, {"m1": plan}, SystemClock(), password=password, transport_factory=lambda bus: fake)
    runner = helpers.AgentThread(agent).start()
    try:
        helpers.wait_for(
            lambda: sum(t.endswith("/telemetry") for t, _, _ in sub.snapshot()) >= 3,
            what="telemetry over TLS",
        )
    finally:
        runner.stop()
        sub.close()
    msg = next(
        TelemetryMessage.model_validate_json(p) for t, p, _ in sub.snapshot() if t.endswith("/telemetry")
    )
    assert msg.readings[0].values == {"active_power": 42.0}


def test_wrong_password_never_connects_and_keeps_readings(
    tmp_path: Path, tls_broker: Any, helpers: Any
) -> None:
    _broker, tls_port, ca = tls_broker
    cfg = SiteConfig.model_validate(
        {
            "site": "tls-site",
            "buses": [{"type": "tcp", "id": "gw", "host": "127.0.0.1", "port": 1}],
            "devices": [{"id": "m1", "bus": "gw", "unit": 1, "profile": "test", "poll_interval_s": 0.2}],
            "mqtt": {"host": "127.0.0.1", "port": tls_port, "username": "edge", "tls": {"ca_file": str(ca)}},
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
        }
    )
    fake = FakeTransport()
    fake.set_image(1, {(3, 0): 42})
    plan = DevicePlan("test", "meter", (ReadSpec(3, 0, 1),), _decode)
    agent = Agent(
        cfg, {"m1": plan}, SystemClock(), password="wrong-password", transport_factory=lambda bus: fake
    )
    runner = helpers.AgentThread(agent).start()
    try:
        helpers.wait_for(lambda: agent.outbox.depth >= 10, what="readings stored while refused")
        assert not agent.publisher.connected and agent.publisher.connects == 0
        assert agent.forwarder.published_readings == 0
    finally:
        runner.stop()
