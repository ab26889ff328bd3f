"""Energy carriers in tonnes of standard coal (tce) and CO2 (pure).

The factors are data: ``epcwatch/data/energy_factors.yaml`` (GB/T 2589-2020 Appendix A for
standard coal; configurable CO2 defaults, sources cited in the file and in
docs/chinese-standards.md). This module only looks them up and converts units::

    from epcwatch import energy

    energy.to_tce("electricity", 1_000_000, "kWh")          # 122.9 t (calorific equivalent)
    energy.to_tce("electricity", 1_000_000, "kWh", basis="equal_value",
                  factors=energy.default_factors().with_equal_value(0.3))   # 300 t
    energy.to_tce("natural_gas", 10_000, "m3")              # 12.143 t
    energy.to_tce("heat", 1_000, "GJ")                      # 34.12 t
    energy.to_co2("electricity", 1_000, "MWh")              # 570.3 t CO2

Water is a carrier without a tce factor: :func:`to_tce` raises :class:`NotInTceError` for it
(and for central cooling unless a deployment configures a factor); :func:`tce_or_none` returns
``None`` instead, for totals that list what they left out.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from importlib import resources
from typing import Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from epcwatch.errors import EpcwatchError

Basis = Literal["calorific", "equal_value"]

#: the unit every carrier's factors refer to is one of these; quantities convert to it first
_UNITS: Final[dict[str, dict[str, float]]] = {
    "kWh": {"Wh": 1e-3, "kWh": 1.0, "MWh": 1e3, "GWh": 1e6, "MJ": 1 / 3.6, "GJ": 1e3 / 3.6},
    "GJ": {"MJ": 1e-3, "GJ": 1.0, "TJ": 1e3, "kWh": 3.6e-3, "MWh": 3.6, "GWh": 3.6e3},
    "m3": {"L": 1e-3, "m3": 1.0, "1e4m3": 1e4},
    "kg": {"g": 1e-3, "kg": 1.0, "t": 1e3},
}
#: CO2 per unit of carbon (molar masses 44/12)
CO2_PER_C: Final = 44.0 / 12.0
#: kJ in one kilogram of standard coal (GB/T 2589-2020: 29 307 kJ, 7 000 kcal)
KJ_PER_KGCE: Final = 29_307.0


class EnergyError(EpcwatchError, ValueError):
    """A conversion that cannot be done (unknown carrier or unit, no factor, a bad table)."""


class UnknownCarrierError(EnergyError):
    pass


class UnitError(EnergyError):
    pass


class NotInTceError(EnergyError):
    """The carrier has no standard-coal factor (water; cooling unless configured)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CarrierFactors(_Strict):
    zh: str
    en: str
    base_unit: Literal["kWh", "GJ", "m3", "kg"]
    kgce: float | None = Field(default=None, gt=0, description="kgce per base unit, calorific equivalent")
    co2_kg: float | None = Field(default=None, ge=0, description="kg CO2 per base unit")
    lhv_mj: float | None = Field(default=None, gt=0, description="low calorific value, MJ per base unit")
    carbon_kg_per_gj: float | None = Field(default=None, gt=0)
    oxidation: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _co2_once(self) -> CarrierFactors:
        parts = (self.lhv_mj, self.carbon_kg_per_gj, self.oxidation)
        if any(p is not None for p in parts) and not all(p is not None for p in parts):
            raise ValueError("give lhv_mj, carbon_kg_per_gj and oxidation together")
        if self.co2_kg is not None and self.lhv_mj is not None:
            raise ValueError("give co2_kg or the emission parameters, not both")
        return self

    @property
    def co2_kg_per_unit(self) -> float | None:
        """kg CO2 per base unit: given, or LHV × carbon content × oxidation × 44/12."""
        if self.co2_kg is not None:
            return self.co2_kg
        if self.lhv_mj is None or self.carbon_kg_per_gj is None or self.oxidation is None:
            return None
        return self.lhv_mj / 1000 * self.carbon_kg_per_gj * self.oxidation * CO2_PER_C


class ElectricityBasis(_Strict):
    equal_value_kgce: float | None = Field(default=None, gt=0)


