"""Frozen baselines: freeze, reload to identical savings, detect tampering and changed data."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from epcwatch.cli import app
from epcwatch.savings import synthetic
from epcwatch.savings.csvfit import fit_csv, freeze_csv
from epcwatch.savings.engine import Period
from epcwatch.savings.errors import DataError
from epcwatch.savings.frozen import FrozenBaseline

BASE, REP = Period.parse("2023-01-01/2023-12-31"), Period.parse("2024-01-01/2024-12-31")


@pytest.fixture(scope="module")
def daily_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("frozen")
    frame = synthetic.building(seed=11, frequency="daily", rho=0.5, lag_hours=12)
    path = d / "daily.csv"
    synthetic.to_csv(frame, str(path), daily_rows=True)
    return path


@pytest.fixture(scope="module")
def hourly_csv(tmp_path_factory):
    d = tmp_path_factory.mktemp("frozenh")
    frame = synthetic.building(seed=12, frequency="hourly", rho=0.5, lag_hours=6)
    path = d / "hourly.csv"
    synthetic.to_csv(frame, str(path))
    return path


@pytest.mark.parametrize(("which", "model"), [("daily_csv", "auto"), ("hourly_csv", "towt")])
def test_reloaded_frozen_baseline_gives_identical_savings(request, which, model):
    path = request.getfixturevalue(which)
    fb = freeze_csv(path, BASE, created="2024-01-05T08:00:00Z", model=model, calendar="cn")
    again = FrozenBaseline.from_json(fb.to_json())
    assert again.hash == fb.hash
    direct = fit_csv(path, BASE, REP, model=model, calendar="cn")
    frozen = fit_csv(path, BASE, REP, model=again.model.type, calendar="cn", frozen=again)
    assert frozen.summary.avoided_energy_use == direct.summary.avoided_energy_use
    assert frozen.summary.uncertainty == direct.summary.uncertainty
    doc = frozen.to_dict()
    assert doc["frozen_baseline"]["loaded"] is True
    assert doc["frozen_baseline"]["sha256"] == fb.hash
    assert doc["frozen_baseline"]["data_changes"]["changed"] is False
    assert direct.to_dict()["frozen_baseline"] == {"loaded": False}


def test_a_tampered_frozen_baseline_is_refused(daily_csv):
    fb = freeze_csv(daily_csv, BASE, created="2024-01-05T08:00:00Z")
    doc = json.loads(fb.to_json())
    doc["data"][10][1] += 1.0
    with pytest.raises(DataError, match="altered"):
        FrozenBaseline.from_json(json.dumps(doc))


def test_changed_baseline_data_is_flagged_with_dates(daily_csv, tmp_path):
    fb = freeze_csv(daily_csv, BASE, created="2024-01-05T08:00:00Z")
    before = fit_csv(daily_csv, BASE, REP, frozen=fb)
    df = pd.read_csv(daily_csv)
    df.loc[df["timestamp"] == "2023-03-15", "energy"] += 250.0
    edited = tmp_path / "edited.csv"
    df.to_csv(edited, index=False)
    after = fit_csv(edited, BASE, REP, frozen=fb)
    ch = after.to_dict()["frozen_baseline"]["data_changes"]
    assert ch["changed"] is True and ch["count"] == 1
    assert ch["changes"][0]["period"].startswith("2023-03-15")
    assert ch["changes"][0]["difference"] == pytest.approx(250.0, abs=1e-3)
    # the frozen model and rows are used, so the savings do not move
    assert after.summary.avoided_energy_use == before.summary.avoided_energy_use


def test_cli_freeze_then_fit(daily_csv, tmp_path):
    out = tmp_path / "baseline.json"
    res = CliRunner().invoke(
        app,
        [
            "savings",
            "baseline",
            "freeze",
            "--data",
            str(daily_csv),
            "--baseline",
            str(BASE),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        app,
        ["savings", "fit", "--data", str(daily_csv), "--frozen", str(out), "--reporting", str(REP), "--json"],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output[res.output.index("{") :])  # the runner mixes the log line in
    assert doc["frozen_baseline"]["sha256"] == json.loads(out.read_text())["sha256"]
    assert doc["model"]["selection_criterion"].startswith("frozen baseline")
