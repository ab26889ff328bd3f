"""``epcwatch edge run`` as a real process: SIGKILL mid-run (with a backlog waiting for a broker
that is down) and restart → no committed reading lost, order per device kept; ``edge status``."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from epcwatch.devservices.services import Mosquitto
from epcwatch.profiles.encode import register_image
from epcwatch.profiles.model import load_profile
from epcwatch.wire import TelemetryMessage
from tests.support import EPCWATCH

pytestmark = pytest.mark.integration

SITE = "kill-site"
UNITS = {"m1": 1, "m2": 2, "m3": 3}



def _image(power: float) -> dict[str, dict[int, int | bool]]:
    from epcwatch.edge.profile_plan import device_plan

    image = register_image(load_profile("eastron-sdm630"), {"active_power": power, "energy_import": 1000.0})
    tables = {1: "coil", 2: "discrete", 3: "holding", 4: "input"}
    for r in device_plan("eastron-sdm630").reads:
        for a in range(r.address, r.address + r.count):
            image.setdefault(tables[r.function], {}).setdefault(a, 0)
    return image


def _site(tmp_path: Path, modbus_port: int, mqtt_port: int) -> Path:
    devices = "\n".join(
        f"  - {{id: {d}, bus: gw, unit: {u}, profile: eastron-sdm630, poll_interval_s: 0.2,"
        f" timeout_s: 0.5, retries: 0, backoff_max_s: 1, tags: {{building: b1, category: C}}}}"
        for d, u in UNITS.items()
    )
    text = f"""\
site: {SITE}
buses:
  - {{type: tcp, id: gw, host: 127.0.0.1, port: {modbus_port}, max_concurrency: 2}}
devices:
{devices}
mqtt: {{host: 127.0.0.1, port: {mqtt_port}, reconnect_min_s: 1, reconnect_max_s: 1}}
outbox: {{path: data/outbox.sqlite}}
health: {{interval_s: 1}}
"""
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


def _start(site: Path, tmp_path: Path) -> subprocess.Popen[bytes]:
    log = open(tmp_path / "agent.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen([EPCWATCH, "edge", "run", "--config", str(site)], stdout=log, stderr=log)
    finally:
        log.close()


def _db(tmp_path: Path, sql: str) -> list[Any]:
    db = sqlite3.connect(tmp_path / "data" / "outbox.sqlite", timeout=30)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _depth(tmp_path: Path) -> int:
    try:
        return int(_db(tmp_path, "SELECT COUNT(*) FROM readings")[0][0])
    except sqlite3.Error:
        return -1


def _received(sub: Any) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {d: [] for d in UNITS}
    for topic, payload, _ in sub.snapshot():
        if topic.endswith("/telemetry"):
            m = TelemetryMessage.model_validate_json(payload)
            out[m.device] += [r.seq for r in m.readings]
    return out


def _first(seqs: list[int]) -> list[int]:
    """Arrival order with QoS 1 re-deliveries removed (first occurrence kept)."""
    return list(dict.fromkeys(seqs))


def test_sigkill_with_a_backlog_then_restart_loses_no_committed_reading(
    tmp_path: Path, private_mosquitto: Mosquitto, modbus_peer: Callable[..., Any], helpers: Any
) -> None:
    peer = modbus_peer({u: _image(100.0 * u) for u in UNITS.values()})
    sub = helpers.Subscriber(
        private_mosquitto.port, f"epc/v1/{SITE}/+/telemetry", client_id="kill-sub", ack=True
    )
    site = _site(tmp_path, peer.port, private_mosquitto.port)
    agent = _start(site, tmp_path)
    try:
        helpers.wait_for(lambda: all(len(s) >= 5 for s in _received(sub).values()), what="live readings")
        # uplink down: the backlog grows in the outbox; then the power cut
        private_mosquitto.stop()
        helpers.wait_for(lambda: _depth(tmp_path) >= 60, what="a backlog of 60 readings")
        agent.send_signal(signal.SIGKILL)
        agent.wait(30)
        committed = dict(_db(tmp_path, "SELECT device, next_seq FROM device_seq"))
        assert set(committed) == set(UNITS) and all(n >= 5 for n in committed.values())
        private_mosquitto.start()
        agent = _start(site, tmp_path)
        helpers.wait_for(
            lambda: all(len(set(s)) >= committed[d] + 5 for d, s in _received(sub).items()),
            what="the backlog replayed and new readings after the restart",
        )
        status = subprocess.run(
            [EPCWATCH, "edge", "status", "--config", str(site)], capture_output=True, text=True, timeout=60
        )
        assert status.returncode == 0, status.stdout + status.stderr
        assert "running" in status.stdout and "m1" in status.stdout
        peer.stop()  # no new readings: let the outbox drain to empty
        helpers.wait_for(lambda: _depth(tmp_path) == 0, what="the outbox to drain")
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(60) == 0
        final = dict(_db(tmp_path, "SELECT device, next_seq FROM device_seq"))
        # acknowledged means our subscriber had it
        helpers.wait_for(
            lambda: all(len(set(s)) == final[d] for d, s in _received(sub).items()),
            what="every committed reading at the subscriber",
        )
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(30)
        sub.close()
    got = _received(sub)
    for d in UNITS:
        assert final[d] > committed[d]  # seq went on after the restart, never reused
        assert _first(got[d]) == list(range(final[d])), d
    # a stopped agent says so
    status = subprocess.run(
        [EPCWATCH, "edge", "status", "--config", str(site)], capture_output=True, text=True, timeout=60
    )
    assert status.returncode == 1 and "NOT RUNNING" in status.stdout
    assert os.path.exists(tmp_path / "data" / "status.json")
