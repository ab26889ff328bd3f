"""The short demo the demo's integration tests run: its own services on free ports, one live day
at 4,320× (a simulated day in 20 s)."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from tests.support import EPCWATCH


def run_demo(state: Path, first: dt.date, last: dt.date, mqtt_port: int, influx_port: int) -> str:
    """Run ``epcwatch demo`` from ``first`` to ``last`` (its last day live); returns its output
    after checking it finished."""
    res = subprocess.run(
        [
            EPCWATCH,
            "demo",
            "--state-dir",
            str(state),
            "--from",
            first.isoformat(),
            "--to",
            last.isoformat(),
            "--live-days",
            "1",
            "--speed",
            "4320",
            "--mqtt-port",
            str(mqtt_port),
            "--influx-port",
            str(influx_port),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Demo done" in res.stdout and "services down" in res.stdout
    return res.stdout


def services_down(state: Path) -> None:
    subprocess.run([EPCWATCH, "services", "down", "--state-dir", str(state)], capture_output=True, timeout=60)
