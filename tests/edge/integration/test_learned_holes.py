"""A real pymodbus meter that refuses every register outside its map (exception 2): the agent
delivers every point of the shipped SDM630 profile, remembers the meter's holes, says so in its
health, and plans around them from the first poll after a restart; ``edge read`` reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from epcwatch.cli import app
from epcwatch.clock import SystemClock
from epcwatch.devservices.services import Mosquitto
from epcwatch.edge.agent import Agent
from epcwatch.edge.health import read_status_file
from epcwatch.edge.holes import HoleStore, device_key
from epcwatch.edge.profile_plan import device_plan
from epcwatch.edge.site import SiteConfig
from epcwatch.profiles.encode import register_image
from epcwatch.profiles.model import load_profile
from epcwatch.wire import telemetry_messages

pytestmark = pytest.mark.integration

PROFILE = "eastron-sdm630"
SITE = "holes"


def _values() -> dict[str, float]:
    # a distinct value per point, so a point decoded from the wrong registers cannot pass
    return {p.name: float(i + 1) * 1.5 for i, p in enumerate(load_profile(PROFILE).points)}


def _config(tmp_path: Path, modbus_port: int, mqtt_port: int) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "site": SITE,
            "buses": [{"type": "tcp", "id": "gw", "host": "127.0.0.1", "port": modbus_port}],
            "devices": [
                {"id": "m1", "bus": "gw", "unit": 1, "profile": PROFILE, "poll_interval_s": 0.5,
                 "timeout_s": 1}
            ],
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "reconnect_min_s": 1, "reconnect_max_s": 2},
            "outbox": {"path": str(tmp_path / "state" / "outbox.sqlite")},
            "health": {"interval_s": 1},
        }
    )


def _readings(sub: Any) -> list[dict[str, Any]]:
    out = []
    for topic, payload, _ in sub.snapshot():
        if topic.endswith("/telemetry"):
            out += [dict(r.values) for m in telemetry_messages(payload) for r in m.readings]
    return out


def test_every_readable_point_is_delivered_and_the_holes_survive_a_restart(
    tmp_path: Path, modbus_peer: Callable[..., Any], private_mosquitto: Mosquitto, helpers: Any
) -> None:
    values = _values()
    peer = modbus_peer({1: register_image(load_profile(PROFILE), values)}, refuse_gaps=True)
    cfg = _config(tmp_path, peer.port, private_mosquitto.port)
    sub = helpers.Subscriber(private_mosquitto.port, f"epc/v1/{SITE}/#")
    plan = device_plan(PROFILE)

    runner = helpers.AgentThread(Agent(cfg, {"m1": plan}, SystemClock())).start()
    try:
        helpers.wait_for(lambda: len(_readings(sub)) >= 2, what="two readings")
        helpers.wait_for(
            lambda: (read_status_file(cfg.status_file())["health"]["devices"][0].get("read_holes")),
            what="the learned holes in the status file",
        )
    finally:
        runner.stop()
    for reading in _readings(sub):
        assert reading == pytest.approx(values)  # every point, from the first reading on
    learned = HoleStore(cfg.outbox.path.with_name("learned-holes.json")).holes(
        "m1", device_key(PROFILE, "gw", 1)
    )
    assert learned and all(h.function == 4 for h in learned)
    status = read_status_file(cfg.status_file())["health"]["devices"][0]
    assert status["read_holes"] == sorted(str(h) for h in learned)

    # a restart plans around the holes from its first poll: no refused read, no probe
    learned_reads = len(device_plan(PROFILE, learned).reads)
    assert learned_reads > len(plan.reads)
    seen = len(_readings(sub))
    again = Agent(cfg, {"m1": plan}, SystemClock())
    restarted = again.pollers[0].devices[0].plan
    assert restarted.holes == learned and len(restarted.reads) == learned_reads
    runner = helpers.AgentThread(again).start()
    try:
        helpers.wait_for(lambda: len(_readings(sub)) > seen, what="a reading after the restart")
    finally:
        runner.stop()
    assert again.pollers[0].devices[0].plan is restarted  # nothing refused, nothing relearned
    assert _readings(sub)[-1] == pytest.approx(values)
    sub.close()

    res = CliRunner().invoke(app, ["edge", "status", "--status-file", str(cfg.status_file())])
    assert "refuses registers" in res.stdout


def test_edge_read_reports_what_failed_and_why(modbus_peer: Callable[..., Any]) -> None:
    values = _values()
    image = register_image(load_profile(PROFILE), values)
    del image["input"][0x46], image["input"][0x47]  # no frequency on this firmware
    peer = modbus_peer({1: image}, refuse_gaps=True)
    args = ["edge", "read", "--profile", PROFILE, "--host", "127.0.0.1", "--port", str(peer.port), "--json"]

    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1, res.output
    assert "1 of 30 points failed" in res.stderr
    assert "frequency: refused by the device (exception 2" in res.stderr
    assert "refuses registers" in res.stderr

    ok = CliRunner().invoke(app, [*args, "--partial-ok"])
    assert ok.exit_code == 0, ok.output
    import json

    got = json.loads(ok.stdout)
    assert set(got) == set(values) - {"frequency"}
