"""Standard-coal factors and unit conversion of the statistics report (pure).

The factors are the project's shared table, :mod:`epcwatch.energy` (GB/T 2589-2020 Appendix A,
cited there); this module adds what a statistics report needs on top: litres of liquid fuel
(vehicle fuel receipts) converted through a density. A report lists the factor it used beside
every carrier, so a reader can recompute its tce.
"""

from __future__ import annotations

import functools
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from epcwatch import energy
from epcwatch.reporting.errors import ReportingError

#: other units per base unit's worth: quantity_in_base = quantity × table[base][unit]
_UNITS: Final[dict[str, dict[str, float]]] = {
    "kWh": {"kWh": 1.0, "MWh": 1e3, "Wh": 1e-3},
    "m3": {"m3": 1.0, "L": 1e-3, "1e4m3": 1e4},
    "GJ": {"GJ": 1.0, "MJ": 1e-3, "kWh": 3.6e-3},
    "kg": {"kg": 1.0, "t": 1e3},
}


class Carrier(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    zh: str
    unit: str
    kgce: float | None = Field(default=None, ge=0)
    density_kg_per_l: float | None = Field(default=None, gt=0)


class Factors(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    standard: str
    carriers: dict[str, Carrier]

    def carrier(self, name: str) -> Carrier:
        try:
            return self.carriers[name]
        except KeyError:
            raise ReportingError(
                f"unknown energy carrier {name!r} (known: {', '.join(self.carriers)})"
            ) from None

    def to_base(self, name: str, quantity: float, unit: str) -> float:
        """``quantity`` ``unit`` of carrier ``name`` in the carrier's base unit."""
        c = self.carrier(name)
        if unit == "L" and c.unit == "kg":
            if c.density_kg_per_l is None:
                raise ReportingError(f"{name}: no density to convert litres to kg")
            return quantity * c.density_kg_per_l
        try:
            return quantity * _UNITS[c.unit][unit]
        except KeyError:
            raise ReportingError(
                f"{name}: cannot convert {unit!r} to {c.unit} (use one of {', '.join(_UNITS[c.unit])})"
            ) from None

    def tce(self, name: str, quantity_base: float) -> float | None:
        """Tonnes of standard coal of ``quantity_base`` (base unit); ``None`` for water."""
        k = self.carrier(name).kgce
        return None if k is None else quantity_base * k / 1000.0


#: kg per litre of fuels bought by the litre: typical densities (gasoline 0.73 kg/L, diesel
#: 0.84 kg/L, within the GB 17930 / GB 19147 ranges); a bureau with its own rule replaces them
DENSITY_KG_PER_L: Final[dict[str, float]] = {"gasoline": 0.73, "diesel": 0.84, "kerosene": 0.80}


@functools.cache
def default_factors() -> Factors:
    """The shared table (:func:`epcwatch.energy.default_factors`) with the litre densities."""
    shared = energy.default_factors()
    return Factors(
        standard=shared.standard,
        carriers={
            name: Carrier(zh=c.zh, unit=c.base_unit, kgce=c.kgce, density_kg_per_l=DENSITY_KG_PER_L.get(name))
            for name, c in shared.carriers.items()
        },
    )
