"""Property tests: encode -> decode round trips for every type and word/byte order."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pymodbus.client.mixin import ModbusClientMixin

from epcwatch.profiles.decode import (
    DecodeError,
    NoValue,
    decode,
    decode_point,
    decode_raw,
)
from epcwatch.profiles.encode import encode_point, register_image
from epcwatch.profiles.model import IdentityPoint, Point, Profile
from epcwatch.profiles.planner import plan_profile

ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")
RANGES = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}
DT = ModbusClientMixin.DATATYPE


def raw_point(type_: str, order: str, **kw: Any) -> IdentityPoint:
    """A point without vocabulary coercion: decodes to the raw number."""
    return IdentityPoint.model_validate(
        {"name": "x", "function": "holding", "address": 0, "type": type_, "order": order, **kw}
    )


def f32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


@st.composite
def int_case(draw: st.DrawFn) -> tuple[str, str, int]:
    t = draw(st.sampled_from(sorted(RANGES)))
    lo, hi = RANGES[t]
    return t, draw(st.sampled_from(ORDERS)), draw(st.integers(lo, hi))


@given(int_case())
def test_integers_round_trip_exactly(case: tuple[str, str, int]) -> None:
    t, order, raw = case
    p = raw_point(t, order)
    regs = encode_point(p, raw)
    assert len(regs) == p.count
    assert decode_raw(p, regs) == raw
    assert decode_point(p, regs) == raw


@given(st.sampled_from(ORDERS), st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_round_trips_to_the_same_float32(order: str, x: float) -> None:
    p = raw_point("float32", order)
    regs = encode_point(p, x)
    y = decode_point(p, regs)
    assert isinstance(y, float)
    assert f32(y) == x
    assert encode_point(p, y) == regs  # the short decimal is the same register image


@given(st.sampled_from(ORDERS), st.floats(allow_nan=False, allow_infinity=False))
def test_float64_round_trips_exactly(order: str, x: float) -> None:
    p = raw_point("float64", order)
    assert decode_point(p, encode_point(p, x)) == x


NON_FINITE = st.sampled_from((math.inf, -math.inf, math.nan))


@given(st.sampled_from(("float32", "float64")), st.sampled_from(ORDERS), NON_FINITE)
def test_non_finite_floats_never_become_values(t: str, order: str, x: float) -> None:
    p = raw_point(t, order)
    with pytest.raises(DecodeError):
        decode_point(p, encode_point(p, x))
    with pytest.raises(NoValue):
        decode_point(raw_point(t, order, no_value=["nan"]), encode_point(p, x))


@given(st.booleans())
def test_bools_round_trip(b: bool) -> None:
    p = IdentityPoint.model_validate({"name": "x", "function": "coil", "address": 0, "type": "bool"})
    assert decode_point(p, encode_point(p, b)) is b


@given(st.sampled_from(("ABCD", "BADC")), st.integers(1, 10), st.data())
def test_strings_round_trip(order: str, length: int, data: st.DataObject) -> None:
    alphabet = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
    s = data.draw(st.text(alphabet, max_size=2 * length))
    p = raw_point("string", order, length=length)
    assert decode_point(p, encode_point(p, s)) == s


@given(int_case())
def test_integer_layout_matches_pymodbus(case: tuple[str, str, int]) -> None:
    """An independent oracle: pymodbus's converter agrees for ABCD and CDAB (word order only)."""
    t, order, raw = case
    if order not in ("ABCD", "CDAB"):
        order = "ABCD"
    expected = ModbusClientMixin.convert_to_registers(
        raw, getattr(DT, t.upper()), word_order="big" if order == "ABCD" else "little"
    )
    assert encode_point(raw_point(t, order), raw) == expected


SCALES = (1.0, 0.1, 0.01, 0.001, 10.0, 1000.0, 0.5)


@given(int_case(), st.sampled_from(SCALES), st.sampled_from((0.0, -40.0, 273.15)))
def test_scaled_registers_survive_decode_then_encode(
    case: tuple[str, str, int], scale: float, offset: float
) -> None:
    """decode is injective at the register's resolution: re-encoding a decoded value gives the registers.

    The law holds while a float64 still resolves one count: |raw| < 2**50 leaves ulp(raw * scale) below
    scale / 4. Beyond that (10**15 counts and more, e.g. a Wh counter past 10**12 kWh) a scaled value cannot
    be stored exactly in an InfluxDB float field by anyone; unscaled 64-bit counters stay exact.
    """
    t, order, raw = case
    assume(scale == 1.0 or abs(raw) < 2**50)
    p = Point.model_validate(
        {"name": "energy_import", "function": "input", "address": 0, "type": t, "order": order,
         "scale": scale, "offset": offset}
    )
    regs = encode_point(raw_point(t, order), raw)
    try:
        value = decode_point(p, regs)
    except ValueError:  # beyond the wire's 1e15 limit: refused, never wrong
        assert abs(raw * scale + offset) > 1e15 * 0.999
        return
    assert encode_point(p, value) == regs


@given(st.sampled_from(("int16", "uint16", "int32", "uint32")), st.integers(0, 15), st.data())
def test_bit_fields_read_their_bit_only(t: str, bit: int, data: st.DataObject) -> None:
    lo, hi = RANGES[t]
    raw = data.draw(st.integers(lo, hi))
    p = Point.model_validate({"name": "fault", "function": "holding", "address": 0, "type": t, "bit": bit})
    regs = encode_point(raw_point(t, "ABCD"), raw)
    assert decode_point(p, regs) is bool((raw & ((1 << (16 * p.count)) - 1)) >> bit & 1)


@settings(max_examples=50)
@given(
    st.floats(-3000, 3000, allow_nan=False).map(lambda v: round(v, 1)),
    st.floats(-300, 300, allow_nan=False).map(lambda v: round(v, 2)),
    st.booleans(),
    st.booleans(),
)
def test_register_image_round_trips_through_plan_and_decode(
    p1: float, p2: float, run: bool, fault: bool
) -> None:
    prof = Profile.model_validate({
        "id": "t", "vendor": "v", "model": "m", "kind": "hvac", "source": "s",
        "defaults": {"function": "holding"},
        "points": [
            {"name": "active_power", "address": 0, "type": "int16", "scale_factor": {"address": 3}},
            {"name": "reactive_power", "address": 1, "type": "int16", "scale_factor": {"address": 3}},
            {"name": "run_status", "address": 2, "bit": 0},
            {"name": "fault", "address": 2, "bit": 15},
            {"name": "supply_air_temp", "address": 10, "type": "float32", "order": "DCBA"},
        ],
    })
    values: dict[str, Any] = {"active_power": p1, "reactive_power": p2, "run_status": run, "fault": fault,
                              "supply_air_temp": 21.5}
    image = register_image(prof, values)
    (plan,) = plan_profile(prof)
    out = decode(plan, [[image[r.function].get(a, 0) for a in range(r.address, r.end)] for r in plan.reads])
    assert out.quality == "good"
    assert out.values["run_status"] is run and out.values["fault"] is fault
    assert out.values["supply_air_temp"] == 21.5
    # the shared scale factor is chosen so both fit in an int16: never worse than 0.1 here... unless
    # one value needs the whole range, then both lose a digit; the error is at most half a step
    sf = image["holding"][3] - 0x10000 if image["holding"][3] >= 0x8000 else image["holding"][3]
    for name, v in (("active_power", p1), ("reactive_power", p2)):
        assert abs(out.values[name] - v) <= 0.5 * 10.0**sf + 1e-9
