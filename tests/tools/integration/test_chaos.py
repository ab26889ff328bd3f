"""A short chaos run of the whole pipeline (tools/chaos.py): kills and restarts, then the audit
must find every committed reading in InfluxDB exactly once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
PYTHON = sys.executable


def test_short_chaos_run_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    # the schedule goes in rounds that take every component down once: 7 components with
    # outages <= 4 s and gaps of ~2 s fit into 75 s with room to spare
    r = subprocess.run(
        [
            PYTHON,
            str(ROOT / "tools" / "chaos.py"),
            "--duration", "75",
            "--sites", "2",
            "--seed", "3",
            "--mean-gap", "2",
            "--max-down", "4",
            "--workdir", str(tmp_path / "work"),
            "--json", str(out),
        ],
        capture_output=True,
        text=True,
        timeout=540,
    )  # fmt: skip
    assert out.exists(), r.stdout[-3000:] + r.stderr[-3000:]
    fig = json.loads(out.read_text())
    assert fig["produced"] > 0
    assert fig["lost"] == 0, (fig["lost_examples"], r.stdout[-3000:])
    assert fig["duplicated"] == 0 and fig["unexpected"] == 0
    assert fig["stored"] == fig["produced"]
    assert fig["write_codes"] == {}
    assert fig["drained"]
    everything = {"broker", "influxdb", "both collectors", "collector-1", "collector-2"}
    everything |= {"edge site-1", "edge site-2"}
    assert set(fig["kills"]) == everything, fig["kills"]
    assert r.returncode == 0 and "RESULT OK" in r.stdout
