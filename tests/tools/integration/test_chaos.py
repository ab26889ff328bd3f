"""A short chaos run of the whole pipeline (tools/chaos.py): overlapping SIGKILLs of every
component (the broker also while both collectors are down), a broker queue of 5 messages and an
edge outbox filled to its cap; then the audit must find every committed reading in InfluxDB
exactly once, except those the outbox cap dropped by its counted policy."""

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
    # the schedule goes in rounds that take every component down once: 10 components with
    # outages <= 4 s, overlapping, and gaps of ~2 s fit into 75 s with room to spare
    r = subprocess.run(
        [
            PYTHON,
            str(ROOT / "tools" / "chaos.py"),
            "--duration", "75",
            "--sites", "2",
            "--seed", "3",
            "--mean-gap", "2",
            "--max-down", "4",
            "--overlap",
            "--max-queued", "5",
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
    # the cap site filled its outbox: readings dropped by the policy, counted, explain every
    # missing one; every other reading is stored
    assert fig["dropped_by_policy"] > 0
    assert fig["missing"] <= fig["dropped_by_policy"]
    assert fig["produced"] - fig["missing"] == fig["stored"]
    assert fig["write_codes"] == {}
    assert fig["drained"]
    everything = {"broker", "broker SIGKILL, collectors away", "influxdb", "both collectors"}
    everything |= {"collector-1", "collector-2", "edge site-1", "edge site-2", "edge cap-1", "outbox cap"}
    assert set(fig["kills"]) == everything, fig["kills"]
    assert r.returncode == 0 and "RESULT OK" in r.stdout
    assert r.stdout.splitlines()[-2:] == ["lost 0", "duplicated 0"]
