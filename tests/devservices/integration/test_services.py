from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from epcwatch import __version__
from epcwatch.devservices.services import Influxd, Mosquitto, ServiceError, free_port, influx_query, mqtt_ping
from tests.support import EPCWATCH

pytestmark = pytest.mark.integration

EPC = EPCWATCH


def test_cli_services_up_status_down(tmp_path: Path) -> None:
    mq, ip = free_port(), free_port()
    args = ["--state-dir", str(tmp_path)]
    up = subprocess.run(
        [EPC, "services", "up", *args, "--mqtt-port", str(mq), "--influx-port", str(ip)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert up.returncode == 0, up.stderr
        assert mqtt_ping("127.0.0.1", mq)
        doc = influx_query(f"http://127.0.0.1:{ip}", "SHOW DATABASES")
        assert ["epcwatch"] in doc["results"][0]["series"][0]["values"]  # type: ignore[index]
        st = subprocess.run([EPC, "services", "status", *args], capture_output=True, text=True, timeout=60)
        assert st.returncode == 0 and st.stdout.count(" up ") == 2, st.stdout
    finally:
        down = subprocess.run([EPC, "services", "down", *args], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0
    assert not mqtt_ping("127.0.0.1", mq)
    st = subprocess.run([EPC, "services", "status", *args], capture_output=True, text=True, timeout=60)
    assert st.returncode == 1


def test_missing_binary_names_the_package(tmp_path: Path) -> None:
    svc = Influxd(state_dir=tmp_path, port=free_port(), binary="influxd-not-here")
    with pytest.raises(ServiceError, match="apt-get install influxdb"):
        svc.start()


def test_port_in_use_is_a_clear_error(mosquitto: Mosquitto, tmp_path: Path) -> None:
    other = Mosquitto(state_dir=tmp_path, port=mosquitto.port)
    with pytest.raises(ServiceError, match="already in use"):
        other.start()


def test_version_and_help_of_every_command() -> None:
    v = subprocess.run([EPC, "--version"], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0 and v.stdout.strip() == __version__
    # every command and group answers --help
    from typer.main import get_command

    from epcwatch.cli import app

    root = get_command(app)
    paths: list[list[str]] = []

    def walk(cmd: object, prefix: list[str]) -> None:
        paths.append(prefix)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*prefix, name])

    walk(root, [])
    assert len(paths) > 30
    for p in paths:
        r = subprocess.run([EPC, *p, "--help"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "Usage" in r.stdout, (p, r.stderr)
