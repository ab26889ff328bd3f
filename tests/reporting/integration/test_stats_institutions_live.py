"""``epcwatch stats institutions`` against a real InfluxDB holding two simulated years: tce,
per-person, per-m² and the change on last year equal a hand computation; virtual meters are
written as their own series with their formula; the XLSX has the form's sheets and headers."""

from __future__ import annotations

import json
import subprocess
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from epcwatch.devservices.services import Influxd
from epcwatch.influx import InfluxClient
from epcwatch.reporting.export import SHEETS
from tests.reporting.cases import CSV, REGISTER
from tests.support import EPCWATCH

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Asia/Shanghai")
GAP_2025 = {date(2025, 3, d) for d in range(1, 11)}  # the tenant meter lost ten days in 2025


def days(year: int) -> list[date]:
    d, out = date(year, 1, 1), []
    while d.year == year:
        out.append(d)
        d += timedelta(days=1)
    return out


def daily(device: str, d: date) -> float | None:
    """The simulated daily energy (kWh); 2024 uses 10 % more (the retrofit came in 2025)."""
    k = d.toordinal()
    base = {
        "b1-main": 1000 + (k % 7) * 10,
        "b1-t-x": 300 + (k % 5) * 5,
        "chiller": 200 + (k % 3) * 20,
    }[device]
    if device == "b1-t-x" and d in GAP_2025:
        return None
    return base * (1.1 if d.year == 2024 else 1.0)


def lines() -> list[str]:
    out = []
    for year in (2024, 2025):
        for d in days(year):
            ts = int(datetime(d.year, d.month, d.day, tzinfo=TZ).timestamp() * 1000)
            for dev in ("b1-main", "b1-t-x", "chiller"):
                v = daily(dev, d)
                if v is not None:
                    tags = f"energy_interval,site=s1,device={dev},interval=1d"
                    out.append(f"{tags} energy_import={v},coverage=1 {ts}")
            if year == 2025:
                out.append(
                    f"energy_interval,site=s1,device=x-water,interval=1d water_volume=4.0,coverage=1 {ts}"
                )
    return out


def total(device: str, year: int, only: set[date] | None = None) -> float:
    return sum(v for d in days(year) if (v := daily(device, d)) is not None and (only is None or d in only))


