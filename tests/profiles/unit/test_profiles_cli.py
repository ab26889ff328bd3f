"""``epcwatch profiles …`` and ``epcwatch edge plan`` through the root CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from epcwatch.cli import app
from epcwatch.profiles.dlt645_profile import list_dlt645_profiles, shipped_dlt645_paths
from epcwatch.profiles.model import list_profiles, load_profile, shipped_profile_paths
from epcwatch.profiles.planner import plan_profile


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "200")  # wide tables: one row per line
    return CliRunner()


def test_help_on_every_command(run: CliRunner) -> None:
    for args in (["profiles", "--help"], ["profiles", "list", "--help"], ["profiles", "show", "--help"],
                 ["profiles", "validate", "--help"], ["edge", "plan", "--help"]):
        res = run.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "Usage" in res.output


def test_list_shows_every_shipped_profile(run: CliRunner) -> None:
    res = run.invoke(app, ["profiles", "list"])
    assert res.exit_code == 0, res.output
    profiles = list_profiles()
    assert f"{len(profiles)} device profiles" in res.output
    for p in profiles:
        assert p.id in res.output


def test_list_and_show_dlt645_profiles(run: CliRunner) -> None:
    res = run.invoke(app, ["profiles", "list"])
    assert f"{len(list_dlt645_profiles())} DL/T 645 profiles" in res.output
    assert all(p.id in res.output for p in list_dlt645_profiles())
    res = run.invoke(app, ["profiles", "show", "chint-dtsu666-dlt645"])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.lstrip("│ ").startswith("active_power "))
    assert "02030000" in line and "XX.XXXX ±" in line and "×1000" in line and " W " in line


def test_show_prints_points_with_protocol_and_hex_address(run: CliRunner) -> None:
    res = run.invoke(app, ["profiles", "show", "eastron-sdm630"])
    assert res.exit_code == 0, res.output
    assert "source: Eastron SDM630" in res.output
    line = next(ln for ln in res.output.splitlines() if "energy_import" in ln)
    assert "kWh" in line and "input (FC4)" in line and "72 (0x0048)" in line and "float32" in line


def test_show_unknown_id_is_a_clear_error(run: CliRunner) -> None:
    res = run.invoke(app, ["profiles", "show", "eastron-sdm63"])
    assert res.exit_code == 2
    assert "did you mean eastron-sdm630" in res.output
    assert "Traceback" not in res.output


def test_validate_shipped_folder_passes(run: CliRunner) -> None:
    folder = shipped_profile_paths()["eastron-sdm630"].parent.parent
    res = run.invoke(app, ["profiles", "validate", str(folder)])
    assert res.exit_code == 0, res.output
    assert res.output.count("ok  ") == len(shipped_profile_paths()) + len(shipped_dlt645_paths())
    assert res.output.count("DL/T 645)") == len(shipped_dlt645_paths())


def test_validate_names_file_line_and_field_and_fails(run: CliRunner, tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("vendor: a\nmodel: b\nkind: meter\nsource: s\npoints:\n"
                    "  - {name: active_power, function: input, address: 0}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("vendor: a\nmodel: b\nkind: meter\nsource: s\npoints:\n"
                   "  - {name: active_power, function: input, address: 0}\n"
                   "  - {name: voltage_l9, function: input, address: 1}\n")
    res = run.invoke(app, ["profiles", "validate", str(good), str(bad)])
    assert res.exit_code == 2
    assert f"ok  {good}" in res.output
    assert f"{bad}:7: points[1].name: " in res.output
    assert "1 of 2 profiles invalid" in res.output


def test_plan_prints_every_read(run: CliRunner) -> None:
    res = run.invoke(app, ["edge", "plan", "--profile", "eastron-sdm630"])
    assert res.exit_code == 0, res.output
    plans = plan_profile(load_profile("eastron-sdm630"))
    for plan in plans:
        assert f"group {plan.group} (every {plan.interval:g} s): {len(plan.reads)} reads" in res.output
        for r in plan.reads:
            assert f"{r.address}..{r.end - 1} (0x{r.address:04X}..0x{r.end - 1:04X})" in res.output


def test_plan_max_gap_changes_the_plan(run: CliRunner) -> None:
    tight = run.invoke(app, ["edge", "plan", "--profile", "eastron-sdm630", "--max-gap", "0"])
    assert tight.exit_code == 0, tight.output
    n = len(plan_profile(load_profile("eastron-sdm630"), 0)[0].reads)
    assert f"group realtime (every 10 s): {n} reads" in tight.output
    assert n > len(plan_profile(load_profile("eastron-sdm630"))[0].reads)
    res = run.invoke(app, ["edge", "plan", "--profile", "eastron-sdm630", "--max-gap", "-1"])
    assert res.exit_code != 0


def test_plan_unknown_profile(run: CliRunner) -> None:
    res = run.invoke(app, ["edge", "plan", "--profile", "nope"])
    assert res.exit_code == 2
    assert "no shipped profile" in res.output


def test_edge_plan_of_a_dlt645_profile_lists_its_identifiers(run: CliRunner) -> None:
    res = run.invoke(app, ["edge", "plan", "--profile", "generic-dlt645-1997"])
    assert res.exit_code == 0, res.output
    assert "DL/T 645-1997, control code 01" in res.output
    line = next(ln for ln in res.output.splitlines() if "B611" in ln)
    assert "voltage_l1" in line and " 2 " in line
