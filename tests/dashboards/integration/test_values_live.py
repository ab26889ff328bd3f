"""Panel values, not just shapes: power from the 15-minute rollups and peak 15-minute demand
equal what the simulated meters drew."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from epcwatch.dashboards.boards import build_all
from epcwatch.dashboards.influx import InfluxClient
from epcwatch.dashboards.influxql import Variable, expand

sys.path.insert(0, str(Path(__file__).parent))
import dash_simdata as simdata

pytestmark = pytest.mark.integration
BOARD = build_all()["building-energy.json"]
VARS = {
    "site": Variable.many([simdata.SITE]),
    "building": Variable.many(["b1", "b2"]),
    "category": Variable.many(["A", "B", "C", "D"]),
    "tenant": Variable.many(["finance", "planning"]),
    "timezone": Variable.single("Asia/Shanghai"),
}


def query(title: str) -> tuple[dict[str, Any], str]:
    p = next(p for p in BOARD["panels"] if p["title"] == title)
    return p, p["targets"][0]["query"]


def draw_w(m: simdata.Meter, hour: int) -> float:
    return m.base / 24 * 1000 * (1.6 if 8 <= hour < 19 else 0.4)


def test_power_by_category_is_the_sum_of_the_sub_meters(sim_db: InfluxClient) -> None:
    panel, q = query("Power by category (分项)")
    assert panel["interval"] == "15m"
    t0 = simdata.local_midnight_ms(simdata.LIVE_DAYS[0])
    # a six-hour range asks for 15 m buckets at most 1000 points -> the 15 m floor applies
    series = sim_db.query(expand(q, t0, t0 + 6 * 3_600_000 - 1, VARS, min_interval=panel["interval"]))
    by_cat = {s.tags["category"]: s.rows for s in series}
    assert set(by_cat) == {"A", "B", "C", "D"}
    for cat, rows in by_cat.items():
        expected = sum(draw_w(m, 0) for m in simdata.METERS if m.category == cat and not m.tenant)
        assert len(rows) == 24
        assert all(r["active_power"] == pytest.approx(expected, rel=1e-3) for r in rows)


def test_power_by_tenant_follows_occupancy(sim_db: InfluxClient) -> None:
    panel, q = query("Power by tenant (分户)")
    t0 = simdata.local_midnight_ms(simdata.LIVE_DAYS[0])
    # one hour buckets over a day: the 1-hour $__interval averages four 15-minute rollups
    day = t0 + 86_400_000 - 1
    series = sim_db.query(expand(q, t0, day, VARS, max_data_points=24, min_interval=panel["interval"]))
    finance = next(s for s in series if s.tags["tenant"] == "finance").rows
    meter = next(m for m in simdata.METERS if m.tenant == "finance")
    expected = [draw_w(meter, h) for h in range(24)]
    assert [r["active_power"] for r in finance] == pytest.approx(expected, rel=1e-3)


def test_peak_demand_is_the_highest_15_minute_average(sim_db: InfluxClient) -> None:
    _, q = query("Peak 15-minute demand in range")
    t0 = simdata.local_midnight_ms(simdata.LIVE_DAYS[0])
    series = sim_db.query(expand(q, t0, t0 + 2 * 86_400_000 - 1, VARS))
    peaks = {s.tags["building"]: s.rows[0]["peak_demand"] for s in series}
    for b in ("b1", "b2"):
        main = next(m for m in simdata.METERS if m.device == f"{b}-main")
        assert peaks[b] == pytest.approx(draw_w(main, 10), rel=1e-3)


def test_devices_table_shows_the_last_good_poll(sim_db: InfluxClient) -> None:
    health = build_all()["device-health.json"]
    p = next(p for p in health["panels"] if p["title"] == "Devices: online, last seen, failures")
    t0 = simdata.local_midnight_ms(simdata.LIVE_DAYS[0])
    q = expand(p["targets"][0]["query"], t0, t0 + 2 * 86_400_000 - 1, {"site": Variable.many([simdata.SITE])})
    rows = {s.tags["device"]: s.rows[0] for s in sim_db.query(q)}
    assert rows["b2-main"]["online"] is False
    assert rows["b2-main"]["last_seen"] == t0 + 399 * 300_000
    assert rows["b1-main"]["online"] is True and rows["b1-main"]["last_seen"] == t0 + (48 * 12 - 1) * 300_000