class Factors(_Strict):
    """The factor table (the YAML file's model)."""

    version: Literal[1]
    standard: str
    electricity: ElectricityBasis = ElectricityBasis()
    carriers: dict[str, CarrierFactors]

    def carrier(self, name: str) -> CarrierFactors:
        try:
            return self.carriers[name]
        except KeyError:
            known = ", ".join(self.carriers)
            raise UnknownCarrierError(f"unknown energy carrier {name!r} (known: {known})") from None

    def with_equal_value(self, kgce_per_kwh: float) -> Factors:
        """The table with the equal-value (等价值) electricity factor set."""
        if not kgce_per_kwh > 0:
            raise EnergyError("the equal-value factor must be positive")
        return self.model_copy(update={"electricity": ElectricityBasis(equal_value_kgce=kgce_per_kwh)})

    def with_carrier(self, name: str, *, kgce: float | None = None, co2_kg: float | None = None) -> Factors:
        """The table with one carrier's kgce and/or CO2 factor (per base unit) replaced."""
        c = self.carrier(name)
        update: dict[str, object] = {}
        if kgce is not None:
            if not kgce > 0:
                raise EnergyError(f"{name}: kgce factor must be positive")
            update["kgce"] = kgce
        if co2_kg is not None:
            if co2_kg < 0:
                raise EnergyError(f"{name}: CO2 factor must not be negative")
            update.update(co2_kg=co2_kg, lhv_mj=None, carbon_kg_per_gj=None, oxidation=None)
        carriers = {**self.carriers, name: c.model_copy(update=update)}
        return self.model_copy(update={"carriers": carriers})

    def kgce_per_unit(self, carrier: str, basis: Basis = "calorific") -> float:
        """kgce per base unit of ``carrier``; raises :class:`NotInTceError` without a factor."""
        c = self.carrier(carrier)
        if basis == "equal_value" and carrier == "electricity":
            if self.electricity.equal_value_kgce is None:
                raise NotInTceError(
                    "the equal-value basis needs the year's thermal-power coal rate "
                    "(kgce/kWh): set it with with_equal_value() or the command's option"
                )
            return self.electricity.equal_value_kgce
        if c.kgce is None:
            raise NotInTceError(
                f"{carrier} ({c.zh}) has no standard-coal factor; it is reported in {c.base_unit}"
            )
        return c.kgce


def _load(text: str, origin: str) -> Factors:
    try:
        return Factors.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise EnergyError(f"{origin}: {exc}") from None


@functools.cache
def default_factors() -> Factors:
    """The shipped table (GB/T 2589-2020 and the CO2 defaults)."""
    text = resources.files("epcwatch").joinpath("data/energy_factors.yaml").read_text(encoding="utf-8")
    return _load(text, "energy_factors.yaml")


def load_factors(path: str | os.PathLike[str]) -> Factors:
    """A deployment's own factor table (same format as the shipped one)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise EnergyError(f"{path}: {exc.strerror or exc}") from None
    return _load(text, os.fspath(path))


def carriers() -> tuple[str, ...]:
    return tuple(default_factors().carriers)


def to_base(carrier: str, quantity: float, unit: str | None = None, factors: Factors | None = None) -> float:
    """``quantity`` in ``unit`` expressed in the carrier's base unit (kWh, GJ, m3 or kg)."""
    c = (factors or default_factors()).carrier(carrier)
    if unit is None or unit == c.base_unit:
        return float(quantity)
    table: Mapping[str, float] = _UNITS[c.base_unit]
    try:
        return float(quantity) * table[unit]
    except KeyError:
        raise UnitError(
            f"{carrier}: cannot convert {unit!r} to {c.base_unit} (use one of {', '.join(table)})"
        ) from None


def to_tce(
    carrier: str,
    quantity: float,
    unit: str | None = None,
    *,
    basis: Basis = "calorific",
    factors: Factors | None = None,
) -> float:
    """Tonnes of standard coal equivalent of ``quantity`` ``unit`` of ``carrier``."""
    f = factors or default_factors()
    return to_base(carrier, quantity, unit, f) * f.kgce_per_unit(carrier, basis) / 1000.0


def tce_or_none(
    carrier: str,
    quantity: float,
    unit: str | None = None,
    *,
    basis: Basis = "calorific",
    factors: Factors | None = None,
) -> float | None:
    """Like :func:`to_tce`, but ``None`` for a carrier without a factor (water)."""
    try:
        return to_tce(carrier, quantity, unit, basis=basis, factors=factors)
    except NotInTceError:
        return None


def to_co2(
    carrier: str, quantity: float, unit: str | None = None, *, factors: Factors | None = None
) -> float:
    """Tonnes of CO2 of ``quantity`` ``unit`` of ``carrier``; raises :class:`EnergyError` without a factor."""
    f = factors or default_factors()
    c = f.carrier(carrier)
    per_unit = c.co2_kg_per_unit
    if per_unit is None:
        raise EnergyError(f"{carrier} ({c.zh}) has no CO2 factor; configure one to include it")
    return to_base(carrier, quantity, unit, f) * per_unit / 1000.0


def kgce_from_calorific_value(lhv_kj_per_unit: float) -> float:
    """kgce per unit of a fuel with the measured low calorific value ``lhv_kj_per_unit`` (kJ)."""
    if not lhv_kj_per_unit > 0:
        raise EnergyError("the calorific value must be positive")
    return lhv_kj_per_unit / KJ_PER_KGCE
