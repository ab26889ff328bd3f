"""Standard coal and CO2 conversions against hand computations from the cited factors
(GB/T 2589-2020 Appendix A; MEE 2022 grid factor; accounting-guideline fuel parameters)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch import energy
from epcwatch.energy import EnergyError, NotInTceError, UnitError, UnknownCarrierError

quantities = st.floats(min_value=0, max_value=1e9, allow_nan=False)


def test_electricity_calorific_equivalent() -> None:
    # 3 600 kJ/kWh ÷ 29 307 kJ/kgce = 0.1229 kgce/kWh; 1 GWh → 122.9 t
    assert energy.to_tce("electricity", 1_000_000, "kWh") == pytest.approx(122.9)
    assert energy.to_tce("electricity", 1, "GWh") == pytest.approx(122.9)


def test_equal_value_basis_needs_and_uses_its_factor() -> None:
    with pytest.raises(NotInTceError, match="equal-value"):
        energy.to_tce("electricity", 1000, "kWh", basis="equal_value")
    f = energy.default_factors().with_equal_value(0.3)
    assert energy.to_tce("electricity", 1_000_000, "kWh", basis="equal_value", factors=f) == pytest.approx(
        300.0
    )
    # the basis only changes electricity
    assert energy.to_tce("natural_gas", 1000, "m3", basis="equal_value", factors=f) == pytest.approx(1.2143)


def test_gas_heat_and_fuels() -> None:
    assert energy.to_tce("natural_gas", 10_000, "m3") == pytest.approx(12.143)
    # 0.03412 kgce/MJ = 34.12 kgce/GJ; 1 000 GJ = 277 777.8 kWh of heat
    assert energy.to_tce("heat", 1000, "GJ") == pytest.approx(34.12)
    assert energy.to_tce("heat", 1_000_000 / 3.6, "kWh") == pytest.approx(34.12)
    assert energy.to_tce("heat", 1000, "MJ") == pytest.approx(0.03412)
    assert energy.to_tce("diesel", 1, "t") == pytest.approx(1.4571)
    assert energy.to_tce("gasoline", 1000, "kg") == pytest.approx(1.4714)
    assert energy.to_tce("lpg", 1, "t") == pytest.approx(1.7143)
    assert energy.to_tce("raw_coal", 1, "t") == pytest.approx(0.7143)


def test_water_and_unconfigured_cooling_are_not_in_tce() -> None:
    with pytest.raises(NotInTceError, match="m3"):
        energy.to_tce("water", 10, "m3")
    assert energy.tce_or_none("water", 10, "m3") is None
    assert energy.tce_or_none("cooling", 10, "GJ") is None
    f = energy.default_factors().with_carrier("cooling", kgce=34.12)
    assert energy.to_tce("cooling", 10, "GJ", factors=f) == pytest.approx(0.3412)


def test_co2() -> None:
    assert energy.to_co2("electricity", 1000, "MWh") == pytest.approx(570.3)
    # 38.931 MJ/m3 × 15.3 kgC/GJ × 0.99 × 44/12
    assert energy.to_co2("natural_gas", 1, "m3") * 1000 == pytest.approx(
        0.038931 * 15.3 * 0.99 * 44 / 12, rel=1e-12
    )
    assert energy.to_co2("natural_gas", 1, "m3") * 1000 == pytest.approx(2.162, abs=5e-4)
    assert energy.to_co2("diesel", 1, "t") == pytest.approx(3.0959, abs=5e-4)
    assert energy.to_co2("heat", 100, "GJ") == pytest.approx(11.0)
    f = energy.default_factors().with_carrier("electricity", co2_kg=0.5366)
    assert energy.to_co2("electricity", 1000, "MWh", factors=f) == pytest.approx(536.6)
    with pytest.raises(EnergyError, match="no CO2 factor"):
        energy.to_co2("water", 1, "m3")


def test_errors_name_the_problem() -> None:
    with pytest.raises(UnknownCarrierError, match="known: electricity"):
        energy.to_tce("coal_gas", 1)
    with pytest.raises(UnitError, match="cannot convert 'm3' to kWh"):
        energy.to_tce("electricity", 1, "m3")


def test_calorific_value_to_factor() -> None:
    # the standard's table rounds kcal ratios (860/7000 = 0.12286); by kJ 3600/29307 = 0.12284
    assert energy.kgce_from_calorific_value(3600) == pytest.approx(0.1229, abs=1e-4)
    assert energy.kgce_from_calorific_value(35_544) == pytest.approx(1.2128, abs=5e-5)


def test_deployment_table_loads_and_rejects_bad_rows(tmp_path: Path) -> None:
    shipped = Path(energy.__file__).parent / "data" / "energy_factors.yaml"
    mine = tmp_path / "factors.yaml"
    mine.write_text(
        shipped.read_text(encoding="utf-8").replace("kgce: 1.2143", "kgce: 1.33"), encoding="utf-8"
    )
    assert energy.to_tce("natural_gas", 1000, "m3", factors=energy.load_factors(mine)) == pytest.approx(1.33)
    mine.write_text("version: 1\nstandard: x\ncarriers:\n  gas: {zh: 气, en: gas, base_unit: m3, kgce: -1}\n")
    with pytest.raises(EnergyError, match="kgce"):
        energy.load_factors(mine)


@given(quantities, quantities, st.sampled_from(["electricity", "natural_gas", "heat", "diesel", "lpg"]))
def test_linear_in_quantity(a: float, b: float, carrier: str) -> None:
    t = energy.to_tce
    assert t(carrier, a + b) == pytest.approx(t(carrier, a) + t(carrier, b), rel=1e-9, abs=1e-9)


@given(quantities)
def test_units_agree(kwh: float) -> None:
    assert energy.to_tce("heat", kwh, "kWh") == pytest.approx(energy.to_tce("heat", kwh * 0.0036, "GJ"))
    assert energy.to_tce("electricity", kwh, "kWh") == pytest.approx(
        energy.to_tce("electricity", kwh / 1000, "MWh")
    )
