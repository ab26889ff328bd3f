"""The bureau's energy statistics: per site and building, energy by type and category, tce,
kWh per m² and per occupant, and the change against the same period last year.

The numbers come from the Portfolio dashboard's own queries (:mod:`queries`), expanded the way
Grafana expands them (:func:`influxql.expand`) for the period's whole local days, so a table
printed here and the dashboard showing the same period agree. Pure: the query runner is passed in.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Final, Literal
from zoneinfo import ZoneInfo

from epcwatch import energy, itemcodes
from epcwatch.dashboards import queries as q
from epcwatch.dashboards.errors import StatsError
from epcwatch.dashboards.influx import Series
from epcwatch.dashboards.influxql import Variable, expand
from epcwatch.portfolio import Portfolio, Site

PeriodKind = Literal["month", "year"]
Runner = Callable[[str], list[Series]]


@dataclass(frozen=True, slots=True)
class Period:
    kind: PeriodKind
    year: int
    month: int = 1

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}" if self.kind == "month" else f"{self.year:04d}"

    def start(self) -> date:
        return date(self.year, self.month if self.kind == "month" else 1, 1)

    def end(self) -> date:
        """First day after the period."""
        if self.kind == "year":
            return date(self.year + 1, 1, 1)
        return date(self.year + (self.month == 12), self.month % 12 + 1, 1)

    def last_year(self) -> Period:
        return Period(self.kind, self.year - 1, self.month)

    def window_ms(self, timezone: str) -> tuple[int, int]:
        """``$timeFilter`` bounds Grafana uses for this period in ``timezone`` (``to`` inclusive)."""
        tz = ZoneInfo(timezone)

        def ms(d: date) -> int:
            return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp() * 1000)

        return ms(self.start()), ms(self.end()) - 1


_AT = {"month": re.compile(r"^(\d{4})-(\d{2})$"), "year": re.compile(r"^(\d{4})$")}


def parse_period(kind: str, at: str | None, today: date) -> Period:
    """``--period``/``--at``; without ``--at`` the last complete month or year before ``today``."""
    if kind not in _AT:
        raise StatsError(f"--period must be month or year, not {kind!r}")
    if at is None:
        if kind == "year":
            return Period("year", today.year - 1)
        return Period("month", today.year - (today.month == 1), (today.month - 2) % 12 + 1)
    m = _AT[kind].match(at)
    if m is None:
        raise StatsError(f"--at {at!r}: expected {'YYYY-MM' if kind == 'month' else 'YYYY'}")
    year = int(m.group(1))
    month = int(m.group(2)) if kind == "month" else 1
    if not 1 <= month <= 12 or year < 1970:
        raise StatsError(f"--at {at!r} is not a valid {kind}")
    return Period("month" if kind == "month" else "year", year, month)


#: CSV columns, in order
COLUMNS: Final = (
    "period",
    "site",
    "building",
    "electricity_kwh",
    *(f"category_{c}_kwh" for c in q.CATEGORIES),
    "water_m3",
    "gas_m3",
    "heat_kwh",
    "cooling_kwh",
    "tce_electricity",
    "tce_gas",
    "tce_heat",
    "tce_cooling",
    "tce_total",
    "co2_t",
    "floor_area_m2",
    "occupants",
    "kwh_per_m2",
    "kwh_per_occupant",
    "electricity_kwh_last_year",
    "change_pct",
    "completeness_pct",
)


@dataclass(frozen=True, slots=True)
class Factors:
    """The conversion table (GB/T 2589-2020 and CO2 defaults, epcwatch.energy) and the basis of
    electricity (calorific equivalent, or equal value with the table's equal-value factor)."""

    table: energy.Factors = field(default_factory=energy.default_factors)
    basis: energy.Basis = "calorific"


Row = dict[str, object]


def _variables(site: Site) -> dict[str, Variable]:
    return {
        "site": Variable.many([site.id]),
        "building": Variable.many([b.id for b in site.buildings]),
        "category": Variable.many(list(q.CATEGORIES)),
    }


def _sum_by(
    series: list[Series], column: str, key: Callable[[dict[str, str]], tuple[str, ...]]
) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for s in series:
        for row in s.rows:
            v = row.get(column)
            if isinstance(v, int | float):
                k = key(s.tags)
                out[k] = out.get(k, 0.0) + float(v)
    return out


def compute(portfolio: Portfolio, period: Period, run: Runner, factors: Factors | None = None) -> list[Row]:
    """Rows per site (``building`` empty) followed by that site's buildings."""
    f = factors or Factors()
    if f.basis == "equal_value" and f.table.electricity.equal_value_kgce is None:
        raise StatsError("the equal-value basis needs the year's factor (--equal-value-kgce-per-kwh)")
    rows: list[Row] = []
    for site in portfolio.sites:
        rows += _site_rows(site, period, run, f)
    return rows


def _building_key(tags: dict[str, str]) -> tuple[str, ...]:
    return (tags.get("building", ""),)


def _category_key(tags: dict[str, str]) -> tuple[str, ...]:
    return (tags.get("building", ""), tags.get("category", ""))


def _site_rows(site: Site, period: Period, run: Runner, f: Factors) -> list[Row]:
    variables = _variables(site)
    now_from, now_to = period.window_ms(site.timezone)
    ly_from, ly_to = period.last_year().window_ms(site.timezone)

    def fetch(query: str, t0: int, t1: int) -> list[Series]:
        return run(expand(query, t0, t1, variables))

    by_b = ("site", "building")
    elec = _sum_by(fetch(q.electricity(by_b), now_from, now_to), "electricity_kwh", _building_key)
    elec_ly = _sum_by(fetch(q.electricity(by_b), ly_from, ly_to), "electricity_kwh", _building_key)
    cats = _sum_by(
        fetch(q.electricity(("building", "category")), now_from, now_to), "electricity_kwh", _category_key
    )
    types_series = fetch(q.energy_types(by_b), now_from, now_to)
    complete: dict[str, list[float]] = {}
    for s in fetch(q.completeness(), now_from, now_to):
        for r in s.rows:
            complete.setdefault(s.tags.get("building", ""), []).append(float(r["completeness_pct"]))
    types = {
        fld: _sum_by(types_series, fld, _building_key)
        for fld in ("water_volume", "gas_volume", "heat_energy", "cooling_energy")
    }

    def row(building: str, keys: Sequence[str], area: float, occupants: int) -> Row:
        def total(d: dict[tuple[str, ...], float]) -> float:
            return sum(d.get((k,), 0.0) for k in keys)

        e = total(elec)
        ly = total(elec_ly)
        water, gas, heat, cool = (
            total(types[x]) for x in ("water_volume", "gas_volume", "heat_energy", "cooling_energy")
        )
        by_category = {f"category_{c}_kwh": sum(cats.get((k, c), 0.0) for k in keys) for c in q.CATEGORIES}
        amounts = {"electricity": (e, "kWh"), "natural_gas": (gas, "m3"), "heat": (heat, "kWh")}
        amounts["cooling"] = (cool, "kWh")
        tce = {
            c: energy.tce_or_none(c, v, u, basis=f.basis, factors=f.table) for c, (v, u) in amounts.items()
        }
        co2 = [_co2_or_none(c, v, u, f.table) for c, (v, u) in amounts.items() if v]
        return {
            "period": period.label,
            "site": site.id,
            "building": building,
            "electricity_kwh": e,
            **by_category,
            "water_m3": water,
            "gas_m3": gas,
            "heat_kwh": heat,
            "cooling_kwh": cool,
            "tce_electricity": tce["electricity"],
            "tce_gas": tce["natural_gas"],
            "tce_heat": tce["heat"],
            "tce_cooling": tce["cooling"],
            # carriers without a factor (water; cooling unless configured) are not in the total
            "tce_total": sum(v for v in tce.values() if v is not None),
            "co2_t": sum(v for v in co2 if v is not None),
            "floor_area_m2": area,
            "occupants": occupants,
            "kwh_per_m2": e / area if area else None,
            "kwh_per_occupant": e / occupants if occupants else None,
            "electricity_kwh_last_year": ly,
            "change_pct": (e - ly) / ly * 100 if ly else None,
            # mean over the sub-meters that reported at all; a meter silent all period is not seen
            "completeness_pct": _mean([v for k in keys for v in complete.get(k, [])]),
        }

    area = sum(b.floor_area_m2 for b in site.buildings)
    people = sum(b.occupants for b in site.buildings)
    rows = [row("", [b.id for b in site.buildings], area, people)]
    rows += [row(b.id, [b.id], b.floor_area_m2, b.occupants) for b in site.buildings]
    return rows


def _co2_or_none(carrier: str, quantity: float, unit: str, table: energy.Factors) -> float | None:
    try:
        return energy.to_co2(carrier, quantity, unit, factors=table)
    except energy.EnergyError:
        return None


#: CSV columns of the item-code table (``epcwatch stats --by-item``)
ITEM_COLUMNS: Final = (
    "period", "site", "building", "level", "code", "zh", "en", "electricity_kwh", "share_pct",
)  # fmt: skip


def compute_items(portfolio: Portfolio, period: Period, run: Runner) -> list[Row]:
    """Electricity of the category sub-meters per national item code, level 1 (01A00 …, from the
    ``category`` tag) and level 2 (01A10 …, from ``item_code``), per site and building, with the
    share of the site's or building's electricity. Pure: the query runner is passed in."""
    rows: list[Row] = []
    for site in portfolio.sites:
        variables = _variables(site)
        t0, t1 = period.window_ms(site.timezone)
        by = ("building", "category", "item_code")
        series = run(expand(q.electricity(by), t0, t1, variables))
        kwh = _sum_by(series, "electricity_kwh", lambda t: (t.get("building", ""), t.get("item_code", "")))
        scopes = [("", [b.id for b in site.buildings]), *((b.id, [b.id]) for b in site.buildings)]
        for building, keys in scopes:
            total = sum(v for (b, _), v in kwh.items() if b in keys)
            per_code: dict[tuple[int, str], float] = {}
            for (b, code), v in kwh.items():
                if b not in keys or not itemcodes.is_known(code):
                    continue
                l1 = itemcodes.first_level(code)
                per_code[(1, l1)] = per_code.get((1, l1), 0.0) + v
                per_code[(2, code)] = per_code.get((2, code), 0.0) + v
            for (level, code), v in sorted(per_code.items()):
                c = itemcodes.lookup(code)
                rows.append(
                    {
                        "period": period.label,
                        "site": site.id,
                        "building": building,
                        "level": level,
                        "code": code,
                        "zh": c.zh,
                        "en": c.en,
                        "electricity_kwh": v,
                        "share_pct": v / total * 100 if total else None,
                    }
                )
    return rows


def items_to_csv(rows: Sequence[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(ITEM_COLUMNS)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in ITEM_COLUMNS])
    return buf.getvalue()


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1 else f"{v:.3f}"
    return str(v)


def to_csv(rows: Sequence[Row]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in COLUMNS])
    return buf.getvalue()
