"""``epcwatch stats`` against real InfluxDB: the numbers equal the generator's and the Portfolio
dashboard's own panel queries for the same period."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from epcwatch.dashboards import queries as q
from epcwatch.dashboards.boards import build_all
from epcwatch.dashboards.influx import InfluxClient
from epcwatch.dashboards.influxql import Variable, expand
from epcwatch.dashboards.stats import Period, compute, to_csv
from tests.support import EPCWATCH

sys.path.insert(0, str(Path(__file__).parent))
import dash_simdata as simdata

pytestmark = pytest.mark.integration
EPC = EPCWATCH


def generated(building: str, first: date, last: date, category: str | None = None) -> float:
    return sum(
        simdata.daily_value(m, d)
        for m in simdata.METERS
        if m.building == building and m.category and not m.tenant and (category in (None, m.category))
        for d in simdata.days(first, last)
        if simdata.has_data(m, d)
    )


def row(rows: list[dict[str, object]], building: str) -> dict[str, object]:
    return next(r for r in rows if r["building"] == building)


def test_month_matches_generator(sim_db: InfluxClient) -> None:
    rows = compute(simdata.PORTFOLIO, Period("month", 2025, 2), sim_db.query)
    feb25, feb24 = (date(2025, 2, 1), date(2025, 2, 28)), (date(2024, 2, 1), date(2024, 2, 29))
    for b in ("b1", "b2"):
        r = row(rows, b)
        assert r["electricity_kwh"] == pytest.approx(generated(b, *feb25))
        assert r["electricity_kwh_last_year"] == pytest.approx(generated(b, *feb24))  # leap February
        for c in q.CATEGORIES:
            assert r[f"category_{c}_kwh"] == pytest.approx(generated(b, *feb25, category=c))
        area = simdata.PORTFOLIO.sites[0].building(b).floor_area_m2
        assert r["kwh_per_m2"] == pytest.approx(generated(b, *feb25) / area)
        assert r["tce_electricity"] == pytest.approx(generated(b, *feb25) * 0.1229 / 1000)
    site = row(rows, "")
    assert site["electricity_kwh"] == pytest.approx(sum(generated(b, *feb25) for b in ("b1", "b2")))
    assert site["change_pct"] < 0  # the retrofit year uses less
    assert row(rows, "b1")["completeness_pct"] == pytest.approx(100.0)
    assert row(rows, "b2")["completeness_pct"] == pytest.approx((3 * 100 + 25 / 28 * 100) / 4)
    assert site["completeness_pct"] == pytest.approx((9 * 100 + 25 / 28 * 100) / 10)
    water = sum(simdata.daily_value(simdata.meter("b1-water"), d) for d in simdata.days(*feb25))
    assert row(rows, "b1")["water_m3"] == pytest.approx(water)
    assert (
        row(rows, "b2")["heat_kwh"] > 0 and row(rows, "b2")["tce_total"] > row(rows, "b2")["tce_electricity"]
    )


def _panel(title: str) -> dict[str, object]:
    doc = build_all()["portfolio.json"]
    return next(p for p in doc["panels"] if p.get("title") == title)


def _run(db: InfluxClient, query: str, t0: int, t1: int, variables: dict[str, Variable]) -> dict[str, float]:
    return {
        s.tags["site"]: sum(float(r[c]) for r in s.rows for c in r if c != "time")
        for s in db.query(expand(query, t0, t1, variables))
    }


def test_month_equals_portfolio_panels(sim_db: InfluxClient) -> None:
    """Dashboard time range = February 2025; "same period last year" via the panel's timeShift."""
    rows = compute(simdata.PORTFOLIO, Period("month", 2025, 2), sim_db.query)
    site = row(rows, "")
    variables = {"site": Variable.many([simdata.SITE]), "building": Variable.many(["b1", "b2"])}
    t0 = int(datetime(2025, 2, 1, tzinfo=simdata.TZ).timestamp() * 1000)
    t1 = int(datetime(2025, 3, 1, tzinfo=simdata.TZ).timestamp() * 1000) - 1
    this = _panel("Electricity by site (kWh)")
    last = _panel("Electricity by site, same period last year (kWh)")
    assert last["timeShift"] == "1y"
    ly0 = int(datetime(2024, 2, 1, tzinfo=simdata.TZ).timestamp() * 1000)
    ly1 = int(datetime(2024, 3, 1, tzinfo=simdata.TZ).timestamp() * 1000) - 1
    assert _run(sim_db, this["targets"][0]["query"], t0, t1, variables)[simdata.SITE] == pytest.approx(
        site["electricity_kwh"]
    )
    assert _run(sim_db, last["targets"][0]["query"], ly0, ly1, variables)[simdata.SITE] == pytest.approx(
        site["electricity_kwh_last_year"]
    )
    completeness = _panel("Data completeness by category sub-meter (%)")
    per_meter = sim_db.query(expand(completeness["targets"][0]["query"], t0, t1, variables))
    values = [r["completeness_pct"] for s in per_meter for r in s.rows]
    assert sum(values) / len(values) == pytest.approx(site["completeness_pct"])
    assert min(values) == pytest.approx(25 / 28 * 100)
    tce = _panel("Electricity by site (tce)")
    assert _run(sim_db, tce["targets"][0]["query"], t0, t1, variables)[simdata.SITE] == pytest.approx(
        site["tce_electricity"]
    )


