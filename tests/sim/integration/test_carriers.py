"""The demo building with national item codes, water and gas meters, through the real pipeline:
fast history -> Mosquitto -> ``collector run`` -> InfluxDB -> ``collector rollup`` -> ``stats``.

The stored tags carry the item codes, the daily water and gas volumes equal the model's
integrals, and the statistics' tce of the building equal a hand computation from the simulator's
truth and the GB/T 2589-2020 factors (typed here from the standard, not read from the table).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from epcwatch.dashboards.influx import InfluxClient
from epcwatch.dashboards.stats import Period, compute, compute_items
from epcwatch.devservices.services import Influxd, Mosquitto
from epcwatch.portfolio import Building, Portfolio, Site
from epcwatch.sim.history import history_batches, profile_points, publish
from epcwatch.sim.ledger import daily_totals
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import demo_complex
from epcwatch.sim.timegrid import local_midnight
from tests.sim.conftest import Child
from tests.sim.helpers import count, rollup, rows, start_collector, wait_for

pytestmark = pytest.mark.integration

MODEL = ComplexModel(demo_complex())
TZ = MODEL.tz
KGCE_PER_KWH = 0.1229  # electricity, calorific equivalent
KGCE_PER_M3_GAS = 1.2143  # natural gas


def _iso(day: dt.date) -> str:
    return dt.datetime(day.year, day.month, day.day, tzinfo=TZ).isoformat()


def test_item_codes_water_gas_and_tce_of_the_demo_building(
    children: list[Child], tmp_path: Path, mosquitto: Mosquitto, influxdb: Influxd, database: str
) -> None:
    start_collector(children, tmp_path, mosquitto, influxdb, database)
    d0, d1 = dt.date(2025, 1, 6), dt.date(2025, 1, 7)  # a Monday and a Tuesday: the canteen cooks
    devices = [d for d in MODEL.devices if d.building == "b1" and d.kind == "meter"]
    assert {"b1-water", "b1-gas"} <= {d.id for d in devices}
    names = profile_points(MODEL, devices)
    _, readings = publish(
        history_batches(
            MODEL, d0, d1 + dt.timedelta(days=1), interval_s=900, point_names=names, devices=devices
        ),
        "127.0.0.1",
        mosquitto.port,
        client_id=f"h-{database}"[:60],
    )
    electric = sum(1 for d in devices if d.role not in ("water", "gas"))
    expected = readings * electric // len(devices)
    wait_for(lambda: count(influxdb, database, "meter", "energy_import") == expected, 120, "history stored")
    wait_for(lambda: count(influxdb, database, "meter", "gas_volume") == readings // len(devices), 60, "gas")
    rollup(tmp_path, _iso(d0), _iso(d1 + dt.timedelta(days=1)))

    # tags: level-1 codes on the category meters (the collector completes category <-> code)
    tags = {
        r["device"]: r["item_code"]
        for r in rows(influxdb, database, 'SELECT count(*) FROM "meter" GROUP BY "device", "item_code"')
    }
    assert tags["b1-water"] == "02000" and tags["b1-gas"] == "03000"
    assert tags["b1-light"] == "01A00" and tags["b1-power"] == "01C00"
    assert tags["b1-hvac-plant"] == "01B10" and tags["b1-hvac-terminals"] == "01B20"

    totals = daily_totals(MODEL, d0, d1, counterfactual=False)
    daily = rows(
        influxdb,
        database,
        'SELECT "water_volume", "gas_volume", "energy_import" FROM "energy_interval" '
        'WHERE "interval" = \'1d\' GROUP BY "device"',
    )
    stored = {(r["device"], r["time"]): r for r in daily}
    for i, day in enumerate((d0, d1)):
        t = local_midnight(day, TZ) * 1000
        assert stored[("b1-water", t)]["water_volume"] == pytest.approx(
            totals.volume_m3["b1-water"][i], abs=2e-3
        )
        assert stored[("b1-gas", t)]["gas_volume"] == pytest.approx(totals.volume_m3["b1-gas"][i], abs=2e-2)
    assert 20 < totals.volume_m3["b1-water"][0] < 80  # ~40 L per person and working day
    assert totals.volume_m3["b1-gas"][0] > 20

    # epcwatch stats for January 2025 (the two published days), against the hand computation
    portfolio = Portfolio(
        sites=[
            Site(
                id=MODEL.spec.site,
                name="demo",
                timezone=MODEL.spec.timezone,
                buildings=[Building(id="b1", name="b1", floor_area_m2=24000, code="510104A001")],
            )
        ]
    )
    client = InfluxClient(influxdb.url, database)
    row = next(r for r in compute(portfolio, Period("month", 2025, 1), client.query) if r["building"] == "b1")
    kwh = sum(float(totals.actual_kwh[d.id].sum()) for d in MODEL.spec.category_meters("b1"))
    gas_m3 = float(totals.volume_m3["b1-gas"].sum())
    water_m3 = float(totals.volume_m3["b1-water"].sum())
    assert row["electricity_kwh"] == pytest.approx(kwh, rel=1e-6)
    assert row["gas_m3"] == pytest.approx(gas_m3, abs=0.05)
    assert row["water_m3"] == pytest.approx(water_m3, abs=0.01)
    hand = kwh * KGCE_PER_KWH / 1000 + gas_m3 * KGCE_PER_M3_GAS / 1000
    assert row["tce_total"] == pytest.approx(hand, rel=1e-4)
    assert row["tce_gas"] == pytest.approx(gas_m3 * KGCE_PER_M3_GAS / 1000, rel=1e-3)
    # level 1 of the item codes: one row per category meter, adding up to the electricity
    items = [
        r for r in compute_items(portfolio, Period("month", 2025, 1), client.query) if r["building"] == "b1"
    ]
    level1 = {r["code"]: r["electricity_kwh"] for r in items if r["level"] == 1}
    assert set(level1) == {"01A00", "01B00", "01C00", "01D00"}
    assert sum(level1.values()) == pytest.approx(kwh, rel=1e-6)
    # level 2: HVAC as plant (01B10) and terminals (01B20), adding up to 01B00
    level2 = {r["code"]: r["electricity_kwh"] for r in items if r["level"] == 2}
    plant, terminals = (float(totals.actual_kwh[f"b1-hvac-{x}"].sum()) for x in ("plant", "terminals"))
    assert level2["01B10"] == pytest.approx(plant, rel=1e-6)
    assert level2["01B20"] == pytest.approx(terminals, rel=1e-6)
    assert level1["01B00"] == pytest.approx(plant + terminals, rel=1e-6)
    assert level2["01A00"] == pytest.approx(level1["01A00"], rel=1e-12)  # a meter of the whole item
