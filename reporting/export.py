"""Statistics report files: CSV (one file per table), XLSX (one sheet per table, shaped like a
statistics reporting form: bilingual headers with units) and JSON.

:class:`ReportWriter` takes institution reports one at a time and writes them straight out, so
a city of 13,000 institutions is never held in memory; :meth:`ReportWriter.close` adds the city
roll-up, the rankings and the factors used.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from openpyxl import Workbook

from epcwatch.reporting.factors import Factors
from epcwatch.reporting.statistics import CityReport, InstitutionReport

SUMMARY = (
    "单位代码 Institution",
    "单位名称 Name",
    "地区 Region",
    "统计期 Period",
    "用能人数 Staff (persons)",
    "建筑面积 Floor area (m²)",
    "采暖面积 Heated area (m²)",
    "空调面积 Cooled area (m²)",
    "综合能耗 Total energy (tce)",
    "上年同期 Last year (tce)",
    "增减量 Change (tce)",
    "增减率 Change (%)",
    "人均综合能耗 Energy per person (kgce/person)",
    "单位面积能耗 Energy per area (kgce/m²)",
    "用电量 Electricity (kWh)",
    "人均用电 Electricity per person (kWh/person)",
    "单位面积用电 Electricity per area (kWh/m²)",
    "用水量 Water (m³)",
    "人均用水 Water per person (m³/person)",
    "未分摊导入 Imported rows not apportioned",
)
CARRIERS = (
    "单位代码 Institution",
    "统计期 Period",
    "能源品种 Carrier",
    "品种 Carrier (中文)",
    "来源 Origin (metered 计量 / imported 导入)",
    "实物量 Quantity",
    "计量单位 Unit",
    "折标系数 Factor (kgce/unit)",
    "折标量 Energy (tce)",
    "上年同期实物量 Last year quantity",
    "上年同期折标量 Last year (tce)",
    "依据 Basis (meters and formulas, or import sources)",
)
METERS = (
    "单位代码 Institution",
    "统计期 Period",
    "计量表 Meter",
    "能源品种 Carrier",
    "计量单位 Unit",
    "虚拟表 Virtual",
    "计入总量 In total",
    "公式 Formula",
    "本期 Value (unit)",
    "上年同期 Last year (unit)",
    "数据完整率 Completeness (%)",
)
CITY = ("项目 Item", "数值 Value", "单位 Unit")
RANKINGS = (
    "排名类别 Ranking",
    "名次 Rank",
    "单位代码 Institution",
    "单位名称 Name",
    "数值 Value",
    "单位 Unit",
)
FACTORS = (
    "能源品种 Carrier",
    "品种 Carrier (中文)",
    "计量单位 Unit",
    "折标系数 Factor (kgce/unit)",
    "依据 Standard",
)

SHEETS = {
    "summary": ("表1 综合能耗 Summary", SUMMARY),
    "carriers": ("表2 分品种 Carriers", CARRIERS),
    "meters": ("表3 计量 Meters", METERS),
    "city": ("表4 全市 City", CITY),
    "rankings": ("表5 排名 Rankings", RANKINGS),
    "factors": ("表6 折标系数 Factors", FACTORS),
}


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def summary_row(r: InstitutionReport) -> list[Any]:
    return [
        r.institution,
        r.name,
        r.region,
        r.period,
        r.staff,
        _r(r.floor_area_m2, 2),
        _r(r.heated_area_m2, 2),
        _r(r.cooled_area_m2, 2),
        _r(r.total_tce),
        _r(r.last_year_tce),
        _r(r.change_tce),
        _r(r.change_pct, 2),
        _r(r.kgce_per_person, 3),
        _r(r.kgce_per_m2, 3),
        _r(r.electricity_kwh, 2),
        _r(r.electricity_kwh_per_person, 3),
        _r(r.electricity_kwh_per_m2, 3),
        _r(r.water_m3, 3),
        _r(r.water_m3_per_person, 4),
        "; ".join(r.not_apportioned),
    ]


def carrier_rows(r: InstitutionReport) -> list[list[Any]]:
    return [
        [
            r.institution,
            r.period,
            c.carrier,
            c.zh,
            c.origin,
            _r(c.quantity, 3),
            c.unit,
            c.kgce_per_unit,
            _r(c.tce),
            _r(c.last_year_quantity, 3),
            _r(c.last_year_tce),
            "; ".join(c.basis),
        ]
        for c in r.carriers
    ]


def meter_rows(r: InstitutionReport) -> list[list[Any]]:
    return [
        [
            r.institution,
            r.period,
            m.meter,
            m.carrier,
            m.unit,
            "yes" if m.virtual else "no",
            "yes" if m.in_total else "no",
            m.formula or "",
            _r(m.value, 3),
            _r(m.last_year_value, 3),
            _r(m.completeness * 100.0, 2),
        ]
        for m in r.meters
    ]


def city_rows(c: CityReport) -> list[list[Any]]:
    rows: list[list[Any]] = [
        ["统计期 Period", c.period, ""],
        ["单位数 Institutions", c.institutions, ""],
        ["综合能耗 Total energy", _r(c.total_tce), "tce"],
        ["上年同期 Last year", _r(c.last_year_tce), "tce"],
        ["增减量 Change", _r(c.change_tce), "tce"],
        ["增减率 Change", _r(c.change_pct, 2), "%"],
        ["可比单位数 Institutions with both years", c.comparable, ""],
        ["可比增减率 Like-for-like change", _r(c.comparable_change_pct, 2), "%"],
        ["能耗下降单位数 Institutions whose total fell", c.fell, ""],
        ["能耗上升单位数 Institutions whose total rose", c.rose, ""],
    ]
    for carrier, origin, unit, qty, tce in c.by_carrier:
        rows.append([f"{carrier} ({origin})", _r(qty, 3), unit])
        if tce is not None:
            rows.append([f"{carrier} ({origin})", _r(tce), "tce"])
    return rows


def ranking_rows(c: CityReport) -> list[list[Any]]:
    out: list[list[Any]] = []
    for label, unit, items in (
        ("综合能耗最高 Highest total", "tce", c.top_tce),
        ("单位面积能耗最高 Highest per m²", "kgce/m²", c.top_kgce_per_m2),
        ("降幅最大 Largest fall", "%", c.top_fall_pct),
    ):
        out.extend([label, x.rank, x.institution, x.name, _r(x.value, 4), unit] for x in items)
    return out


def factor_rows(f: Factors) -> list[list[Any]]:
    return [[k, c.zh, c.unit, c.kgce, f.standard] for k, c in f.carriers.items()]


class ReportWriter:
    """Writes ``stats-<period>.xlsx``, ``stats-<period>-<table>.csv`` and ``stats-<period>.json``."""

    def __init__(self, out: Path, period: str, factors: Factors) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.period = period
        self.factors = factors
        self.paths: list[Path] = []
        self._wb = Workbook(write_only=True)
        self._ws = {k: self._wb.create_sheet(title) for k, (title, _) in SHEETS.items()}
        self._files: dict[str, IO[str]] = {}
        self._csv: dict[str, Any] = {}
        for k, (_, header) in SHEETS.items():
            self._ws[k].append(list(header))
            p = out / f"stats-{period}-{k}.csv"
            fh = p.open("w", encoding="utf-8-sig", newline="")
            self._files[k] = fh
            self._csv[k] = csv.writer(fh)
            self._csv[k].writerow(header)
            self.paths.append(p)
        self._json_path = out / f"stats-{period}.json"
        self._json = self._json_path.open("w", encoding="utf-8")
        self._json.write('{"period": ' + json.dumps(period) + ', "institutions": [\n')
        self._first = True

    def _rows(self, key: str, rows: list[list[Any]]) -> None:
        for row in rows:
            self._ws[key].append(row)
            self._csv[key].writerow(["" if v is None else v for v in row])

    def add(self, r: InstitutionReport) -> None:
        self._rows("summary", [summary_row(r)])
        self._rows("carriers", carrier_rows(r))
        self._rows("meters", meter_rows(r))
        self._json.write(
            ("" if self._first else ",\n") + json.dumps(dataclasses.asdict(r), ensure_ascii=False)
        )
        self._first = False

    def close(self, city: CityReport) -> list[Path]:
        self._rows("city", city_rows(city))
        self._rows("rankings", ranking_rows(city))
        self._rows("factors", factor_rows(self.factors))
        self._json.write(
            "\n],\n"
            + f'"city": {json.dumps(dataclasses.asdict(city), ensure_ascii=False)},\n'
            + f'"factors": {json.dumps(self.factors.model_dump(), ensure_ascii=False)}\n}}\n'
        )
        self._json.close()
        for fh in self._files.values():
            fh.close()
        xlsx = self.out / f"stats-{self.period}.xlsx"
        self._wb.save(xlsx)
        return [xlsx, *self.paths, self._json_path]

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._json.closed:
            self._json.close()
        if e is not None:  # end the sheets' writers, or they complain when collected
            for ws in self._ws.values():
                with contextlib.suppress(Exception):
                    ws.close()
        for fh in self._files.values():
            if not fh.closed:
                fh.close()
