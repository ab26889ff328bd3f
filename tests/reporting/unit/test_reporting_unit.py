"""Register, formulas, imports, periods and the statistics arithmetic (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.config import ConfigError
from epcwatch.reporting.errors import FormulaError, ImportFileError, PeriodError
from epcwatch.reporting.factors import default_factors
from epcwatch.reporting.imports import parse_imports
from epcwatch.reporting.periods import Period, parse_period
from epcwatch.reporting.register import Register, load_register
from epcwatch.reporting.statistics import MeterFigures, city_report, institution_report
from epcwatch.reporting.virtual import evaluate_series, evaluation_order, parse_formula
from tests.reporting.cases import CSV, REGISTER


def reg(tmp_path: Path, text: str = REGISTER) -> Register:
    p = tmp_path / "register.yaml"
    p.write_text(text, encoding="utf-8")
    return load_register(p)


def test_register_loads_and_orders_virtual_meters(tmp_path: Path) -> None:
    r = reg(tmp_path)
    assert [i.id for i in r.institutions] == ["admin", "dept-x"]
    f = r.formulas()
    assert f["admin-chiller"].text == "[plant] * 10000 / 12000"
    assert f["x-chiller"].text == "[plant] * [b1-t-x] / ([b1-t-x] + [admin-common])"
    order = evaluation_order(f, {"b1-main", "plant", "b1-t-x"})
    assert order.index("admin-common") < order.index("x-chiller")


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ("staff: 50", "staff: -1", ":17: institutions[1].staff: Input should be greater than or equal to 0"),
        ('"[b1-main] - [b1-t-x]"', '"[b1-main] - [nowhere]"', "unknown meter 'nowhere'"),
        ('"[b1-main] - [b1-t-x]"', '"[b1-main] - "', "ends too early"),
        ("device: b1-t-x}", "device: b1-main}", "meter id"),  # fine: device reused, id unique
        ("floor_area_m2: 2000", "floor_area_m2: 0", ":18: institutions[1].buildings[0].floor_area_m2"),
    ],
)
def test_register_errors_name_file_line_field(tmp_path: Path, old: str, new: str, expect: str) -> None:
    text = REGISTER.replace(old, new)
    if expect == "meter id":  # the same device under two ids is allowed (two views of one meter)
        assert reg(tmp_path, text)
        return
    with pytest.raises(ConfigError) as e:
        reg(tmp_path, text)
    assert "register.yaml:" in str(e.value)
    assert expect in str(e.value)


def test_formula_cycle_is_refused(tmp_path: Path) -> None:
    text = REGISTER.replace('"[b1-main] - [b1-t-x]"', '"[b1-main] - [x-chiller]"')
    with pytest.raises(ConfigError, match="cycle"):
        reg(tmp_path, text)


def test_formula_arithmetic() -> None:
    f = parse_formula("[a] * ([b] + 2) / [c] - -1")
    assert f.refs == ("a", "b", "c")
    assert f({"a": 3, "b": 1, "c": 9}) == pytest.approx(2.0)
    assert parse_formula("[a] / [b]")({"a": 1, "b": 0}) == 0.0  # a share of nothing is nothing
    for bad in ("", "3 + 4", "[a] +", "[A]", "([a]", "[a] ^ 2"):
        with pytest.raises(FormulaError):
            parse_formula(bad)


@given(
    st.lists(st.floats(0, 1e6), min_size=1, max_size=30),
    st.lists(st.floats(0, 1e6), min_size=1, max_size=30),
)
def test_common_area_plus_tenant_is_main(main: list[float], tenant: list[float]) -> None:
    """main − tenant, added back to the tenant, gives the main meter in every interval."""
    n = min(len(main), len(tenant))
    series = {
        "main": {i: (main[i], 1.0) for i in range(n)},
        "t": {i: (tenant[i], 0.5) for i in range(n)},
    }
    formulas = {"common": parse_formula("[main] - [t]")}
    out = evaluate_series(formulas, evaluation_order(formulas, {"main", "t"}), series)
    for i in range(n):
        assert out["common"][i][0] + tenant[i] == pytest.approx(main[i], abs=1e-9 * (1 + tenant[i]))
        assert out["common"][i][1] == 0.5  # as complete as its least complete input


@given(st.floats(0, 1e6), st.floats(0, 1e5), st.floats(0, 1e5))
def test_ratio_apportionment_shares_add_up(plant: float, a: float, b: float) -> None:
    fa = parse_formula("[p] * [a] / ([a] + [b])")
    fb = parse_formula("[p] * [b] / ([a] + [b])")
    v = {"p": plant, "a": a, "b": b}
    total = fa(v) + fb(v)
    assert total == pytest.approx(plant if a + b > 0 else 0.0)


def test_periods() -> None:
    assert parse_period("2025") == Period(2025)
    q3 = parse_period("2025-Q3")
    assert (q3.start().isoformat(), q3.end().isoformat(), q3.days()) == ("2025-07-01", "2025-10-01", 92)
    dec = parse_period("2024-12")
    assert dec.end().isoformat() == "2025-01-01" and dec.last_year().label == "2023-12"
    feb = parse_period("2025-02")
    assert Period(2025).contains(feb) and not feb.contains(Period(2025))
    # local midnight in Shanghai is 16:00 UTC the day before
    assert Period(2025).window_ms("Asia/Shanghai")[0] == 1735660800000
    for bad in ("25", "2025-13", "2025-Q5", "2025/01"):
        with pytest.raises(PeriodError):
            parse_period(bad)


def test_imports_parse_and_convert() -> None:
    rows = parse_imports(CSV, "fuel.csv", {"admin", "dept-x"})
    assert [r.line for r in rows] == [2, 3, 4]
    assert rows[0].quantity_base == pytest.approx(1000 * 0.73)  # litres to kg
    assert rows[1].period == Period(2025, "quarter", 1)
    assert rows[0].source == "fuel cards 2025" and rows[0].file == "fuel.csv"


def test_imports_name_every_bad_field() -> None:
    bad = CSV + (
        "nobody,2025,gasoline,1,L,x,\n"
        "admin,2025-14,petrol,-1,gallon,,\n"
        "admin,2025,gasoline,1000,L,fuel cards 2025,\n"
    )
    with pytest.raises(ImportFileError) as e:
        parse_imports(bad, "fuel.csv", {"admin"})
    msg = str(e.value)
    assert "fuel.csv:5: institution: 'nobody' is not in the register" in msg
    for field in ("6: period", "6: carrier", "6: quantity", "6: source"):
        assert f"fuel.csv:{field}" in msg
    assert "fuel.csv:7: source: same institution, period, carrier and source as line 2" in msg
    with pytest.raises(ImportFileError, match="missing column"):
        parse_imports("institution,period\n", "x.csv")


def test_institution_report_by_hand(tmp_path: Path) -> None:
    r = reg(tmp_path)
    admin = r.institutions[0]
    this = {"admin-common": MeterFigures(100_000.0, 365.0), "admin-chiller": MeterFigures(20_000.0, 300.0)}
    last = {"admin-common": MeterFigures(110_000.0, 365.0), "admin-chiller": MeterFigures(25_000.0, 365.0)}
    rows = parse_imports(CSV, "fuel.csv")
    rep = institution_report(admin, Period(2025), this_year=this, last_year=last, imports=rows)
    gasoline_kg, diesel_kg = 730.0, 500.0
    tce = 120_000 * 0.1229 / 1000 + gasoline_kg * 1.4714 / 1000 + diesel_kg * 1.4571 / 1000
    tce_last = 135_000 * 0.1229 / 1000 + 1200 * 0.73 * 1.4714 / 1000
    assert rep.total_tce == pytest.approx(tce)
    assert rep.last_year_tce == pytest.approx(tce_last)
    assert rep.change_tce == pytest.approx(tce - tce_last)
    assert rep.change_pct == pytest.approx((tce - tce_last) / tce_last * 100)
    assert rep.kgce_per_person == pytest.approx(tce * 1000 / 200)
    assert rep.kgce_per_m2 == pytest.approx(tce * 1000 / 10_000)
    assert rep.electricity_kwh_per_person == pytest.approx(120_000 / 200)
    origins = {(c.carrier, c.origin) for c in rep.carriers}
    assert origins == {("electricity", "metered"), ("gasoline", "imported"), ("diesel", "imported")}
    gas = next(c for c in rep.carriers if c.carrier == "gasoline")
    assert gas.basis == ("fuel cards 2025 (fuel.csv:2)",) and gas.kgce_per_unit == 1.4714
    elec = next(c for c in rep.carriers if c.carrier == "electricity")
    assert "admin-common = [b1-main] - [b1-t-x]" in elec.basis
    chiller = next(m for m in rep.meters if m.meter == "admin-chiller")
    assert chiller.completeness == pytest.approx(300 / 365) and chiller.formula == "[plant] * 10000 / 12000"
    # a yearly row does not enter a quarter's report, and says so
    q1 = institution_report(admin, parse_period("2025-Q1"), this_year={}, last_year={}, imports=rows)
    assert {c.carrier for c in q1.carriers if c.origin == "imported"} == {"diesel"}
    assert any("gasoline 2025" in x for x in q1.not_apportioned)


def test_city_rollup(tmp_path: Path) -> None:
    r = reg(tmp_path)
    admin, x = r.institutions
    a = institution_report(
        admin,
        Period(2025),
        this_year={"admin-common": MeterFigures(1000.0)},
        last_year={"admin-common": MeterFigures(2000.0)},
        imports=(),
    )
    b = institution_report(
        x,
        Period(2025),
        this_year={"b1-t-x": MeterFigures(3000.0)},
        last_year={"b1-t-x": MeterFigures(1000.0)},
        imports=(),
    )
    city = city_report([a, b], Period(2025))
    assert city.institutions == 2 and city.fell == 1 and city.rose == 1
    assert city.total_tce == pytest.approx(4000 * 0.1229 / 1000)
    assert city.change_pct == pytest.approx((4000 - 3000) / 3000 * 100)
    assert [x.institution for x in city.top_tce] == ["dept-x", "admin"]
    assert city.top_fall_pct[0].institution == "admin" and city.top_fall_pct[0].value == pytest.approx(-50)


def test_water_per_person_and_areas(tmp_path: Path) -> None:
    x = reg(tmp_path).institutions[1]
    rep = institution_report(
        x, Period(2025), this_year={"x-water": MeterFigures(1500.0, 365.0)}, last_year={}, imports=()
    )
    assert rep.water_m3 == 1500.0 and rep.water_m3_per_person == pytest.approx(1500 / 50)
    water = next(c for c in rep.carriers if c.carrier == "water")
    assert water.tce is None and water.unit == "m3" and rep.total_tce == 0.0  # water has no tce
    admin = reg(tmp_path).institutions[0]
    assert (admin.heated_area_m2, admin.cooled_area_m2, x.heated_area_m2) == (8000, None, None)


def test_factor_table_is_gbt_2589() -> None:
    f = default_factors()
    assert "GB/T 2589-2020" in f.standard
    assert f.tce("electricity", 1_000_000) == pytest.approx(122.9)
    assert f.tce("water", 10) is None
    assert f.to_base("heat", 1000, "MJ") == pytest.approx(1.0)
