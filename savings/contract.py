"""The M&V contract file: what is metered, which periods, which model, how savings are priced.

Loaded through :func:`epcwatch.config.load_yaml_model`, so a mistake is reported as
``contract.yaml:12: meters[0].device: …``. ``demo/data/contract.yaml`` is a complete example.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from epcwatch.config import load_yaml_model
from epcwatch.fields import Timezone
from epcwatch.savings.models import MODEL_TYPES
from epcwatch.savings.savings import TCE_CALORIFIC_KGCE_PER_KWH
from epcwatch.wire import Id, TagValue

FieldName = Field(pattern=r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DateRange(_Strict):
    """A run of whole site-local days, ``end`` inclusive."""

    start: date
    end: date

    @model_validator(mode="after")
    def _order(self) -> Self:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def __str__(self) -> str:
        return f"{self.start}/{self.end}"


class MeterSelector(_Strict):
    """Devices whose tags all match; several selectors add up (a device counts once)."""

    building: TagValue | None = None
    device: Id | None = None
    category: TagValue | None = None
    tenant: TagValue | None = None
    #: national item code (01A00 level 1, 01A10 level 2, 02000 water …; docs/chinese-standards.md)
    item_code: str | None = Field(default=None, pattern=r"^[0-9]{2}[0-9A-Z][0-9]{2}$")
    #: InfluxDB measurement (device kind) holding the raw counter, for the fallback path
    measurement: str = Field(default="meter", pattern=r"^[a-z][a-z0-9_]*$")
    #: counter field (from the measurement vocabulary) whose daily increase is the energy
    field: str = Field(default="energy_import", pattern=r"^[a-z][a-z0-9_]*$")

    @model_validator(mode="after")
    def _some_tag(self) -> Self:
        if not any((self.building, self.device, self.category, self.tenant, self.item_code)):
            raise ValueError("select meters by at least one of building, device, category, tenant, item_code")
        return self

    def tags(self) -> dict[str, str]:
        t = {
            "building": self.building,
            "device": self.device,
            "category": self.category,
            "tenant": self.tenant,
            "item_code": self.item_code,
        }
        return {k: v for k, v in t.items() if v is not None}


class Retrofit(_Strict):
    date: date
    description: str = Field(min_length=1)


class InfluxWeather(_Strict):
    """An outdoor-temperature point stored in InfluxDB (daily mean of its readings)."""

    measurement: str = Field(default="sensor", pattern=r"^[a-z][a-z0-9_]*$")
    device: Id = "weather"
    field: str = Field(default="outdoor_temp", pattern=r"^[a-z][a-z0-9_]*$")
    site: Id | None = None  # default: the contract's site


class CsvWeather(_Strict):
    """A CSV with ``timestamp`` (or ``date``) and ``temperature``; averaged per local day."""

    path: str
    unit: Literal["C", "F"] = "C"


class CsvSeries(_Strict):
    """A CSV with ``timestamp`` (or ``date``) and the named ``column``; averaged per local day."""

    path: str
    column: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class Variable(_Strict):
    """An independent variable the contract names (occupancy, production): its daily mean
    enters the change-point models linearly; from an InfluxDB series or a CSV."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    influx: InfluxWeather | None = None
    csv: CsvSeries | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.influx is None) == (self.csv is None):
            raise ValueError(f"variable {self.name!r} needs exactly one of influx or csv")
        if self.name in ("date", "energy", "temperature", "nonworking"):
            raise ValueError(f"variable name {self.name!r} is reserved")
        return self


class Weather(_Strict):
    influx: InfluxWeather | None = None
    csv: CsvWeather | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.influx is None) == (self.csv is None):
            raise ValueError("give exactly one weather source: influx or csv")
        return self


class ModelChoice(_Strict):
    type: Literal["auto", "mean", "2p", "3pc", "3ph", "4p", "5p", "hdd_cdd"] = "auto"
    #: non-working-day shift: auto (kept when significant), on, off
    day_type: Literal["auto", "on", "off"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: object) -> object:
        return {"type": v} if isinstance(v, str) else v


class Guarantee(_Strict):
    annual_kwh: float = Field(gt=0, description="guaranteed savings per year, kWh")


