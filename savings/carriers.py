"""Totals per energy carrier in native units, tonnes of standard coal and CO2 (pure).

The M&V report shows the reporting period's consumption of the contract's meters per carrier
with the GB/T 2589-2020 conversions of :mod:`epcwatch.energy`, the contract's own factors taking
precedence (``factors:`` in the contract file).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from epcwatch import energy


def contract_table(
    calorific_kgce_per_kwh: float,
    equal_value_kgce_per_kwh: float | None,
    co2_kg_per_kwh: float,
) -> energy.Factors:
    """The shipped factor table with a contract's electricity factors."""
    t = energy.default_factors().with_carrier(
        "electricity", kgce=calorific_kgce_per_kwh, co2_kg=co2_kg_per_kwh
    )
    return t.with_equal_value(equal_value_kgce_per_kwh) if equal_value_kgce_per_kwh else t


def carrier_totals(
    quantities: Mapping[str, tuple[float, str]],
    table: energy.Factors,
    basis: energy.Basis = "calorific",
) -> dict[str, Any]:
    """Rows ``carrier, zh, en, quantity, unit, tce, co2_t`` (``None`` where a carrier has no
    factor, e.g. water) and the totals of the tce and CO2 columns."""
    rows = []
    for carrier, (quantity, unit) in quantities.items():
        c = table.carrier(carrier)
        try:
            co2: float | None = energy.to_co2(carrier, quantity, unit, factors=table)
        except energy.EnergyError:
            co2 = None
        rows.append(
            {
                "carrier": carrier,
                "zh": c.zh,
                "en": c.en,
                "quantity": quantity,
                "unit": unit,
                "tce": energy.tce_or_none(carrier, quantity, unit, basis=basis, factors=table),
                "co2_t": co2,
            }
        )
    return {
        "basis": basis,
        "rows": rows,
        "tce": sum(r["tce"] for r in rows if r["tce"] is not None),
        "co2_t": sum(r["co2_t"] for r in rows if r["co2_t"] is not None),
    }