def test_year_equals_portfolio_year_row(sim_db: InfluxClient) -> None:
    rows = compute(simdata.PORTFOLIO, Period("year", 2025), sim_db.query)
    site = row(rows, "")
    variables = {
        "site": Variable.many([simdata.SITE]),
        "building": Variable.many(["b1", "b2"]),
        "year": Variable.single("2024", text="2025"),
    }
    yoy = _panel("Year-over-year change by site")
    a, b = (t["query"] for t in yoy["targets"])
    assert _run(sim_db, a, 0, 1, variables)[simdata.SITE] == pytest.approx(site["electricity_kwh"])
    assert _run(sim_db, b, 0, 1, variables)[simdata.SITE] == pytest.approx(site["electricity_kwh_last_year"])
    eui = _panel("EUI by site, year $year (kWh/m²·a)")
    info = sim_db.query(expand(eui["targets"][1]["query"], 0, 1, variables))
    area = info[0].rows[0]["floor_area_m2"]
    energy = _run(sim_db, eui["targets"][0]["query"], 0, 1, variables)[simdata.SITE]
    assert energy / area == pytest.approx(site["kwh_per_m2"])


def test_cli_prints_and_writes_csv(sim_db: InfluxClient, tmp_path: Path) -> None:
    pf = tmp_path / "portfolio.yaml"
    pf.write_text(yaml.safe_dump(simdata.PORTFOLIO.model_dump()))
    out = tmp_path / "stats.csv"
    res = subprocess.run(
        [EPC, "stats", "--period", "month", "--at", "2025-02", "--portfolio", str(pf),
         "--influx-url", sim_db.url, "--database", sim_db.database, "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "civic-centre" in res.stdout and "2025-02" in res.stdout
    expected = to_csv(compute(simdata.PORTFOLIO, Period("month", 2025, 2), sim_db.query))
    assert out.read_text() == expected
    parsed = list(csv.DictReader(io.StringIO(expected)))
    assert [r["building"] for r in parsed] == ["", "b1", "b2"]


def test_cli_user_error_is_one_line(tmp_path: Path) -> None:
    pf = tmp_path / "portfolio.yaml"
    pf.write_text(yaml.safe_dump(simdata.PORTFOLIO.model_dump()))
    res = subprocess.run(
        [EPC, "stats", "--period", "month", "--at", "2025", "--portfolio", str(pf)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 2
    assert res.stderr.startswith("error: --at '2025'") and "Traceback" not in res.stderr