class TouBand(_Strict):
    name: str = Field(min_length=1)
    #: local clock ranges, e.g. ["08:00-11:00", "18:00-21:00"]
    hours: list[str] = Field(min_length=1)
    price: float = Field(ge=0, description="currency per kWh")
    #: share of the savings falling in this band; default: its share of the 24 hours
    share: float | None = Field(default=None, ge=0, le=1)

    @field_validator("hours")
    @classmethod
    def _ranges(cls, v: list[str]) -> list[str]:
        for r in v:
            try:
                a, b = r.split("-")
                ha, hb = _hour(a), _hour(b)
            except ValueError:
                raise ValueError(f"hour range {r!r} must look like 08:00-11:00") from None
            if not 0 <= ha < hb <= 24:
                raise ValueError(f"hour range {r!r} must run forwards within one day")
        return v

    def hours_count(self) -> float:
        total = 0.0
        for r in self.hours:
            a, b = r.split("-")
            total += _hour(b) - _hour(a)
        return total


def _hour(text: str) -> float:
    h, m = text.strip().split(":")
    return int(h) + int(m) / 60.0


class DemandCharge(_Strict):
    """Demand savings are stipulated (daily data cannot measure peaks): kW reduction × price."""

    price_per_kw_month: float = Field(ge=0)
    demand_reduction_kw: float = Field(ge=0)


class Tariff(_Strict):
    currency: str = "CNY"
    flat: float | None = Field(default=None, ge=0, description="currency per kWh")
    time_of_use: list[TouBand] | None = None
    demand_charge: DemandCharge | None = None

    @model_validator(mode="after")
    def _one_energy_price(self) -> Self:
        if (self.flat is None) == (self.time_of_use is None):
            raise ValueError("give exactly one energy price: flat or time_of_use")
        if self.time_of_use is not None:
            shares = [b.share for b in self.time_of_use]
            if all(s is None for s in shares):
                if abs(sum(b.hours_count() for b in self.time_of_use) - 24.0) > 1e-6:
                    raise ValueError("time_of_use bands must cover the 24 hours exactly (or give shares)")
            elif any(s is None for s in shares) or abs(sum(s or 0.0 for s in shares) - 1.0) > 1e-6:
                raise ValueError("time_of_use shares must be given for every band and sum to 1")
        return self


class Factors(_Strict):
    #: which tce factor the report's headline uses
    tce_basis: Literal["calorific", "equal_value"] = "calorific"
    tce_calorific_kgce_per_kwh: float = Field(default=TCE_CALORIFIC_KGCE_PER_KWH, gt=0)
    #: equal-value factor (the year's thermal-power coal rate, e.g. 0.2829 kgce/kWh)
    tce_equal_value_kgce_per_kwh: float | None = Field(default=None, gt=0)
    co2_kg_per_kwh: float = Field(default=0.5703, ge=0, description="grid emission factor")

    @model_validator(mode="after")
    def _equal_value(self) -> Self:
        if self.tce_basis == "equal_value" and self.tce_equal_value_kgce_per_kwh is None:
            raise ValueError("tce_basis equal_value needs tce_equal_value_kgce_per_kwh")
        return self

    @property
    def tce_kgce_per_kwh(self) -> float:
        if self.tce_basis == "equal_value" and self.tce_equal_value_kgce_per_kwh is not None:
            return self.tce_equal_value_kgce_per_kwh
        return self.tce_calorific_kgce_per_kwh


class Adjustment(_Strict):
    """A non-routine adjustment added to the adjusted baseline over a date range:
    ``amount_kwh`` in total (spread evenly over the range's days) or ``fraction`` of the
    adjusted baseline (e.g. 0.05 for a 5 % larger floor area). Negative values reduce it.
    ``uncertainty`` is the adjustment's own standard uncertainty (one standard deviation) as a
    share of the applied amount, e.g. 0.2 for ± 20 %; 0 (the default) states it as exact."""

    start: date
    end: date
    amount_kwh: float | None = None
    fraction: float | None = Field(default=None, gt=-1, lt=10)
    reason: str = Field(min_length=3)
    uncertainty: float = Field(default=0.0, ge=0, le=10)

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.amount_kwh is None) == (self.fraction is None):
            raise ValueError("give exactly one of amount_kwh or fraction")
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


