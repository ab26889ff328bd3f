"""National item codes and energy carriers on the dashboards and in ``epcwatch stats``, against
real InfluxDB: both code levels add up to what the generator wrote, the labels are bilingual, and
the tce figures equal a hand computation from the GB/T 2589-2020 factors."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from epcwatch.dashboards.boards import build_all
from epcwatch.dashboards.influx import InfluxClient
from epcwatch.dashboards.influxql import Variable, expand
from epcwatch.dashboards.stats import Period, compute, compute_items

sys.path.insert(0, str(Path(__file__).parent))
import dash_simdata as simdata

pytestmark = pytest.mark.integration
BOARDS = build_all()
FEB = (date(2025, 2, 1), date(2025, 2, 28))
T0 = int(datetime(2025, 2, 1, tzinfo=simdata.TZ).timestamp() * 1000)
T1 = int(datetime(2025, 3, 1, tzinfo=simdata.TZ).timestamp() * 1000) - 1
VARS = {
    "site": Variable.many([simdata.SITE]),
    "building": Variable.many(["b1", "b2"]),
    "category": Variable.many(["A", "B", "C", "D"]),
    "timezone": Variable.single("Asia/Shanghai"),
}
#: GB/T 2589-2020 Appendix A, typed here from the standard, not read from the shipped table
KGCE_PER_KWH = 0.1229
KGCE_PER_M3_GAS = 1.2143
KGCE_PER_GJ_HEAT = 34.12


def panel(board: str, title: str) -> dict[str, Any]:
    return next(p for p in BOARDS[board]["panels"] if p.get("title") == title)


def generated(pred: Any, first: date = FEB[0], last: date = FEB[1]) -> float:
    return sum(
        simdata.daily_value(m, d)
        for m in simdata.METERS
        if pred(m)
        for d in simdata.days(first, last)
        if simdata.has_data(m, d)
    )


def sub_meter(m: simdata.Meter) -> bool:
    return bool(m.category) and not m.tenant and m.field == "energy_import"


def test_level_two_panel_sums_per_code_and_adds_up_to_level_one(sim_db: InfluxClient) -> None:
    p = panel("portfolio.json", "Electricity by item code, level 2 (分项 01A10 …, kWh)")
    series = sim_db.query(expand(p["targets"][0]["query"], T0, T1, VARS))
    level2: dict[str, float] = {}
    for s in series:
        level2[s.tags["item_code"]] = level2.get(s.tags["item_code"], 0.0) + float(
            s.rows[0]["electricity_kwh"]
        )
    codes = {m.item_code for m in simdata.METERS if sub_meter(m)}
    assert set(level2) == codes
    for code in codes:
        assert level2[code] == pytest.approx(generated(lambda m, c=code: sub_meter(m) and m.item_code == c))
    # level 1 (the category shares panel, A = 01A00 …) is the sum of its level-2 codes
    pie = panel("portfolio.json", "Category shares (分项)")
    level1 = {
        s.tags["category"]: float(s.rows[0]["electricity_kwh"])
        for s in sim_db.query(expand(pie["targets"][0]["query"], T0, T1, VARS))
    }
    for cat, total in level1.items():
        assert total == pytest.approx(sum(v for c, v in level2.items() if c[2] == cat))
        assert total == pytest.approx(generated(lambda m, c=cat: sub_meter(m) and m.category == c))
    assert level1["A"] > 0 and level2["01A20"] > 0


def test_daily_level_two_bars(sim_db: InfluxClient) -> None:
    p = panel("building-energy.json", "Daily electricity by item code, level 2 (分项, kWh)")
    q = expand(p["targets"][0]["query"], T0, T1, VARS)
    by_code = {s.tags["item_code"]: s.rows for s in sim_db.query(q)}
    rows = by_code["01B20"]
    assert len(rows) == 28
    day = date(2025, 2, 3)
    terminals = simdata.meter("b1-terminals")
    assert rows[2]["energy_import"] == pytest.approx(simdata.daily_value(terminals, day))


def test_labels_are_bilingual() -> None:
    for board, title in [
        ("portfolio.json", "Category shares (分项)"),
        ("portfolio.json", "Electricity by item code, level 2 (分项 01A10 …, kWh)"),
        ("building-energy.json", "Daily electricity by item code, level 2 (分项, kWh)"),
        ("building-energy.json", "Power by category (分项)"),
    ]:
        p = panel(board, title)
        names = {o["matcher"]["options"]: o["properties"][0]["value"] for o in p["fieldConfig"]["overrides"]}
        assert names["A"] == "01A00 照明插座用电 Lighting and sockets"
        assert names["01B20"] == "01B20 空调末端 Air-conditioning terminals"
        mapped = p["fieldConfig"]["defaults"]["mappings"][0]["options"]
        assert mapped["01C10"]["text"] == "01C10 电梯 Elevators"


def test_stats_by_item_both_levels(sim_db: InfluxClient) -> None:
    rows = compute_items(simdata.PORTFOLIO, Period("month", 2025, 2), sim_db.query)
    b1 = {(r["level"], r["code"]): r for r in rows if r["building"] == "b1"}
    assert b1[(1, "01A00")]["electricity_kwh"] == pytest.approx(
        generated(lambda m: sub_meter(m) and m.building == "b1" and m.category == "A")
    )
    assert b1[(2, "01A20")]["electricity_kwh"] == pytest.approx(
        generated(lambda m: m.device == "b1-corridor")
    )
    assert (b1[(1, "01B00")]["zh"], b1[(1, "01B00")]["en"]) == ("空调用电", "Air conditioning")
    for building in ("", "b1", "b2"):
        for level in (1, 2):
            shares = [r["share_pct"] for r in rows if r["building"] == building and r["level"] == level]
            assert sum(shares) == pytest.approx(100.0)
    site = {(r["level"], r["code"]): r["electricity_kwh"] for r in rows if r["building"] == ""}
    assert site[(1, "01A00")] == pytest.approx(site[(2, "01A10")] + site[(2, "01A20")] + site[(2, "01A00")])


def hand_tce(building: str | None) -> tuple[float, float, float]:
    """Electricity, gas and heat of February 2025 in tce, from the generator and the cited factors."""

    def here(m: simdata.Meter) -> bool:
        return building is None or m.building == building

    kwh = generated(lambda m: sub_meter(m) and here(m))
    gas_m3 = generated(lambda m: m.field == "gas_volume" and here(m))
    heat_gj = generated(lambda m: m.field == "heat_energy" and here(m)) * 3.6 / 1000
    return kwh * KGCE_PER_KWH / 1000, gas_m3 * KGCE_PER_M3_GAS / 1000, heat_gj * KGCE_PER_GJ_HEAT / 1000


def test_tce_matches_hand_computation(sim_db: InfluxClient) -> None:
    rows = compute(simdata.PORTFOLIO, Period("month", 2025, 2), sim_db.query)
    for building in ("b1", "b2"):
        r = next(r for r in rows if r["building"] == building)
        e, g, h = hand_tce(building)
        assert (r["tce_electricity"], r["tce_gas"], r["tce_heat"]) == pytest.approx((e, g, h))
        assert r["tce_total"] == pytest.approx(e + g + h)
        assert r["tce_cooling"] is None  # no GB/T 2589 factor for delivered cold
    assert next(r for r in rows if r["building"] == "b1")["tce_gas"] > 0
    assert next(r for r in rows if r["building"] == "b2")["cooling_kwh"] > 0
    # the portfolio dashboard's tce table: electricity (A) + gas and heat (B) per site
    p = panel("portfolio.json", "Energy by site in standard coal (tce)")
    a, b = (sim_db.query(expand(t["query"], T0, T1, VARS)) for t in p["targets"])
    e, g, h = hand_tce(None)
    assert a[0].rows[0]["tce"] == pytest.approx(e)
    assert (b[0].rows[0]["tce_gas"], b[0].rows[0]["tce_heat"]) == pytest.approx((g, h))
    site = next(r for r in rows if r["building"] == "")
    assert site["tce_total"] == pytest.approx(e + g + h)


def test_carrier_table_shows_every_carrier(sim_db: InfluxClient) -> None:
    p = panel("portfolio.json", "Energy by carrier and site (分类: kWh, m³)")
    b = sim_db.query(expand(p["targets"][1]["query"], T0, T1, VARS))[0].rows[0]
    for field in ("water_volume", "gas_volume", "heat_energy", "cooling_energy"):
        assert b[field] == pytest.approx(generated(lambda m, f=field: m.field == f))


def test_cli_by_item_writes_the_item_table(sim_db: InfluxClient, tmp_path: Path) -> None:
    import subprocess

    import yaml

    from epcwatch.dashboards.stats import items_to_csv
    from tests.support import EPCWATCH

    pf = tmp_path / "portfolio.yaml"
    pf.write_text(yaml.safe_dump(simdata.PORTFOLIO.model_dump()))
    out = tmp_path / "items.csv"
    res = subprocess.run(
        [EPCWATCH, "stats", "--by-item", "--period", "month", "--at", "2025-02", "--portfolio", str(pf),
         "--influx-url", sim_db.url, "--database", sim_db.database, "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "照明插座用电" in res.stdout and "Air-conditioning terminals" in res.stdout
    assert out.read_text() == items_to_csv(
        compute_items(simdata.PORTFOLIO, Period("month", 2025, 2), sim_db.query)
    )
    res = subprocess.run(
        [EPCWATCH, "stats", "--basis", "equal_value", "--period", "month", "--at", "2025-02",
         "--portfolio", str(pf), "--influx-url", sim_db.url, "--database", sim_db.database],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2 and "equal-value" in res.stderr