def test_report_matches_hand_computation(influxdb: Influxd, database: str, tmp_path: Path) -> None:
    client = InfluxClient(influxdb.url, database)
    data = lines()
    for i in range(0, len(data), 5000):
        client.write(data[i : i + 5000])
    (tmp_path / "register.yaml").write_text(REGISTER, encoding="utf-8")
    (tmp_path / "fuel.csv").write_text(CSV, encoding="utf-8")
    out = tmp_path / "out"
    r = subprocess.run(
        [
            EPCWATCH,
            "stats",
            "institutions",
            "--register",
            str(tmp_path / "register.yaml"),
            "--period",
            "2025",
            "--out",
            str(out),
            "--imports",
            str(tmp_path / "fuel.csv"),
            "--influx-url",
            influxdb.url,
            "--database",
            database,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((out / "stats-2025.json").read_text(encoding="utf-8"))
    rep = {x["institution"]: x for x in doc["institutions"]}

    # hand computation: admin = (main − tenant) on days both exist + 10/12 of the chiller + fuel
    both = {d for d in days(2025) if d not in GAP_2025}
    both24 = set(days(2024))
    common25 = total("b1-main", 2025, both) - total("b1-t-x", 2025, both)
    common24 = total("b1-main", 2024, both24) - total("b1-t-x", 2024, both24)
    elec25 = common25 + total("chiller", 2025) * 10000 / 12000
    elec24 = common24 + total("chiller", 2024) * 10000 / 12000
    tce25 = elec25 * 0.1229 / 1000 + 1000 * 0.73 * 1.4714 / 1000 + 500 * 1.4571 / 1000
    tce24 = elec24 * 0.1229 / 1000 + 1200 * 0.73 * 1.4714 / 1000
    a = rep["admin"]
    assert a["electricity_kwh"] == pytest.approx(elec25)
    assert a["total_tce"] == pytest.approx(tce25)
    assert a["last_year_tce"] == pytest.approx(tce24)
    assert a["change_tce"] == pytest.approx(tce25 - tce24)
    assert a["change_pct"] == pytest.approx((tce25 - tce24) / tce24 * 100)
    assert a["kgce_per_person"] == pytest.approx(tce25 * 1000 / 200)
    assert a["kgce_per_m2"] == pytest.approx(tce25 * 1000 / 10000)
    assert a["electricity_kwh_per_m2"] == pytest.approx(elec25 / 10000)
    origins = {(c["carrier"], c["origin"]) for c in a["carriers"]}
    assert origins == {("electricity", "metered"), ("gasoline", "imported"), ("diesel", "imported")}

    # dept-x: its tenant meter + its share of the chiller by the sub-meter ratio, day by day
    x = rep["dept-x"]
    share = 0.0
    for d in days(2025):
        t, m, c = daily("b1-t-x", d), daily("b1-main", d), daily("chiller", d)
        if t is not None and m is not None and c is not None:
            share += c * t / (t + (m - t))
    assert x["electricity_kwh"] == pytest.approx(total("b1-t-x", 2025) + share)
    tenant = next(m for m in x["meters"] if m["meter"] == "b1-t-x")
    assert tenant["completeness"] == pytest.approx(355 / 365)
    assert x["water_m3"] == pytest.approx(4.0 * 365)
    assert x["water_m3_per_person"] == pytest.approx(4.0 * 365 / 50)
    x_chiller = next(m for m in x["meters"] if m["meter"] == "x-chiller")
    assert x_chiller["formula"].startswith("[plant] * [b1-t-x]")

    city = doc["city"]
    assert city["institutions"] == 2
    assert city["total_tce"] == pytest.approx(a["total_tce"] + x["total_tce"])
    assert city["fell"] == sum(1 for v in rep.values() if v["total_tce"] < v["last_year_tce"])

    # the virtual meters are series of their own, tagged, with the formula stored beside them
    s = client.query(
        "SELECT count(\"energy_import\") FROM energy_interval WHERE device = 'admin-common' "
        "AND virtual = 'true' AND time >= '2025-01-01T00:00:00Z' - 8h AND time < '2026-01-01T00:00:00Z' - 8h"
    )
    assert s and s[0].rows[0]["count"] == 355
    tagged = client.query(
        "SHOW TAG VALUES FROM energy_interval WITH KEY = \"tenant\" WHERE device = 'x-chiller'"
    )
    assert tagged and tagged[0].rows == [{"key": "tenant", "value": "x"}]
    f = client.query("SELECT formula FROM virtual_meter WHERE device = 'admin-common'")
    assert f[0].rows[0]["formula"] == "[b1-main] - [b1-t-x]"

    # the form: one sheet per table, bilingual headers with units
    wb = openpyxl.load_workbook(out / "stats-2025.xlsx", read_only=True)
    assert wb.sheetnames == [title for title, _ in SHEETS.values()]
    head = [c.value for c in next(wb["表1 综合能耗 Summary"].iter_rows(max_row=1))]
    assert "综合能耗 Total energy (tce)" in head and "人均综合能耗 Energy per person (kgce/person)" in head
    body = list(wb["表1 综合能耗 Summary"].iter_rows(min_row=2, values_only=True))
    admin_row = next(row for row in body if row[0] == "admin")
    assert admin_row[head.index("综合能耗 Total energy (tce)")] == pytest.approx(tce25, abs=1e-4)
    carriers_head = [c.value for c in next(wb["表2 分品种 Carriers"].iter_rows(max_row=1))]
    assert "来源 Origin (metered 计量 / imported 导入)" in carriers_head
    wb.close()
    summary_csv = (out / "stats-2025-summary.csv").read_text(encoding="utf-8-sig")
    assert summary_csv.startswith("单位代码 Institution,")


def test_bad_register_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "register.yaml").write_text(REGISTER.replace("staff: 200", "staff: many"), encoding="utf-8")
    r = subprocess.run(
        [EPCWATCH, "reporting", "check", "--register", str(tmp_path / "register.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1
    assert "register.yaml:8: institutions[0].staff" in r.stderr
