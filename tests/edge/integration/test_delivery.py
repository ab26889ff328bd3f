"""Nothing lost even when the broker fails: the real edge agent, Mosquitto, collector and
InfluxDB, with the broker as a conduit only. The edge deletes a reading when a collector has
acknowledged it end to end, so what the broker loses (a SIGKILL while the collectors are away,
an overflowing queue) is published again by the edge and stored."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from epcwatch.clock import SystemClock
from epcwatch.devservices.services import Influxd, Mosquitto, free_port
from epcwatch.edge.agent import Agent
from epcwatch.edge.health import read_status_file
from epcwatch.edge.poller import DevicePlan, ReadSpec
from epcwatch.edge.site import SiteConfig
from epcwatch.edge.transport import Registers
from epcwatch.testing.fake_transport import FakeTransport
from epcwatch.wire import Quality, Value
from tests.collector.conftest import CollectorProcess, collector_config, counts_per_device

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SITE = "d-site"
DEVICES = ("m1", "m2")


def _decode(answers: Sequence[Registers | None]) -> tuple[dict[str, Value], Quality]:
    regs = answers[0]
    if regs is None:
        return {}, "partial"
    return {"active_power": float(regs[0]), "energy_import": float(regs[1])}, "good"


PLAN = DevicePlan("test-meter", "meter", (ReadSpec(3, 0, 2),), _decode)


def _agent(tmp_path: Path, port: int, **mqtt: Any) -> tuple[Agent, FakeTransport]:
    cfg = SiteConfig.model_validate(
        {
            "site": SITE,
            "buses": [{"type": "tcp", "id": "gw", "host": "127.0.0.1", "port": 1}],
            "devices": [
                {
                    "id": d,
                    "bus": "gw",
                    "unit": i + 1,
                    "profile": "test",
                    "poll_interval_s": 0.2,
                    "timeout_s": 0.2,
                }
                for i, d in enumerate(DEVICES)
            ],
            "mqtt": {
                "host": "127.0.0.1",
                "port": port,
                "reconnect_min_s": 1,
                "reconnect_max_s": 1,
                "ack_timeout_s": 3,
                "ack_timeout_max_s": 6,
                **mqtt,
            },
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            "health": {"interval_s": 1},
        }
    )
    fake = FakeTransport()
    for i in range(len(DEVICES)):
        fake.set_image(i + 1, {(3, 0): 100 + i, (3, 1): 5000})
    agent = Agent(cfg, dict.fromkeys(DEVICES, PLAN), SystemClock(), transport_factory=lambda bus: fake)
    return agent, fake


def _collector(tmp_path: Path, broker: Mosquitto, influxdb: Influxd, database: str) -> CollectorProcess:
    cfg = collector_config(
        broker.port,
        influxdb.url,
        database,
        client_id="delivery-1",
        group="delivery",
        health={"interval_s": 3600},
    )
    return CollectorProcess(tmp_path, "collector", cfg)


def _drain_and_check(
    agent: Agent, fake: FakeTransport, runner: Any, influxdb: Influxd, database: str, helpers: Any
) -> None:
    runner.call(lambda: fake.dead.update({1, 2}))  # no new readings from here on
    helpers.wait_for(lambda: agent.outbox.depth == 0, 180, what=lambda: f"outbox depth {agent.outbox.depth}")
    produced = {d: agent.outbox.next_seq(d) for d in DEVICES}
    # every committed reading is in InfluxDB exactly once (the same series + timestamp is one point)
    helpers.wait_for(
        lambda: counts_per_device(influxdb.url, database) == produced,
        30,
        what=lambda: f"stored {counts_per_device(influxdb.url, database)} of {produced}",
    )


def test_broker_sigkill_with_collectors_away_loses_nothing(
    tmp_path: Path, influxdb: Influxd, database: str, helpers: Any
) -> None:
    # no snapshot before the kill: everything the broker holds for the absent collector is lost
    broker = Mosquitto(state_dir=tmp_path / "broker", port=free_port(), autosave_interval=3600)
    broker.start()
    collector = _collector(tmp_path, broker, influxdb, database).start()
    agent, fake = _agent(tmp_path, broker.port)
    runner = helpers.AgentThread(agent).start()
    try:
        helpers.wait_for(lambda: agent.forwarder.acked_readings >= 20, 60, what="live readings acknowledged")
        collector.kill()  # the collectors are away: the broker queues for their session
        published = agent.forwarder.published_readings
        helpers.wait_for(
            lambda: agent.forwarder.published_readings >= published + 30,
            60,
            what="30 readings accepted by the broker (PUBACK) while no collector stores anything",
        )
        assert agent.forwarder.unacked() >= 30 and agent.outbox.depth >= 30  # kept: not acknowledged
        # the agent's health shows it: readings awaiting acknowledgement, the oldest one's age
        helpers.wait_for(
            lambda: read_status_file(agent.cfg.status_file())["health"]["outbox_unacked"] >= 30,
            10,
            what="the status file to show the unacknowledged readings",
        )
        health = read_status_file(agent.cfg.status_file())["health"]
        assert health["outbox_oldest_age_s"] > 0 and health["outbox_depth"] >= health["outbox_unacked"]
        broker.kill()  # SIGKILL: the queue and the collector's session are gone
        broker.start()
        # until the collector subscribes again the broker answers 0x10 (no subscriber); after
        # that, what it lost comes again: after the ack timeout, or at once after a refusal
        collector.start()
        _drain_and_check(agent, fake, runner, influxdb, database, helpers)
    finally:
        runner.stop()
        collector.stop()
        broker.stop()


def test_broker_queue_overflow_loses_nothing(
    tmp_path: Path, influxdb: Influxd, database: str, helpers: Any
) -> None:
    # a queue of 5 messages per session; the edge sends 2 readings per message
    broker = Mosquitto(state_dir=tmp_path / "broker", port=free_port(), max_queued_messages=5)
    broker.start()
    collector = _collector(tmp_path, broker, influxdb, database).start()
    agent, fake = _agent(tmp_path, broker.port, max_readings_per_message=2, max_unacked=50)
    runner = helpers.AgentThread(agent).start()
    try:
        helpers.wait_for(lambda: agent.forwarder.acked_readings >= 10, 60, what="live readings acknowledged")
        collector.stop()
        published = agent.forwarder.published_messages
        # far more messages accepted by the broker than the session's queue can hold
        helpers.wait_for(
            lambda: agent.forwarder.published_messages >= published + 30, 60, what="30 messages published"
        )
        collector.start()
        _drain_and_check(agent, fake, runner, influxdb, database, helpers)
        assert agent.forwarder.resent_messages > 0  # the dropped ones came again
    finally:
        runner.stop()
        collector.stop()
        broker.stop()
