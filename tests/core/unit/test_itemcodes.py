"""The national item codes and building ids as shipped (tables from the 2008 MOHURD guideline)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch import energy, itemcodes
from epcwatch.itemcodes import ItemCodeError

#: the guideline's electricity hierarchy, typed out from the document (not read from the YAML)
GUIDELINE = {
    "01A00": ("照明插座用电", ["01A10", "01A20", "01A30"]),
    "01B00": ("空调用电", ["01B10", "01B20"]),
    "01C00": ("动力用电", ["01C10", "01C20", "01C30"]),
    "01D00": ("特殊用电", []),
}
CLASSES = {
    "01000": "电",
    "02000": "水",
    "03000": "燃气",
    "04000": "集中供热量",
    "05000": "集中供冷量",
    "06000": "其它能源",
}


def test_tables_match_the_guideline() -> None:
    assert {c.code: c.zh for c in itemcodes.level(0)} == CLASSES
    assert {c.code: c.zh for c in itemcodes.level(1)} == {k: v[0] for k, v in GUIDELINE.items()}
    for l1, (_, subs) in GUIDELINE.items():
        assert sorted(c.code for c in itemcodes.level(2) if c.parent == l1) == subs
    assert itemcodes.lookup("01A20").zh == "走廊与应急"
    assert itemcodes.lookup("01B10").zh == "冷热站"
    assert itemcodes.lookup("01C30").zh == "通风机"
    # every code has an English name too
    assert all(c.en for c in itemcodes.tables().codes.values())


def test_levels_aliases_and_labels() -> None:
    assert itemcodes.first_level("01A10") == "01A00"
    assert itemcodes.first_level("01D00") == "01D00"
    assert itemcodes.first_level("02000") == "02000"
    assert itemcodes.energy_class("01C20") == "01000"
    assert [itemcodes.resolve(a) for a in "ABCD"] == ["01A00", "01B00", "01C00", "01D00"]
    assert itemcodes.category_of("01B20") == "B"
    assert itemcodes.category_of("02000") is None
    assert itemcodes.label("01B00") == "01B00 空调用电 Air conditioning"


def test_class_carriers_exist_in_the_factor_table() -> None:
    for c in itemcodes.level(0):
        assert c.carrier is None or c.carrier in energy.carriers()


def test_unknown_codes_are_named() -> None:
    with pytest.raises(ItemCodeError, match=r"'01A40' is not a national item code \(known: 01000, 01A00"):
        itemcodes.lookup("01A40")
    with pytest.raises(ItemCodeError, match="five characters"):
        itemcodes.lookup("lighting")


def test_derive_tags() -> None:
    d = itemcodes.derive_tags
    assert d(None, None) == (None, None)
    assert d("A", None) == ("A", "01A00")
    assert d(None, "01C10") == ("C", "01C10")
    assert d("C", "01C10") == ("C", "01C10")
    assert d(None, "01D00") == ("D", "01D00")
    assert d(None, "02000") == (None, "02000")
    with pytest.raises(ItemCodeError, match="contradicts"):
        d("A", "01B10")
    with pytest.raises(ItemCodeError, match="contradicts"):
        d("A", "03000")
    with pytest.raises(ItemCodeError):
        d(None, "01E00")


def test_building_ids() -> None:
    b = itemcodes.parse_building_id("510104A001")
    assert (b.division, b.building_class.zh, b.serial, str(b)) == ("510104", "办公建筑", "001", "510104A001")
    for bad, why in [
        ("510104A01", "expected 6 digits"),
        ("990104A001", "not a GB/T 2260 division"),
        ("510104Z001", "unknown building class Z"),
        ("510104A000", "start at 001"),
    ]:
        with pytest.raises(ItemCodeError, match=why):
            itemcodes.parse_building_id(bad)


@given(st.text(alphabet="0123456789ABCDZ", min_size=5, max_size=5))
def test_lookup_never_crashes_and_first_level_is_known(code: str) -> None:
    if itemcodes.is_known(code):
        l1 = itemcodes.first_level(code)
        assert itemcodes.is_known(l1) and itemcodes.lookup(l1).level <= 1
        assert itemcodes.first_level(l1) == l1
    else:
        with pytest.raises(ItemCodeError):
            itemcodes.lookup(code)


def test_portfolio_checks_building_codes(tmp_path) -> None:
    from epcwatch.config import ConfigError
    from epcwatch.portfolio import load_portfolio

    p = tmp_path / "portfolio.yaml"
    body = "sites:\n  - id: s\n    name: S\n    buildings:\n"
    body += "      - {id: b1, name: B, floor_area_m2: 1, code: %s}\n"
    p.write_text(body % "510104A001")
    assert load_portfolio(p).sites[0].buildings[0].code == "510104A001"
    p.write_text(body % "510104Z001")
    with pytest.raises(ConfigError, match="unknown building class Z"):
        load_portfolio(p)