def _days(items: list[str]) -> set[date]:
    out: set[date] = set()
    for it in items:
        a, _, b = str(it).partition("/")
        d0 = date.fromisoformat(a.strip())
        d1 = date.fromisoformat(b.strip()) if b else d0
        if d1 < d0:
            raise ValueError(f"range {it!r} ends before it starts")
        out.update(d0 + timedelta(days=i) for i in range((d1 - d0).days + 1))
    return out


class Calendar(_Strict):
    """Which days are non-working: weekends, plus public holidays, minus make-up working days.
    Entries are ISO dates or ``START/END`` ranges (inclusive)."""

    weekends: bool = True
    holidays: list[str] = Field(default_factory=list)
    working_days: list[str] = Field(default_factory=list)

    @field_validator("holidays", "working_days", mode="before")
    @classmethod
    def _strings(cls, v: object) -> object:
        if isinstance(v, list):
            v = [str(x) for x in v]
            _days(v)
        return v

    def nonworking(self, days: list[date]) -> list[bool]:
        hol, work = _days(self.holidays), _days(self.working_days)
        return [(d in hol) or (self.weekends and d.weekday() >= 5 and d not in work) for d in days]


class Parties(_Strict):
    contractor: str = ""
    owner: str = ""
    verifier: str = ""


class Contract(_Strict):
    id: Id
    name: str = ""
    site: Id
    timezone: Timezone = "Asia/Shanghai"
    option: Literal["B", "C"]
    description: str = ""
    parties: Parties = Parties()
    meters: list[MeterSelector] = Field(min_length=1)
    baseline: DateRange
    reporting: DateRange
    retrofits: list[Retrofit] = Field(default_factory=list)
    model: ModelChoice = ModelChoice()
    weather: Weather
    #: normal-year daily temperatures: a CSV path (relative to this file) or ``builtin:chengdu``
    normal_year: str | None = "builtin:chengdu"
    guarantee: Guarantee | None = None
    tariff: Tariff
    factors: Factors = Factors()
    adjustments: list[Adjustment] = Field(default_factory=list)
    calendar: Calendar = Calendar()
    #: fit even when data sufficiency disqualifies the baseline (stated in the report)
    allow_insufficient_baseline: bool = False
    #: below this share (0-1) of reporting-period energy resting on verified readings, the
    #: report is marked "not verifiable" (docs/provenance.md; checked with `--keyring`)
    min_verified_share: float | None = Field(default=None, ge=0, le=1)
    #: a frozen baseline (baseline.json a report exported, relative to this file): its rows and
    #: model are used unchanged and any later change in the stored baseline data is reported
    frozen_baseline: str | None = None
    #: independent variables besides temperature (occupancy, production), daily models only
    variables: list[Variable] = Field(default_factory=list)

    @model_validator(mode="after")
    def _periods(self) -> Self:
        names = [v.name for v in self.variables]
        if len(set(names)) != len(names):
            raise ValueError(f"variable names must be unique: {names}")
        if self.reporting.start <= self.baseline.end:
            raise ValueError(
                f"reporting period {self.reporting} must start after the baseline {self.baseline}"
            )
        for r in self.retrofits:
            if not self.baseline.end < r.date <= self.reporting.start:
                raise ValueError(
                    f"retrofit on {r.date} must fall after the baseline and by the reporting start"
                )
        for a in self.adjustments:
            if a.start < self.reporting.start or a.end > self.reporting.end:
                raise ValueError(f"adjustment {a.start}/{a.end} must lie inside the reporting period")
        if self.model.type in ("towt", "towt-monthly") or self.model.type not in ("auto", *MODEL_TYPES):
            raise ValueError("contracts use daily models (auto, mean, 2p, 3pc, 3ph, 4p, 5p, hdd_cdd)")
        return self


def load_contract(path: str | os.PathLike[str]) -> Contract:
    return load_yaml_model(path, Contract)


def resolve(path_text: str, contract_path: str | os.PathLike[str] | None) -> Path:
    """A path in a contract, relative to the contract file's folder."""
    p = Path(path_text)
    if not p.is_absolute() and contract_path is not None:
        p = Path(contract_path).resolve().parent / p
    return p
