"""deploy/grafana/: the provisioning files Grafana reads, and the alert rules' queries run
against real InfluxDB the way Grafana's alerting would (``$timeFilter`` from the rule's
relative time range)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from epcwatch.dashboards.influx import InfluxClient
from epcwatch.dashboards.influxql import expand
from epcwatch.dashboards.model import DATASOURCE_NAME, FOLDER
from epcwatch.devservices.services import Influxd
from tests.support import EPCWATCH

sys.path.insert(0, str(Path(__file__).parent))
import dash_simdata as simdata

ROOT = Path(__file__).resolve().parents[3]
PROV = ROOT / "deploy" / "grafana" / "provisioning"
EPC = EPCWATCH
ENV_REF = re.compile(r"^\$\{[A-Z][A-Z0-9_]*\}$")


def load(rel: str) -> dict[str, Any]:
    doc = yaml.safe_load((PROV / rel).read_text())
    assert doc["apiVersion"] == 1
    return doc


def test_datasource_takes_everything_site_specific_from_the_environment() -> None:
    (ds,) = load("datasources/epcwatch.yaml")["datasources"]
    assert ds["type"] == "influxdb" and ds["jsonData"]["version"] == "InfluxQL"
    assert ds["uid"] == ds["name"] == DATASOURCE_NAME  # what the dashboards' variable selects
    for value in (ds["url"], ds["user"], ds["jsonData"]["dbName"], ds["secureJsonData"]["password"]):
        assert ENV_REF.match(value), value


def test_dashboard_provider_points_at_the_folder() -> None:
    (p,) = load("dashboards/epcwatch.yaml")["providers"]
    assert p["type"] == "file" and p["folder"] == FOLDER and p["folderUid"] == FOLDER
    assert ENV_REF.match(p["options"]["path"])


def rules() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    doc = load("alerting/epcwatch-alerts.yaml")
    return [(g, r) for g in doc["groups"] for r in g["rules"]]


def test_alert_rules_are_well_formed() -> None:
    found = {r["title"] for _, r in rules()}
    assert found == {"Device offline", "Savings behind guarantee"}
    for group, rule in rules():
        assert group["folder"] == FOLDER and re.fullmatch(r"\d+[smh]", group["interval"])
        refs = {d["refId"] for d in rule["data"]}
        assert rule["condition"] in refs
        for d in rule["data"]:
            assert d["datasourceUid"] in (DATASOURCE_NAME, "__expr__")
            if d["datasourceUid"] == "__expr__":
                assert d["model"]["expression"] in refs
            else:
                assert d["model"]["rawQuery"] is True and d["relativeTimeRange"]["from"] > 0


def evaluate(db: InfluxClient, rule: dict[str, Any], now_ms: int) -> dict[tuple[str, ...], bool]:
    """A: the InfluxQL over the rule's relative range; B: last; C: the threshold. Per series."""
    data = {d["refId"]: d for d in rule["data"]}
    a = data["A"]
    t0 = now_ms - a["relativeTimeRange"]["from"] * 1000
    series = db.query(expand(a["model"]["query"], t0, now_ms))
    ev = data["C"]["model"]["conditions"][0]["evaluator"]
    op = {"gt": lambda x: x > ev["params"][0], "lt": lambda x: x < ev["params"][0]}[ev["type"]]
    out = {}
    for s in series:
        values = [v for r in s.rows for k, v in r.items() if k != "time" and v is not None]
        out[tuple(sorted(s.tags.values()))] = op(values[-1])
    return out


@pytest.mark.integration
def test_device_offline_fires_for_the_failing_device_only(sim_db: InfluxClient) -> None:
    rule = next(r for _, r in rules() if r["title"] == "Device offline")
    end = simdata.local_midnight_ms(simdata.LIVE_DAYS[1]) + 86_400_000 - 1
    firing = evaluate(sim_db, rule, end)
    assert firing == {
        ("b1-light", simdata.SITE): False,
        ("b1-main", simdata.SITE): False,
        ("b2-main", simdata.SITE): True,
    }


@pytest.mark.integration
def test_savings_rule_quiet_while_ahead_and_firing_when_behind(sim_db: InfluxClient) -> None:
    rule = next(r for _, r in rules() if r["title"] == "Savings behind guarantee")
    end = simdata.local_midnight_ms(simdata.LAST_DAY) + 1
    assert evaluate(sim_db, rule, end) == {(simdata.SITE, "led-2025"): False}
    # a contract whose savings trail its guarantee: the rule fires for it
    sim_db.write(
        [
            f"savings,contract=behind,site={simdata.SITE} "
            f"cumulative_savings=900.0,guaranteed_cumulative=1000.0 {end - 10}"
        ]
    )
    try:
        assert evaluate(sim_db, rule, end) == {
            (simdata.SITE, "led-2025"): False,
            ("behind", simdata.SITE): True,
        }
    finally:
        sim_db.query('DROP SERIES FROM "savings" WHERE "contract" = \'behind\'')


@pytest.mark.integration
def test_metadata_command_writes_building_info_idempotently(
    influxdb: Influxd, database: str, tmp_path: Path
) -> None:
    pf = tmp_path / "portfolio.yaml"
    pf.write_text(yaml.safe_dump(simdata.PORTFOLIO.model_dump()))
    cmd = [
        EPC,
        "dashboards",
        "metadata",
        "--portfolio",
        str(pf),
        "--influx-url",
        influxdb.url,
        "--database",
        database,
    ]
    for _ in range(2):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
    db = InfluxClient(influxdb.url, database)
    (s,) = db.query(
        'SELECT count("floor_area_m2") AS n, sum("floor_area_m2") AS area, sum("occupants") AS people '
        'FROM "building_info"'
    )
    assert s.rows[0]["n"] == 2
    assert s.rows[0]["area"] == sum(b.floor_area_m2 for b in simdata.PORTFOLIO.sites[0].buildings)
    assert s.rows[0]["people"] == 1200


def test_metadata_command_reports_a_bad_portfolio_by_line(tmp_path: Path) -> None:
    pf = tmp_path / "portfolio.yaml"
    pf.write_text(
        "sites:\n  - id: s\n    name: S\n    buildings:\n"
        "      - id: b1\n        name: B\n        floor_area_m2: -5\n"
    )
    res = subprocess.run(
        [EPC, "dashboards", "metadata", "--portfolio", str(pf)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2 and "portfolio.yaml:7:" in res.stderr and "Traceback" not in res.stderr


def test_metadata_command_reports_an_unreachable_influxdb(tmp_path: Path) -> None:
    from epcwatch.devservices.services import free_port

    pf = tmp_path / "portfolio.yaml"
    pf.write_text(yaml.safe_dump(simdata.PORTFOLIO.model_dump()))
    url = f"http://127.0.0.1:{free_port()}"
    res = subprocess.run(
        [EPC, "dashboards", "metadata", "--portfolio", str(pf), "--influx-url", url, "--influx-user", "u",
         "--influx-password", "hunter22"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2 and "unreachable" in res.stderr
    assert "Traceback" not in res.stderr and "hunter22" not in res.stderr
