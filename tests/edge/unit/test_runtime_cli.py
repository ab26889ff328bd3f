"""``epcwatch edge run --check`` on the shipped example site, config errors, and the shared clock options."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from epcwatch.cli import app
from epcwatch.clock import AcceleratedClock, SystemClock
from epcwatch.edge.runtime_cli import build_clock

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "site.yaml"


def test_example_site_validates_with_every_profile() -> None:
    res = CliRunner().invoke(app, ["edge", "run", "--config", str(EXAMPLE), "--check"])
    assert res.exit_code == 0, res.output
    doc = yaml.safe_load(EXAMPLE.read_text())
    assert f"{len(doc['devices'])} devices, {len(doc['buses'])} buses" in res.stdout


def test_config_mistake_is_reported_with_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text(EXAMPLE.read_text().replace("baud: 9600", "baud: fast"))
    res = CliRunner().invoke(app, ["edge", "run", "--config", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}:17: buses[0].rtu.baud" in res.stderr and "Traceback" not in res.output


def test_unknown_profile_in_site_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text(EXAMPLE.read_text().replace("profile: generic-ahu", "profile: acme-ahu-9"))
    res = CliRunner().invoke(app, ["edge", "run", "--config", str(bad), "--check"])
    assert res.exit_code == 2 and "acme-ahu-9" in res.stderr


def test_missing_password_file_is_named_not_read(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(EXAMPLE.read_text().replace("/etc/epcwatch/mqtt-password", str(tmp_path / "pw")))
    res = CliRunner().invoke(app, ["edge", "run", "--config", str(site)])
    assert res.exit_code == 2 and str(tmp_path / "pw") in res.stderr


def test_shared_clock_options_build_an_accelerated_clock() -> None:
    clock = build_clock("2025-01-01T00:00:00", 60.0, 1_800_000_000.0)
    assert isinstance(clock, AcceleratedClock)
    assert clock.start == 1_735_689_600.0 and clock.speed == 60.0 and clock.anchor == 1_800_000_000.0
    other = build_clock("2025-01-01T08:00:00+08:00", 60.0, 1_800_000_000.0)
    assert isinstance(other, AcceleratedClock) and other.start == clock.start  # same instant
    assert isinstance(build_clock(None, 1.0, None), SystemClock)
    with pytest.raises(ValueError, match="--sim-start"):
        build_clock(None, 10.0, None)


def test_status_without_an_agent_fails_cleanly(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["edge", "status", "--status-file", str(tmp_path / "none.json")])
    assert res.exit_code == 2 and "no agent status" in res.stderr
