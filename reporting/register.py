"""The institution register (pure model, loaded from YAML with file:line:field errors).

Each institution has its buildings (floor area, heated and cooled area), its heads of staff and
its meters. A meter is physical (a device of a site, read from ``energy_interval``) or virtual (a
formula over other meters, :mod:`epcwatch.reporting.virtual`). Meters serving several
institutions (a building's main meter, a shared chiller plant) are listed under
``shared_meters`` and reach an institution through a virtual meter that apportions them.

Only meters with ``in_total: true`` (the default) add up to an institution's consumption; the
others (sub-meters kept for information) are listed but not summed, so nothing counts twice.
"""

from __future__ import annotations

import os
from typing import Annotated, Final, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from epcwatch.config import load_yaml_model
from epcwatch.fields import Timezone
from epcwatch.reporting.errors import FormulaError
from epcwatch.reporting.virtual import Formula, by_floor_area, by_meter_ratio, evaluation_order, parse_formula

MeterId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=64)]
MeteredCarrier = Literal["electricity", "water", "natural_gas", "heat"]

#: the ``energy_interval`` field holding each metered carrier's interval consumption
FIELD_OF: Final[dict[str, str]] = {
    "electricity": "energy_import",
    "water": "water_volume",
    "natural_gas": "gas_volume",
    "heat": "heat_energy",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Building(_Strict):
    id: str = Field(min_length=1)
    name: str = ""
    site: str | None = None
    floor_area_m2: float = Field(gt=0)
    heated_area_m2: float | None = Field(default=None, ge=0)
    cooled_area_m2: float | None = Field(default=None, ge=0)


class Apportion(_Strict):
    """Sugar for the two usual apportionments; becomes a formula."""

    source: MeterId
    by: Literal["floor_area", "meter_ratio"]
    share_m2: float | None = Field(default=None, gt=0)
    total_m2: float | None = Field(default=None, gt=0)
    meter: MeterId | None = None
    among: list[MeterId] | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if self.by == "floor_area" and (self.share_m2 is None or self.total_m2 is None):
            raise ValueError("by floor_area needs share_m2 and total_m2")
        if self.by == "floor_area" and self.share_m2 and self.total_m2 and self.share_m2 > self.total_m2:
            raise ValueError("share_m2 is larger than total_m2")
        if self.by == "meter_ratio" and (not self.meter or not self.among or self.meter not in self.among):
            raise ValueError("by meter_ratio needs meter and among (a list that contains meter)")
        return self

    def formula(self) -> str:
        if self.by == "floor_area":
            assert self.share_m2 is not None and self.total_m2 is not None
            return by_floor_area(self.source, self.share_m2, self.total_m2)
        assert self.meter is not None and self.among is not None
        return by_meter_ratio(self.source, self.meter, self.among)


class Meter(_Strict):
    id: MeterId
    carrier: MeteredCarrier = "electricity"
    #: physical meter: the site and device whose ``energy_interval`` it reads
    site: str | None = None
    device: str | None = None
    #: virtual meter: a formula over other meters, or an apportionment that becomes one
    formula: str | None = None
    apportion: Apportion | None = None
    in_total: bool = True
    name: str = ""
    #: extra tags of a virtual meter's series, so dashboards place it like a device
    #: (e.g. ``tenant`` for an apportioned tenant share); ignored for physical meters
    tags: dict[Literal["building", "floor", "category", "tenant"], str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind(self) -> Self:
        physical = self.device is not None
        virtual = self.formula is not None or self.apportion is not None
        if self.formula is not None and self.apportion is not None:
            raise ValueError("give formula or apportion, not both")
        if physical == virtual:
            raise ValueError("a meter is either physical (site and device) or virtual (formula or apportion)")
        if self.site is None:
            raise ValueError("site is required (virtual meters are written under it)")
        if self.formula is not None:
            try:
                parse_formula(self.formula)
            except FormulaError as exc:
                raise ValueError(str(exc)) from None
        return self

    @property
    def virtual(self) -> bool:
        return self.device is None

    @property
    def device_id(self) -> str:
        """The ``device`` tag of its series (a virtual meter's id)."""
        return self.device if self.device is not None else self.id

    @property
    def formula_text(self) -> str | None:
        if self.formula is not None:
            return parse_formula(self.formula).text
        return self.apportion.formula() if self.apportion is not None else None

    @property
    def field(self) -> str:
        return FIELD_OF[self.carrier]


class Institution(_Strict):
    id: MeterId
    name: str
    staff: int = Field(ge=0, description="heads of staff (用能人数)")
    region: str = ""
    buildings: list[Building] = Field(min_length=1)
    meters: list[Meter] = Field(default_factory=list)

    @property
    def floor_area_m2(self) -> float:
        return sum(b.floor_area_m2 for b in self.buildings)

    @property
    def heated_area_m2(self) -> float | None:
        areas = [b.heated_area_m2 for b in self.buildings if b.heated_area_m2 is not None]
        return sum(areas) if areas else None

    @property
    def cooled_area_m2(self) -> float | None:
        areas = [b.cooled_area_m2 for b in self.buildings if b.cooled_area_m2 is not None]
        return sum(areas) if areas else None


class Register(_Strict):
    timezone: Timezone = "Asia/Shanghai"
    institutions: list[Institution] = Field(min_length=1)
    shared_meters: list[Meter] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        seen: set[str] = set()
        for i in self.institutions:
            if i.id in seen:
                raise ValueError(f"institution id {i.id!r} appears twice")
            seen.add(i.id)
        ids: set[str] = set()
        for m in self.all_meters():
            if m.id in ids:
                raise ValueError(f"meter id {m.id!r} appears twice")
            ids.add(m.id)
        try:
            evaluation_order(self.formulas(), {m.id for m in self.all_meters() if not m.virtual})
        except FormulaError as exc:
            raise ValueError(str(exc)) from None
        return self

    def all_meters(self) -> list[Meter]:
        return [*self.shared_meters, *(m for i in self.institutions for m in i.meters)]

    def formulas(self) -> dict[str, Formula]:
        return {m.id: parse_formula(m.formula_text) for m in self.all_meters() if m.formula_text is not None}

    def meter(self, meter_id: str) -> Meter:
        for m in self.all_meters():
            if m.id == meter_id:
                return m
        raise KeyError(meter_id)


def load_register(path: str | os.PathLike[str]) -> Register:
    """Read and validate a register YAML; raises :class:`epcwatch.config.ConfigError`.

    A city's register has tens of thousands of lines: it is parsed with libyaml when available
    (ten times faster than the pure-Python parser); only a register that fails is parsed again
    with line tracking, so its errors still name file:line:field."""
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.load(fh, Loader=loader)
            if isinstance(data, dict):
                return Register.model_validate(data)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError):
            pass
    return load_yaml_model(path, Register)
