"""`epcwatch savings fit`: the JSON interface, hourly/daily/monthly input, errors, saved models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from epcwatch.cli import app
from epcwatch.savings import synthetic
from epcwatch.savings.models import FittedModel
from epcwatch.savings.savings import avoided_energy
from epcwatch.savings.selection import evaluate

BASE = "2024-01-01/2024-12-31"
REP = "2025-01-01/2025-12-31"


@pytest.fixture(scope="module")
def csvs(tmp_path_factory, world):
    d = tmp_path_factory.mktemp("csv")
    synthetic.to_csv(world["hourly"], str(d / "hourly.csv"))
    synthetic.to_csv(world["daily"], str(d / "daily.csv"), daily_rows=True)
    f = world["daily"].assign(temperature=world["daily"]["temperature"] * 1.8 + 32)
    synthetic.to_csv(f, str(d / "daily_f.csv"), daily_rows=True)
    return d


def fit(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["savings", "fit", *args])
    return res.exit_code, res.output


def fit_json(*args: str) -> dict:
    code, out = fit(*args, "--json")
    assert code == 0, out
    return json.loads(out[out.index("{") :])


def true_savings(world) -> float:
    d = world["daily"]
    r = d[d["date"] >= "2025-01-01"]
    return float((r["counterfactual"] - r["energy"]).sum())


def test_console_script_prints_one_json_object(csvs):
    """The exact interface, as an external script calls it (stdout holds only the JSON)."""
    exe = Path(sys.executable).parent / "epcwatch"
    proc = subprocess.run(
        [
            str(exe),
            "savings",
            "fit",
            "--data",
            str(csvs / "daily.csv"),
            "--baseline",
            BASE,
            "--reporting",
            REP,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    for key in ("type", "parameters"):
        assert key in doc["model"]
    for key in ("r2", "cvrmse", "nmbe", "n"):
        assert isinstance(doc["baseline"][key], int | float)
    for key in ("avoided_energy_use", "fractional", "fsu_68", "fsu_90"):
        assert isinstance(doc["savings"][key], float)
    assert isinstance(doc["warnings"], list)
    assert doc["baseline"]["n"] == 366


def test_daily_fit_estimates_known_savings(csvs, world):
    doc = fit_json("--data", str(csvs / "daily.csv"), "--baseline", BASE, "--reporting", REP)
    s = doc["savings"]
    assert abs(s["avoided_energy_use"] - true_savings(world)) <= s["uncertainty_90"]
    assert s["fractional"] == pytest.approx(s["avoided_energy_use"] / s["adjusted_baseline"])
    assert 0 < s["fsu_68"] < s["fsu_80"] < s["fsu_90"]
    assert doc["baseline"]["g14"]["pass"] is True
    assert doc["model"]["frequency"] == "daily"


def test_hourly_rows_are_aggregated_to_days(csvs):
    daily = fit_json("--data", str(csvs / "daily.csv"), "--baseline", BASE, "--reporting", REP)
    hourly = fit_json("--data", str(csvs / "hourly.csv"), "--baseline", BASE, "--reporting", REP)
    assert hourly["model"]["frequency"] == "daily"
    assert hourly["baseline"]["n"] == daily["baseline"]["n"] == 366
    assert hourly["savings"]["avoided_energy_use"] == pytest.approx(
        daily["savings"]["avoided_energy_use"], rel=1e-3
    )


def test_towt_on_hourly_rows(csvs, world):
    doc = fit_json(
        "--data", str(csvs / "hourly.csv"), "--baseline", BASE, "--reporting", REP, "--model", "towt"
    )
    assert doc["model"]["type"] == "towt" and doc["model"]["frequency"] == "hourly"
    assert doc["baseline"]["n"] == 366 * 24
    # a regression baseline is judged on G14's regression path (12 reporting months: 25 %);
    # the calibrated-simulation limits are shown beside it for reference
    assert doc["baseline"]["g14"]["cvrmse_limit"] == 25.0
    assert doc["baseline"]["g14"]["path"] == "regression"
    assert doc["baseline"]["g14_calibrated_simulation"]["cvrmse_limit"] == 30.0
    s = doc["savings"]
    assert abs(s["avoided_energy_use"] - true_savings(world)) <= s["uncertainty_90"]


def test_fahrenheit_input_gives_the_same_savings(csvs):
    c = fit_json("--data", str(csvs / "daily.csv"), "--baseline", BASE, "--reporting", REP, "--model", "5p")
    f = fit_json(
        "--data",
        str(csvs / "daily_f.csv"),
        "--baseline",
        BASE,
        "--reporting",
        REP,
        "--model",
        "5p",
        "--temp-unit",
        "F",
    )
    assert f["savings"]["avoided_energy_use"] == pytest.approx(c["savings"]["avoided_energy_use"], rel=1e-3)


def test_monthly_rows(tmp_path, world):
    d = world["daily"].set_index("date").resample("MS").agg({"energy": "sum", "temperature": "mean"})
    path = tmp_path / "monthly.csv"
    pd.DataFrame(
        {"timestamp": d.index.strftime("%Y-%m-%d"), "energy": d["energy"], "temperature": d["temperature"]}
    ).to_csv(path, index=False)
    doc = fit_json("--data", str(path), "--baseline", BASE, "--reporting", REP)
    assert doc["model"]["frequency"] == "monthly" and doc["baseline"]["n"] == 12
    assert doc["baseline"]["g14_calibrated_simulation"]["cvrmse_limit"] == 15.0


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("time,kwh\n2024-01-01,1\n", (), "missing column(s) timestamp, energy, temperature"),
        ("timestamp,energy,temperature\nyesterday,1,2\n2024-01-02,1,2\n", (), "ISO 8601"),
        (None, ("--baseline", "2024-12-31/2024-01-01"), "ends before it starts"),
        (None, ("--baseline", "2024-01-01"), "START/END"),
        (None, ("--reporting", "2027-01-01/2027-12-31"), "no rows in the reporting period"),
        (None, ("--reporting", "2024-06-01/2025-05-31"), "overlap"),
        (None, ("--model", "7p"), "unknown model '7p'"),
        (None, ("--temp-unit", "K"), "temperature unit must be C or F"),
    ],
)
def test_clear_errors(tmp_path, csvs, content, args, message):
    data = csvs / "daily.csv"
    if content is not None:
        data = tmp_path / "bad.csv"
        data.write_text(content)
    opts = {"--baseline": BASE, "--reporting": REP}
    for k, v in zip(args[::2], args[1::2], strict=True):
        opts[k] = v
    extra = [a for kv in opts.items() for a in kv]
    code, out = fit("--data", str(data), *extra)
    assert code == 2, out
    assert message in out and "Traceback" not in out


def test_insufficient_baseline_refused_unless_overridden(csvs):
    code, out = fit(
        "--data", str(csvs / "daily.csv"), "--baseline", "2024-06-01/2024-12-31", "--reporting", REP
    )
    assert code == 2 and "baseline disqualified" in out and "--allow-insufficient" in out
    doc = fit_json(
        "--data",
        str(csvs / "daily.csv"),
        "--baseline",
        "2024-06-01/2024-12-31",
        "--reporting",
        REP,
        "--allow-insufficient",
    )
    assert "epcwatch.sufficiency.baseline_too_short" in {w["qualified_name"] for w in doc["warnings"]}


def test_saved_model_reloads_to_identical_savings(tmp_path, csvs):
    """Round trip: fit → --save-model → reload → the same predictions and savings."""
    model_file = tmp_path / "model.json"
    code, out = fit(
        "--data",
        str(csvs / "daily.csv"),
        "--baseline",
        BASE,
        "--reporting",
        REP,
        "--json",
        "--save-model",
        str(model_file),
    )
    assert code == 0, out
    doc = json.loads(out[out.index("{") :])
    model = FittedModel.from_dict(json.loads(model_file.read_text()))
    assert model.to_dict() == doc["model"]["saved"]
    from epcwatch.savings.csvdata import read_csv
    from epcwatch.savings.engine import Period, complete_days, daily_observations

    df, _ = read_csv(csvs / "daily.csv")
    b = daily_observations(complete_days(df, Period.parse(BASE)))
    r = daily_observations(complete_days(df, Period.parse(REP)))
    fr = evaluate(model, b.select(b.valid()))
    _, summary = avoided_energy(model, fr.stats, r, uncertainty=fr.uncertainty)
    assert summary.avoided_energy_use == doc["savings"]["avoided_energy_use"]
    assert summary.fsu["90"] == doc["savings"]["fsu_90"]
    assert np.isclose(fr.stats.cvrmse, doc["baseline"]["cvrmse"], rtol=0, atol=0)


def test_freeze_and_fit_check_the_file_alike(tmp_path):
    """One preparation for `fit` and `baseline freeze`: the same refusal, worded the same."""
    from epcwatch.savings.csvfit import fit_csv, freeze_csv
    from epcwatch.savings.engine import Period
    from epcwatch.savings.errors import DataError

    path = tmp_path / "m.csv"
    path.write_text("timestamp,energy,temperature\n2024-01-01,10,5\n2024-01-02,11,6\n")
    far = Period.parse("2020-01-01/2020-12-31")
    with pytest.raises(DataError) as fit_err:
        fit_csv(path, far, Period.parse("2024-01-01/2024-01-02"))
    with pytest.raises(DataError) as freeze_err:
        freeze_csv(path, far, created="2026-12-06T00:00:00Z")
    assert "the file covers 2024-01-01 to 2024-01-02" in str(freeze_err.value)
    assert str(freeze_err.value) == str(fit_err.value)
    with pytest.raises(DataError, match="unknown calendar"):
        freeze_csv(path, far, created="2026-12-06T00:00:00Z", calendar="moon")
