"""The statistics report per institution and period, and the city roll-up (pure).

Inputs are plain data: the register, each meter's consumption over the period and over the same
period last year (:class:`MeterFigures`, read by :mod:`epcwatch.reporting.influxio`), and the
imported non-metered rows. Definitions (docs/reporting.md):

- consumption by carrier = Σ of the institution's meters with ``in_total`` (metered) and,
  on separate lines, Σ of imported rows whose period lies inside the report period (imported);
- tce = Σ quantity × kgce factor / 1000 over carriers with a factor (water has none);
- kgce/person = tce × 1000 / heads of staff; kgce/m² = tce × 1000 / Σ building floor area;
  electricity kWh/person and kWh/m², water m³/person likewise;
- change on last year = this − last (absolute) and (this − last) / last × 100 (%, none when
  last year is 0);
- completeness of a meter = Σ daily coverage / days in the period (0..1).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from epcwatch.reporting.factors import Factors, default_factors
from epcwatch.reporting.imports import ImportedRow
from epcwatch.reporting.periods import Period
from epcwatch.reporting.register import Institution

Origin = Literal["metered", "imported"]


@dataclass(frozen=True, slots=True)
class MeterFigures:
    """One meter's consumption over a period (base unit) and the sum of its daily coverage."""

    value: float = 0.0
    coverage_days: float = 0.0


@dataclass(frozen=True, slots=True)
class CarrierLine:
    carrier: str
    zh: str
    origin: Origin
    quantity: float
    unit: str
    kgce_per_unit: float | None
    tce: float | None
    last_year_quantity: float
    last_year_tce: float | None
    #: meters (metered) or ``source (file:line)`` entries (imported) the line sums
    basis: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MeterLine:
    meter: str
    carrier: str
    unit: str
    virtual: bool
    in_total: bool
    formula: str | None
    value: float
    last_year_value: float
    completeness: float


@dataclass(frozen=True, slots=True)
class InstitutionReport:
    institution: str
    name: str
    region: str
    period: str
    staff: int
    floor_area_m2: float
    heated_area_m2: float | None
    cooled_area_m2: float | None
    carriers: tuple[CarrierLine, ...]
    meters: tuple[MeterLine, ...]
    total_tce: float
    last_year_tce: float
    change_tce: float
    change_pct: float | None
    kgce_per_person: float | None
    kgce_per_m2: float
    electricity_kwh: float
    electricity_kwh_per_person: float | None
    electricity_kwh_per_m2: float
    water_m3: float
    water_m3_per_person: float | None
    not_apportioned: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ranked:
    rank: int
    institution: str
    name: str
    value: float


@dataclass(frozen=True, slots=True)
class CityReport:
    period: str
    institutions: int
    by_carrier: tuple[tuple[str, Origin, str, float, float | None], ...]  # carrier, origin, unit, qty, tce
    total_tce: float
    last_year_tce: float
    change_tce: float
    change_pct: float | None
    #: like for like: only institutions with consumption in both years
    comparable: int
    comparable_change_pct: float | None
    fell: int
    rose: int
    top_tce: tuple[Ranked, ...]
    top_kgce_per_m2: tuple[Ranked, ...]
    top_fall_pct: tuple[Ranked, ...]
    factors: tuple[tuple[str, str, str, float | None], ...] = field(default=())  # carrier, zh, unit, kgce


def _pct(this: float, last: float) -> float | None:
    return None if last == 0 else (this - last) / last * 100.0


def _per(x: float, n: float) -> float | None:
    return None if n == 0 else x / n


