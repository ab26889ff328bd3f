"""Every shipped profile loads, plans and decodes a register image built independently.

Each profile has a case file ``profile_cases/<id>.yaml`` mapping every point to
``[raw, expected]`` or ``[raw, expected, layout]``: ``raw`` is what the device holds (the number in
the device's own units, or a string), ``expected`` the decoded value (``null``: the device's "no
value" sentinel), ``layout`` how the manual says the device stores it (``"int32 CDAB"``, ``"bool"``…;
default: the file's ``_layout``). The register image is built here from the case's own layout with
pymodbus's ``convert_to_registers`` (and plain byte swaps), never from the profile's type and order
and never with epcwatch's encoder, so a wrong scale, type, sign or word order in a profile fails.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from pymodbus.client.mixin import ModbusClientMixin

from epcwatch import measurements, wire
from epcwatch.profiles.decode import decode
from epcwatch.profiles.dlt645_profile import (
    decode_values,
    list_dlt645_profiles,
    load_dlt645_profile,
    shipped_dlt645_paths,
)
from epcwatch.profiles.model import PointSpec, Profile, list_profiles, load_profile, shipped_profile_paths
from epcwatch.profiles.planner import plan_profile

CASES = Path(__file__).parents[1] / "profile_cases"
IDS = sorted(shipped_profile_paths())
DLT645_IDS = sorted(shipped_dlt645_paths())
DT = ModbusClientMixin.DATATYPE


Case = dict[str, tuple[Any, Any, str]]  # name -> (raw, expected, layout)


def load_case(profile_id: str) -> Case:
    data = yaml.safe_load((CASES / f"{profile_id}.yaml").read_text())
    assert isinstance(data, dict)
    default = data.pop("_layout")
    out: Case = {}
    for name, entry in data.items():
        assert isinstance(entry, list), f"{profile_id}: {name}: [raw, expected(, layout)]"
        assert len(entry) in (2, 3), f"{profile_id}: {name}: [raw, expected(, layout)]"
        out[name] = (entry[0], entry[1], entry[2] if len(entry) == 3 else default)
    return out


def registers_of(layout: str, raw: Any, string_regs: int) -> list[int] | list[bool]:
    """Registers holding ``raw`` stored as ``layout`` ("type [order]"), built with pymodbus."""
    type_, _, order = layout.partition(" ")
    if type_ == "bool":
        return [bool(raw)]
    if type_ == "string":
        regs = ModbusClientMixin.convert_to_registers(raw, DT.STRING)
        regs += [0] * (string_regs - len(regs))
    else:
        value = float(raw) if type_.startswith("float") else int(raw)
        if type_.startswith("uint") and value < 0:
            raise AssertionError(f"negative raw for {type_}")
        regs = ModbusClientMixin.convert_to_registers(value, getattr(DT, type_.upper()), word_order="big")
    if order in ("CDAB", "DCBA"):
        regs = regs[::-1]
    if order in ("BADC", "DCBA"):
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return regs


def image_of(profile: Profile, case: Case) -> dict[str, dict[int, int | bool]]:
    image: dict[str, dict[int, int | bool]] = {"coil": {}, "discrete": {}, "holding": {}, "input": {}}
    for name, (raw, _, layout) in case.items():
        p: PointSpec = profile.point(name)
        regs = registers_of(layout, raw, p.length or 0)
        assert len(regs) == p.count, f"{name}: the profile reads {p.count} registers, the device {len(regs)}"
        for i, r in enumerate(regs):
            table = image[p.function]
            assert table.get(p.address + i, r) == r, f"{name}: case disagrees with another point's raw value"
            table[p.address + i] = r
    return image


def test_every_shipped_profile_has_a_case() -> None:
    assert len(IDS) >= 14 and len(DLT645_IDS) >= 3
    assert not set(IDS) & set(DLT645_IDS), "a Modbus and a DL/T 645 profile share an id"
    missing = [i for i in IDS + DLT645_IDS if not (CASES / f"{i}.yaml").exists()]
    assert not missing, f"shipped profiles without a test case in {CASES}: {missing}"
    stale = sorted({p.stem for p in CASES.glob("*.yaml")} - set(IDS) - set(DLT645_IDS))
    assert not stale, f"cases for profiles that do not exist: {stale}"


@pytest.mark.parametrize("profile_id", IDS)
def test_profile_decodes_its_case(profile_id: str) -> None:
    profile = load_profile(profile_id)
    case = load_case(profile_id)
    names = {p.name for p in (*profile.points, *profile.identity)}
    assert set(case) == names, (names - set(case), set(case) - names)
    image = image_of(profile, case)
    values: dict[str, Any] = {}
    missing: set[str] = set()
    for plan in plan_profile(profile):
        responses = [[image[r.function].get(a, 0) for a in range(r.address, r.end)] for r in plan.reads]
        out = decode(plan, responses)
        assert out.quality == "good" and not out.errors, out.errors
        values |= out.values | out.identity
        missing |= set(out.missing)
    assert missing == {n for n, (_, exp, _) in case.items() if exp is None}
    for name, (_, expected, _) in case.items():
        if expected is None:
            continue
        got = values[name]
        assert type(got) is type(expected), f"{name}: {got!r} is not a {type(expected).__name__}"
        assert got == expected, f"{name}: decoded {got!r}, expected {expected!r}"


@pytest.mark.parametrize("profile_id", IDS)
def test_profile_values_make_a_valid_wire_reading(profile_id: str) -> None:
    """What the decoder yields for a profile is accepted by the wire contract as is."""
    profile = load_profile(profile_id)
    case = load_case(profile_id)
    values = {n: e for n, (_, e, _) in case.items() if e is not None and measurements.is_known(n)
              and any(p.name == n for p in profile.points)}
    wire.Reading(seq=0, ts=wire.MIN_TS_MS, values=values)
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in values.values())


def test_library_covers_the_demo_site() -> None:
    """Every electricity meter gives active power and imported energy, every other meter the
    counter of its carrier (water, gas, heat, cooling); HVAC, lighting and sensor maps exist."""
    by_kind: dict[str, list[Profile]] = {}
    for p in list_profiles():
        by_kind.setdefault(p.kind, []).append(p)
        assert p.source.strip()
    carriers = {"water_volume", "gas_volume", "heat_energy", "cooling_energy"}
    for meter in by_kind["meter"]:
        names = {pt.name for pt in meter.points}
        if names & carriers:
            assert "energy_import" not in names, meter.id
        else:
            assert {"active_power", "energy_import"} <= names, meter.id
    kinds = [{pt.name for pt in m.points} & carriers for m in by_kind["meter"]]
    assert all(any(c in k for k in kinds) for c in carriers), "a profile for every energy carrier"
    assert len(by_kind["meter"]) >= 10
    assert len(by_kind["hvac"]) >= 2 and len(by_kind["lighting"]) >= 2 and by_kind["sensor"]
    chiller = {pt.name for pt in load_profile("generic-chiller-plant").points}
    assert {"supply_water_temp", "return_water_temp", "cop", "active_power", "run_status"} <= chiller
    ahu = {pt.name for pt in load_profile("generic-ahu").points}
    assert {"supply_air_temp", "supply_air_temp_setpoint", "fan_speed", "active_power"} <= ahu
    weather = {pt.name for pt in load_profile("generic-rs485-th").points}
    assert weather == {"outdoor_temp", "outdoor_humidity"}


@pytest.mark.parametrize("profile_id", DLT645_IDS)
def test_dlt645_profile_decodes_its_case(profile_id: str) -> None:
    """The value bytes are written in the case as the standard prints them (most significant byte
    first, sign in bit 7); the meter sends them least significant byte first. Built here by
    reversing the printed bytes, never with epcwatch's encoder."""
    profile = load_dlt645_profile(profile_id)
    case = load_case(profile_id)
    assert {p.name for p in profile.points} == set(case)
    for _, _, layout in case.values():
        assert layout == "bcd"
    answers = [bytes.fromhex(case[p.name][0])[::-1] for p in profile.points]
    for p, raw in zip(profile.points, answers, strict=True):
        assert len(raw) == p.bcd.size, f"{p.name}: {len(raw)} bytes in the case, {p.format} is {p.bcd.size}"
    values, quality, errors = decode_values(profile.points, answers)
    assert quality == "good" and not errors, errors
    for name, (_, expected, _) in case.items():
        got = values[name]
        assert type(got) is type(expected), f"{name}: {got!r} is not a {type(expected).__name__}"
        assert got == expected, f"{name}: decoded {got!r}, expected {expected!r}"
    wire.Reading(seq=0, ts=wire.MIN_TS_MS, values=values)


def test_dlt645_library_covers_meters() -> None:
    for p in list_dlt645_profiles():
        assert p.source.strip() and "DL/T 645" in p.source
        names = {pt.name for pt in p.points}
        assert {"active_power", "energy_import", "voltage_l1", "current_l1", "power_factor"} <= names, p.id
    editions = {p.version for p in list_dlt645_profiles()}
    assert editions == {"2007", "1997"}
