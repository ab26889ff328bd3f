"""Periods, windows and CSV of the energy statistics (pure)."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.dashboards.errors import StatsError
from epcwatch.dashboards.influx import Series
from epcwatch.dashboards.metadata import building_info_lines
from epcwatch.dashboards.stats import COLUMNS, Period, compute, parse_period, to_csv
from epcwatch.portfolio import Building, Portfolio, Site

months = st.builds(lambda y, m: Period("month", y, m), st.integers(1990, 2090), st.integers(1, 12))
zones = st.sampled_from(["Asia/Shanghai", "UTC", "Europe/Berlin", "America/New_York", "Pacific/Auckland"])


@given(months, zones)
def test_month_windows_tile_and_start_at_local_midnight(p: Period, tz: str) -> None:
    t0, t1 = p.window_ms(tz)
    start = datetime.fromtimestamp(t0 / 1000, ZoneInfo(tz))
    assert (start.year, start.month, start.day, start.hour, start.minute) == (p.year, p.month, 1, 0, 0)
    nxt = Period("month", p.year + (p.month == 12), p.month % 12 + 1)
    assert nxt.window_ms(tz)[0] == t1 + 1
    assert p.last_year().start() == date(p.year - 1, p.month, 1)


@given(st.integers(1990, 2090), zones)
def test_year_is_its_twelve_months(year: int, tz: str) -> None:
    y0, y1 = Period("year", year).window_ms(tz)
    assert Period("month", year, 1).window_ms(tz)[0] == y0
    assert Period("month", year, 12).window_ms(tz)[1] == y1


def test_parse_period() -> None:
    today = date(2025, 1, 15)
    assert parse_period("month", None, today) == Period("month", 2024, 12)
    assert parse_period("month", None, date(2025, 3, 1)) == Period("month", 2025, 2)
    assert parse_period("year", None, today) == Period("year", 2024)
    assert parse_period("month", "2025-02", today).label == "2025-02"
    assert parse_period("year", "2024", today).label == "2024"
    for kind, at in (("month", "2025"), ("month", "2025-13"), ("year", "25"), ("week", None)):
        with pytest.raises(StatsError):
            parse_period(kind, at, today)


PF = Portfolio(
    sites=[
        Site(
            id="s",
            name="S",
            timezone="UTC",
            buildings=[Building(id="b1", name="B", floor_area_m2=100, occupants=4)],
        )
    ]
)


def test_compute_from_canned_series_and_csv() -> None:
    """A fake query runner stands in for InfluxDB: the arithmetic and the shape of the rows."""
    seen: list[str] = []
    last_year_start = Period("month", 2024, 2).window_ms("UTC")[0]

    def run(q: str) -> list[Series]:
        seen.append(q)
        if f"time >= {last_year_start}ms" in q:
            return [
                Series(
                    "energy_interval",
                    {"site": "s", "building": "b1"},
                    [{"time": 0, "electricity_kwh": 200.0}],
                )
            ]
        if '"category"' in q.rsplit("GROUP BY", maxsplit=1)[-1]:
            return [
                Series(
                    "energy_interval", {"building": "b1", "category": c}, [{"time": 0, "electricity_kwh": v}]
                )
                for c, v in (("A", 60.0), ("B", 40.0))
            ]
        if "completeness_pct" in q:
            return [
                Series(
                    "energy_interval",
                    {"site": "s", "building": "b1", "device": d},
                    [{"time": 0, "completeness_pct": v}],
                )
                for d, v in (("m1", 100.0), ("m2", 50.0))
            ]
        if "water_volume" in q:
            return [
                Series(
                    "energy_interval",
                    {"site": "s", "building": "b1"},
                    [{"time": 0, "water_volume": 5.0, "gas_volume": None, "heat_energy": None}],
                )
            ]
        return [
            Series(
                "energy_interval", {"site": "s", "building": "b1"}, [{"time": 0, "electricity_kwh": 100.0}]
            )
        ]

    rows = compute(PF, Period("month", 2025, 2), run)
    assert [r["building"] for r in rows] == ["", "b1"]
    b1 = rows[1]
    assert b1["electricity_kwh"] == 100.0 and b1["category_A_kwh"] == 60.0 and b1["category_C_kwh"] == 0.0
    assert b1["kwh_per_m2"] == 1.0 and b1["kwh_per_occupant"] == 25.0
    assert b1["change_pct"] == pytest.approx(-50.0)
    assert b1["tce_electricity"] == pytest.approx(100 * 0.1229 / 1000)
    assert b1["completeness_pct"] == 75.0 and rows[0]["completeness_pct"] == 75.0
    assert seen and not [q for q in seen if re.search(r"\$[\w{]", q)]  # every macro expanded
    text = to_csv(rows)
    header, *lines = text.splitlines()
    assert header.split(",") == list(COLUMNS) and len(lines) == 2


def test_building_info_lines() -> None:
    assert building_info_lines(PF) == [
        "building_info,building=b1,site=s floor_area_m2=100.0,occupants=4i,floors=1i 0"
    ]


def test_window_covers_whole_days() -> None:
    t0, t1 = Period("month", 2024, 2).window_ms("Asia/Shanghai")
    assert timedelta(milliseconds=t1 + 1 - t0) == timedelta(days=29)