def institution_report(
    inst: Institution,
    period: Period,
    *,
    this_year: Mapping[str, MeterFigures],
    last_year: Mapping[str, MeterFigures],
    imports: Iterable[ImportedRow],
    factors: Factors | None = None,
) -> InstitutionReport:
    """``this_year``/``last_year``: figures by meter id (missing = no data)."""
    f = factors or default_factors()
    days = period.days()
    meters: list[MeterLine] = []
    metered: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    basis: dict[str, list[str]] = defaultdict(list)
    for m in inst.meters:
        cur = this_year.get(m.id, MeterFigures())
        old = last_year.get(m.id, MeterFigures())
        meters.append(
            MeterLine(
                m.id,
                m.carrier,
                f.carrier(m.carrier).unit,
                m.virtual,
                m.in_total,
                m.formula_text,
                cur.value,
                old.value,
                min(1.0, cur.coverage_days / days),
            )
        )
        if m.in_total:
            metered[m.carrier][0] += cur.value
            metered[m.carrier][1] += old.value
            basis[m.carrier].append(m.id + (f" = {m.formula_text}" if m.formula_text else ""))
    imported: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    ibasis: dict[str, list[str]] = defaultdict(list)
    not_apportioned: list[str] = []
    for r in imports:
        if r.institution != inst.id:
            continue
        where = f"{r.source} ({r.file}:{r.line})"
        if period.contains(r.period):
            imported[r.carrier][0] += r.quantity_base
            ibasis[r.carrier].append(where)
        elif period.last_year().contains(r.period):
            imported[r.carrier][1] += r.quantity_base
        elif r.period.contains(period) or period.last_year().start() <= r.period.start() < period.end():
            not_apportioned.append(f"{r.carrier} {r.period.label}: {where}")

    lines: list[CarrierLine] = []
    groups: tuple[tuple[Origin, dict[str, list[float]], dict[str, list[str]]], ...] = (
        ("metered", metered, basis),
        ("imported", imported, ibasis),
    )
    for origin, table, bs in groups:
        for carrier in sorted(table):
            qty, prev = table[carrier]
            c = f.carrier(carrier)
            lines.append(
                CarrierLine(
                    carrier,
                    c.zh,
                    origin,
                    qty,
                    c.unit,
                    c.kgce,
                    f.tce(carrier, qty),
                    prev,
                    f.tce(carrier, prev),
                    tuple(bs.get(carrier, ())),
                )
            )
    total = sum(x.tce or 0.0 for x in lines)
    last = sum(x.last_year_tce or 0.0 for x in lines)
    area = inst.floor_area_m2
    elec = sum(x.quantity for x in lines if x.carrier == "electricity")
    water = sum(x.quantity for x in lines if x.carrier == "water")
    kgce = total * 1000.0
    return InstitutionReport(
        institution=inst.id,
        name=inst.name,
        region=inst.region,
        period=period.label,
        staff=inst.staff,
        floor_area_m2=area,
        heated_area_m2=inst.heated_area_m2,
        cooled_area_m2=inst.cooled_area_m2,
        carriers=tuple(lines),
        meters=tuple(meters),
        total_tce=total,
        last_year_tce=last,
        change_tce=total - last,
        change_pct=_pct(total, last),
        kgce_per_person=_per(kgce, inst.staff),
        kgce_per_m2=kgce / area,
        electricity_kwh=elec,
        electricity_kwh_per_person=_per(elec, inst.staff),
        electricity_kwh_per_m2=elec / area,
        water_m3=water,
        water_m3_per_person=_per(water, inst.staff),
        not_apportioned=tuple(not_apportioned),
    )


class CityAccumulator:
    """The city roll-up, fed one institution report at a time (so 13,000 institutions never need
    to be held at once: only the figures rankings need are kept)."""

    def __init__(self, period: Period, factors: Factors | None = None, top: int = 20) -> None:
        self.period = period
        self.factors = factors or default_factors()
        self.top = top
        self.n = 0
        self.by_carrier: dict[tuple[str, Origin], float] = defaultdict(float)
        self.total = 0.0
        self.last = 0.0
        self.cmp_this = 0.0
        self.cmp_last = 0.0
        self.comparable = 0
        self.fell = 0
        self.rose = 0
        self._rank: list[tuple[str, str, float, float, float | None]] = []

    def add(self, r: InstitutionReport) -> None:
        self.n += 1
        for c in r.carriers:
            self.by_carrier[(c.carrier, c.origin)] += c.quantity
        self.total += r.total_tce
        self.last += r.last_year_tce
        if r.total_tce > 0 and r.last_year_tce > 0:
            self.comparable += 1
            self.cmp_this += r.total_tce
            self.cmp_last += r.last_year_tce
            if r.total_tce < r.last_year_tce:
                self.fell += 1
            elif r.total_tce > r.last_year_tce:
                self.rose += 1
        self._rank.append((r.institution, r.name, r.total_tce, r.kgce_per_m2, r.change_pct))

    def result(self) -> CityReport:
        f = self.factors

        def ranked(key: int, reverse: bool, only: bool = False) -> tuple[Ranked, ...]:
            rows = [(x[0], x[1], x[key]) for x in self._rank if not only or x[key] is not None]
            vals = [(i, n, float(v or 0.0)) for i, n, v in rows if not isinstance(v, str)]
            vals.sort(key=lambda x: (-x[2] if reverse else x[2], x[0]))
            return tuple(Ranked(k + 1, i, n, v) for k, (i, n, v) in enumerate(vals[: self.top]))

        carriers = tuple(
            (c, o, f.carrier(c).unit, q, f.tce(c, q)) for (c, o), q in sorted(self.by_carrier.items())
        )
        return CityReport(
            period=self.period.label,
            institutions=self.n,
            by_carrier=carriers,
            total_tce=self.total,
            last_year_tce=self.last,
            change_tce=self.total - self.last,
            change_pct=_pct(self.total, self.last),
            comparable=self.comparable,
            comparable_change_pct=_pct(self.cmp_this, self.cmp_last),
            fell=self.fell,
            rose=self.rose,
            top_tce=ranked(2, True),
            top_kgce_per_m2=ranked(3, True),
            top_fall_pct=ranked(4, False, only=True),
            factors=tuple((k, c.zh, c.unit, c.kgce) for k, c in f.carriers.items()),
        )


def city_report(
    reports: Iterable[InstitutionReport], period: Period, factors: Factors | None = None
) -> CityReport:
    acc = CityAccumulator(period, factors)
    for r in reports:
        acc.add(r)
    return acc.result()
