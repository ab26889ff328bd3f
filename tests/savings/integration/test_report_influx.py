"""`epcwatch savings report` against a real InfluxDB holding a synthetic site with known savings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from epcwatch.cli import app
from epcwatch.devservices.services import Influxd, influx_query
from tests.savings.conftest import epoch_local, site_lines, write_lines

pytestmark = pytest.mark.integration


def _report(influxdb: Influxd, database: str, contract: Path, out: Path) -> dict:
    res = CliRunner().invoke(
        app,
        [
            "savings",
            "report",
            "--contract",
            str(contract),
            "--influx-url",
            influxdb.url,
            "--database",
            database,
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    return json.loads((out / "report.json").read_text())


def test_report_option_c_from_rollups(influxdb, database, world, contract_file, tmp_path):
    write_lines(influxdb.url, database, site_lines(world["hourly"], world["light"]))
    out = tmp_path / "out"
    doc = _report(influxdb, database, contract_file("contract.yaml"), out)
    d = world["daily"]
    rep = d[d["date"] >= "2025-01-01"]
    true = float((rep["counterfactual"] - rep["energy"]).sum())
    est = doc["savings"]["avoided_energy_use"]
    assert abs(est - true) <= doc["savings"]["uncertainty_90"], (est, true)
    assert doc["data"]["energy_source"] == "energy_interval 1d"
    assert doc["baseline"]["n"] == 366
    # daily savings written back for the dashboards, one point per reporting day
    q = influx_query(
        influxdb.url,
        'SELECT count("savings"), sum("savings") FROM "savings" WHERE "contract"=\'b1-whole-building\'',
        db=database,
    )
    values = q["results"][0]["series"][0]["values"][0]
    assert values[1] == 365
    assert values[2] == pytest.approx(est, rel=1e-6)
    q = influx_query(
        influxdb.url, 'SELECT * FROM "savings_model" WHERE "contract"=\'b1-whole-building\'', db=database
    )
    row = dict(
        zip(q["results"][0]["series"][0]["columns"], q["results"][0]["series"][0]["values"][0], strict=True)
    )
    assert row["cv_rmse"] == pytest.approx(doc["baseline"]["cvrmse"])
    assert row["n_points"] == 366 and row["n_params"] == doc["baseline"]["p"]
    assert row["fractional_uncertainty"] == pytest.approx(100 * doc["savings"]["fsu_68"])
    assert row["savings_uncertainty"] == pytest.approx(doc["savings"]["uncertainty_68"])
    assert row["model"] == doc["model"]["type"].upper()
    csv = pd.read_csv(out / "report.csv")
    assert len(csv) == 365 and np.isclose(csv["savings"].sum(), est, rtol=1e-4)
    assert (out / "report.html").stat().st_size > 10_000
    # the synthetic retrofit cuts 15 % of the load in any weather: so do normalised savings
    assert doc["normalised"]["fractional"] == pytest.approx(0.15, abs=0.01)
    # value, tce and CO2 by hand: blended TOU price 0.35·1.05 + 0.55·0.68 + 0.10·0.32 = 0.7735 CNY/kWh,
    # stipulated demand 40 kW × 32 CNY/kW-month × 12 months
    assert doc["cost"]["energy_price"] == pytest.approx(0.7735)
    assert doc["cost"]["demand"] == pytest.approx(40 * 32 * 12)
    assert doc["cost"]["total"] == pytest.approx(est * 0.7735 + 15360)
    assert doc["conversions"]["tce"] == pytest.approx(est * 0.1229 / 1000)
    assert doc["conversions"]["tce_equal_value"] == pytest.approx(est * 0.2829 / 1000)
    assert doc["conversions"]["co2_tonnes"] == pytest.approx(est * 0.5703 / 1000)
    g = doc["guarantee"]
    assert g["guaranteed"] == pytest.approx(800000) and g["met"] is (est >= 800000)


def test_report_option_b_lighting_with_adjustment(influxdb, database, world, contract_file, tmp_path):
    write_lines(influxdb.url, database, site_lines(world["hourly"], world["light"]))
    doc = _report(influxdb, database, contract_file("contract-lighting.yaml"), tmp_path / "out")
    light = world["light"]
    rep = light[light["date"] >= "2025-01-01"]
    true = float((rep["counterfactual"] - rep["energy"]).sum())
    adj = doc["savings"]["adjustments"]
    assert adj < 0  # a 2 % baseline reduction over July and August
    assert doc["adjustments"][0]["applied_kwh"] == pytest.approx(adj)
    est = doc["savings"]["avoided_energy_use"] - adj  # compare like with like: truth has no adjustment
    assert abs(est - true) <= doc["savings"]["uncertainty_90"], (est, true)
    assert doc["model"]["day_type"] is True


def test_report_falls_back_to_raw_counters(influxdb, database, world, contract_file, tmp_path):
    write_lines(influxdb.url, database, site_lines(world["hourly"], world["light"], rollups=False))
    doc = _report(influxdb, database, contract_file("contract.yaml"), tmp_path / "out")
    assert doc["data"]["energy_source"] == "raw counters"
    d = world["daily"]
    rep = d[d["date"] >= "2025-01-01"]
    true = float((rep["counterfactual"] - rep["energy"]).sum())
    assert abs(doc["savings"]["avoided_energy_use"] - true) <= doc["savings"]["uncertainty_90"]


def test_report_without_data_is_a_clear_error(influxdb, database, contract_file, tmp_path):
    res = CliRunner().invoke(
        app,
        [
            "savings",
            "report",
            "--contract",
            str(contract_file("contract.yaml")),
            "--influx-url",
            influxdb.url,
            "--database",
            database,
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert res.exit_code == 2
    assert "no daily energy" in res.output and "b1-main" in res.output


def test_weather_from_csv_and_no_write(influxdb, database, world, contract_file, tmp_path):
    lines = [ln for ln in site_lines(world["hourly"], world["light"]) if not ln.startswith("sensor,")]
    write_lines(influxdb.url, database, lines)
    h = world["hourly"]
    (tmp_path / "weather.csv").write_text(
        "timestamp,temperature\n"
        + "".join(
            f"{t:%Y-%m-%dT%H:%M:%S}+08:00,{v * 1.8 + 32:.3f}\n"
            for t, v in zip(h["timestamp"], h["temperature"], strict=True)
        )
    )
    contract = contract_file(
        "contract.yaml",
        {
            "  influx: {measurement: sensor, device: weather, field: outdoor_temp}": (
                "  csv: {path: weather.csv, unit: F}"
            )
        },
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "savings",
            "report",
            "--contract",
            str(contract),
            "--influx-url",
            influxdb.url,
            "--database",
            database,
            "--out",
            str(out),
            "--no-write",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "report.json").read_text())
    d = world["daily"]
    rep = d[d["date"] >= "2025-01-01"]
    true = float((rep["counterfactual"] - rep["energy"]).sum())
    assert abs(doc["savings"]["avoided_energy_use"] - true) <= doc["savings"]["uncertainty_90"]
    csv = pd.read_csv(out / "report.csv")
    assert csv["temperature"].to_numpy() == pytest.approx(rep["temperature"].to_numpy(), abs=1e-3)
    q = influx_query(influxdb.url, 'SELECT count("savings") FROM "savings"', db=database)
    assert "series" not in q["results"][0]  # nothing written back


def test_several_meters_add_up_and_a_missing_day_counts_as_missing(influxdb, database, world, contract_file):
    lines = site_lines(world["hourly"], world["light"])
    # drop b1-light's rollup for 2024-03-05 (local day): that day must not count for the sum
    gone = int(pd.Timestamp("2024-03-05", tz="Asia/Shanghai").timestamp())
    lines = [
        ln
        for ln in lines
        if not (ln.startswith("energy_interval") and "b1-light" in ln and ln.endswith(f" {gone}"))
    ]
    write_lines(influxdb.url, database, lines)
    path = contract_file(
        "contract.yaml", {"  - device: b1-main ": "  - {building: b1, category: A}\n  - device: b1-main "}
    )
    from epcwatch.savings.contract import load_contract
    from epcwatch.savings.influx import InfluxSource
    from epcwatch.savings.runner import compute

    res = compute(load_contract(path), InfluxSource(influxdb.url, database), path)
    assert res.doc["data"]["devices"] == ["b1-light", "b1-main"]
    base = res.baseline.set_index("date")["energy"]
    d = world["daily"].set_index("date")["energy"]
    light = world["light"].set_index("date")["energy"]
    assert base["2024-03-04"] == pytest.approx(d["2024-03-04"] + light["2024-03-04"], rel=1e-6)
    assert np.isnan(base["2024-03-05"])
    assert int(np.isfinite(base).sum()) == 365


def test_contract_variable_from_an_influx_series(influxdb, database, world, contract_file, tmp_path):
    """A contract's `variables` entry reads its daily mean from InfluxDB like the weather."""
    h = world["hourly"]
    days = h["timestamp"].dt.normalize()
    level = dict(zip(days.unique(), np.random.default_rng(5).uniform(50, 400, days.nunique()), strict=True))
    occ = [
        f"sensor,site=civic-centre,device=counter occupancy={level[d]:.1f} {t}"
        for d, t in zip(days, epoch_local(h["timestamp"]), strict=True)
    ]
    write_lines(influxdb.url, database, site_lines(world["hourly"], world["light"]) + occ)
    spec = "{name: occupancy, influx: {measurement: sensor, device: counter, field: occupancy}}"
    path = contract_file("contract.yaml", {"adjustments: []": f"adjustments: []\nvariables:\n  - {spec}"})
    doc = _report(influxdb, database, path, tmp_path / "out")
    assert "variable_occupancy" in doc["model"]["parameters"]
    assert not doc.get("normalised")  # the normal year holds temperatures only
