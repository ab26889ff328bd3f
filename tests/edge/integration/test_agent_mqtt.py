"""The whole agent against a real Mosquitto: wire contract, birth/will, health, and a 60 s broker
outage after which every reading arrives, in order per device."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from epcwatch.clock import SystemClock
from epcwatch.devservices.services import Mosquitto
from epcwatch.edge.agent import Agent
from epcwatch.edge.health import read_status_file
from epcwatch.edge.poller import DevicePlan, ReadSpec
from epcwatch.edge.site import SiteConfig
from epcwatch.edge.transport import Registers
from epcwatch.testing.fake_transport import FakeTransport
from epcwatch.wire import HealthMessage, Quality, StatusMessage, TelemetryMessage, Value

pytestmark = pytest.mark.integration

SITE = "t-site"
DEVICES = ("m1", "m2", "hvac1")


def _decode(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
    regs = answers[0]
    if regs is None:
        return {}, "partial"
    return {"active_power": float(regs[0]), "energy_import": float(regs[1])}, "good"


PLAN = DevicePlan("test-meter", "meter", (ReadSpec(3, 0, 2),), _decode)


def _config(tmp_path: Path, port: int, interval: float, **mqtt: Any) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": SITE,
            "buses": [{"type": "tcp", "id": "gw", "host": "127.0.0.1", "port": 1}],
            "devices": [
                {
                    "id": d,
                    "bus": "gw",
                    "unit": i + 1,
                    "profile": "test",
                    "poll_interval_s": interval,
                    "timeout_s": 0.2,
                    "tags": {"building": "b1", "category": "A"},
                }
                for i, d in enumerate(DEVICES)
            ],
            "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min_s": 1, "reconnect_max_s": 2, **mqtt},
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            "health": {"interval_s": 1},
        }
    )


def _fake() -> FakeTransport:
    fake = FakeTransport()
    for i in range(len(DEVICES)):
        fake.set_image(i + 1, {(3, 0): 100 + i, (3, 1): 5000})
    return fake


def _telemetry(msgs: list[tuple[str, bytes, bool]]) -> dict[str, list[int]]:
    """seqs per device in arrival order (duplicates from at-least-once delivery included)."""
    out: dict[str, list[int]] = {d: [] for d in DEVICES}
    for topic, payload, _ in msgs:
        if topic.endswith("/telemetry"):
            m = TelemetryMessage.model_validate_json(payload)
            out[m.device] += [r.seq for r in m.readings]
    return out


def _first_occurrences(seqs: list[int]) -> list[int]:
    seen: set[int] = set()
    out = []
    for s in seqs:
        if s not in seen:
            seen.add(s)
            out.append(s)
    return out


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_agent_publishes_the_wire_contract(
    tmp_path: Path, private_mosquitto: Mosquitto, helpers: Any, protocol: str
) -> None:
    sub = helpers.Subscriber(private_mosquitto.port, f"epc/v1/{SITE}/#")
    cfg = _config(tmp_path, private_mosquitto.port, interval=0.2, protocol=protocol)
    fake = _fake()
    agent = Agent(cfg, dict.fromkeys(DEVICES, PLAN), SystemClock(), transport_factory=lambda bus: fake)
    runner = helpers.AgentThread(agent).start()
    try:
        helpers.wait_for(
            lambda: all(len(s) >= 5 for s in _telemetry(sub.snapshot()).values()), what="5 readings each"
        )
        helpers.wait_for(
            lambda: any(
                all(d.polls_ok > 0 for d in HealthMessage.model_validate_json(p).devices)
                for t, p, _ in sub.snapshot()
                if t.endswith("/health")
            ),
            what="a health message after every device's first poll",
        )
    finally:
        runner.stop()
    helpers.wait_for(
        lambda: any(b'"offline"' in p for t, p, _ in sub.snapshot() if t.endswith("/status")), what="offline"
    )
    sub.close()
    msgs = sub.snapshot()
    status = [StatusMessage.model_validate_json(p) for t, p, _ in msgs if t.endswith("/status")]
    assert status[0].state == "online" and status[-1].state == "offline"
    telemetry = [TelemetryMessage.model_validate_json(p) for t, p, _ in msgs if t.endswith("/telemetry")]
    assert {m.device for m in telemetry} == set(DEVICES)
    m0 = next(m for m in telemetry if m.device == "m2")
    assert m0.kind == "meter" and m0.tags.building == "b1" and m0.tags.profile == "test-meter"
    assert m0.readings[0].values == {"active_power": 101.0, "energy_import": 5000.0}
    for seqs in _telemetry(msgs).values():
        assert _first_occurrences(seqs) == list(range(len(set(seqs))))
    health = [HealthMessage.model_validate_json(p) for t, p, _ in msgs if t.endswith("/health")]
    assert all({d.device for d in h.devices} == set(DEVICES) for h in health)
    assert all(d.polls_failed == 0 for h in health for d in h.devices)
    assert any(all(d.polls_ok > 0 and d.online for d in h.devices) for h in health)
    doc = read_status_file(cfg.status_file())
    assert doc["health"]["site"] == SITE and doc["health"]["outbox_depth"] >= 0


@pytest.mark.slow
def test_broker_outage_of_60_s_loses_nothing_and_keeps_order(
    tmp_path: Path, private_mosquitto: Mosquitto, helpers: Any
) -> None:
    """Mosquitto stopped for 60 s mid-run, then restarted: every committed reading arrives, in
    order per device (first occurrences; QoS 1 may duplicate), drained in batches."""
    sub = helpers.Subscriber(private_mosquitto.port, f"epc/v1/{SITE}/+/telemetry", ack=True)
    cfg = _config(tmp_path, private_mosquitto.port, interval=0.5)
    fake = _fake()
    agent = Agent(cfg, dict.fromkeys(DEVICES, PLAN), SystemClock(), transport_factory=lambda bus: fake)
    runner = helpers.AgentThread(agent).start()
    try:
        helpers.wait_for(
            lambda: all(len(s) >= 3 for s in _telemetry(sub.snapshot()).values()), what="live data"
        )
        private_mosquitto.stop()
        stopped_at = agent.stored
        time.sleep(60)  # the outage itself (not an assertion)
        assert not agent.publisher.connected
        backlog = agent.outbox.depth
        assert agent.stored > stopped_at and backlog > 0  # polling went on, readings were kept
        private_mosquitto.start()
        helpers.wait_for(lambda: agent.outbox.depth < backlog / 2, what="the backlog to drain")
        runner.call(lambda: fake.dead.update({1, 2, 3}))  # stop new readings
        helpers.wait_for(lambda: agent.outbox.depth == 0, what="every reading acknowledged end to end")
        expected = {d: agent.outbox.next_seq(d) for d in DEVICES}
        helpers.wait_for(
            lambda: all(len(set(s)) == expected[d] for d, s in _telemetry(sub.snapshot()).items()),
            what="every reading at the subscriber",
        )
    finally:
        runner.stop()
        sub.close()
    seqs = _telemetry(sub.snapshot())
    for d in DEVICES:
        assert _first_occurrences(seqs[d]) == list(range(expected[d])), d
    # the backlog went out several readings per message
    sizes = [len(orjson.loads(p)["readings"]) for t, p, _ in sub.snapshot() if t.endswith("/telemetry")]
    assert max(sizes) >= 20
