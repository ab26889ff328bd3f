"""Decoding table tests: registers built with struct, independently of the encoder."""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from typing import Any

import pytest

from epcwatch.profiles.decode import (
    DecodeError,
    NoValue,
    decode,
    decode_point,
)
from epcwatch.profiles.encode import encode_point, register_image
from epcwatch.profiles.model import IdentityPoint, Point, Profile
from epcwatch.profiles.planner import plan_profile


def regs(fmt: str, value: Any, order: str = "ABCD") -> list[int]:
    """Registers of ``value`` packed big-endian with ``fmt``, then rearranged into ``order``."""
    data = struct.pack(">" + fmt, value)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if order in ("CDAB", "DCBA"):
        words.reverse()
    if order in ("BADC", "DCBA"):
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def pt(name: str, type_: str, order: str = "ABCD", function: str = "holding", **kw: Any) -> Point:
    return Point.model_validate(
        {"name": name, "function": function, "address": 0, "type": type_, "order": order, **kw}
    )


CASES = [
    # (type, struct fmt, raw, measurement, expected)
    ("int16", "h", -1234, "active_power", -1234.0),
    ("uint16", "H", 65000, "active_power", 65000.0),
    ("int32", "i", -123456789, "active_power", -123456789.0),
    ("uint32", "I", 4_000_000_000, "energy_import", 4e9),
    ("int64", "q", -(2**40) - 3, "active_power", float(-(2**40) - 3)),
    ("uint64", "Q", 2**49 + 1, "energy_import", float(2**49 + 1)),
    ("float32", "f", 230.1, "voltage_l1", 230.1),
    ("float64", "d", 1234567.891011, "energy_import", 1234567.891011),
]


@pytest.mark.parametrize("order", ["ABCD", "CDAB", "BADC", "DCBA"])
@pytest.mark.parametrize(("type_", "fmt", "raw", "name", "expected"), CASES)
def test_every_type_and_order(type_: str, fmt: str, raw: Any, name: str, expected: float, order: str) -> None:
    assert decode_point(pt(name, type_, order), regs(fmt, raw, order)) == expected


def test_word_order_matters() -> None:
    """The classic trap: a CDAB float read as ABCD is garbage, not 230.1."""
    r = regs("f", 230.1, "CDAB")
    assert decode_point(pt("voltage_l1", "float32", "CDAB"), r) == 230.1
    assert decode_point(pt("voltage_l1", "float32", "ABCD"), r) != pytest.approx(230.1)


def test_fixed_point_scaling_is_decimal_exact() -> None:
    assert decode_point(pt("voltage_l1", "uint16", scale=0.1), [2305]) == 230.5
    assert decode_point(pt("current_l1", "int32", "CDAB", scale=0.001), regs("i", -12345, "CDAB")) == -12.345
    assert decode_point(pt("outdoor_temp", "int16", scale=0.1, offset=-40), [652]) == 25.2


def test_64bit_counters_are_exact() -> None:
    wh = 2**58 + 33  # not representable as a float: float(wh) * 0.001 rounds twice
    kwh = decode_point(pt("energy_import", "uint64", scale=0.001), regs("Q", wh))
    assert kwh == float(Fraction(wh, 1000))  # the float nearest the exact kWh
    assert kwh != float(wh) * 0.001
    # an int measurement stays an exact Python int
    n = decode_point(pt("start_count", "int64"), regs("q", 999_999_999_999_999))
    assert n == 999_999_999_999_999 and isinstance(n, int)
    # beyond what the wire accepts (|v| <= 1e15) is an error, not a silently wrong number
    with pytest.raises(DecodeError, match="exceeds"):
        decode_point(pt("start_count", "uint64"), regs("Q", 2**63 + 7))


def test_signed_vs_unsigned() -> None:
    r = regs("h", -2)
    assert decode_point(pt("active_power", "int16"), r) == -2.0
    assert decode_point(pt("active_power", "uint16"), r) == 65534.0


def test_types_follow_the_vocabulary() -> None:
    assert decode_point(pt("alarm_code", "uint16"), [7]) == 7
    assert isinstance(decode_point(pt("alarm_code", "uint16"), [7]), int)
    assert isinstance(decode_point(pt("active_power", "uint16"), [7]), float)
    assert decode_point(pt("run_status", "uint16"), [2]) is True
    assert decode_point(pt("run_status", "bool", function="coil"), [False]) is False
    with pytest.raises(DecodeError, match="not an integer"):
        decode_point(pt("alarm_code", "uint16", scale=0.5), [3])


@pytest.mark.parametrize(
    ("type_", "fmt", "sentinel", "raw"),
    [
        ("uint32", "I", "all_ones", 0xFFFFFFFF),
        ("int32", "i", "max", 0x7FFFFFFF),
        ("int16", "h", "all_ones", -1),
        ("uint64", "Q", "max", 2**64 - 1),
        ("uint16", "H", 32768, 32768),
        ("int16", "h", 0x8000, -32768),  # a signed sentinel spelled as its bit pattern
        ("int16", "h", -32768, -32768),
    ],
)
def test_no_value_sentinels(type_: str, fmt: str, sentinel: Any, raw: int) -> None:
    p = pt("active_power", type_, no_value=[sentinel])
    with pytest.raises(NoValue):
        decode_point(p, regs(fmt, raw))


def test_nan_is_missing_when_declared_and_an_error_otherwise() -> None:
    nan = regs("f", math.nan)
    with pytest.raises(NoValue):
        decode_point(pt("voltage_l1", "float32", no_value=["nan"]), nan)
    with pytest.raises(DecodeError):
        decode_point(pt("voltage_l1", "float32"), nan)
    with pytest.raises(NoValue):  # 0xFFFF_FFFF is a NaN too
        decode_point(pt("voltage_l1", "float32", no_value=["all_ones"]), [0xFFFF, 0xFFFF])


def test_enum_and_bits() -> None:
    mode = pt("operating_mode", "uint16", enum={0: 0, 3: 1, 4: 2})
    assert decode_point(mode, [3]) == 1
    with pytest.raises(DecodeError, match="code 9"):
        decode_point(mode, [9])
    running = pt("run_status", "uint16", enum={0: False, 1: True, 2: True})
    assert decode_point(running, [2]) is True
    fault = pt("fault", "uint32", "CDAB", bit=17)
    assert decode_point(fault, regs("I", 1 << 17, "CDAB")) is True
    assert decode_point(fault, regs("I", 1 << 16, "CDAB")) is False


def test_strings() -> None:
    p = IdentityPoint.model_validate(
        {"name": "serial", "function": "holding", "address": 0, "type": "string", "length": 4}
    )
    data = b"SN12345\x00"
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, 8, 2)]
    assert decode_point(p, words) == "SN12345"
    assert encode_point(p, "SN12345") == words


PROFILE = Profile.model_validate({
    "id": "t", "vendor": "v", "model": "m", "kind": "meter", "source": "s",
    "defaults": {"function": "holding"},
    "points": [
        {"name": "active_power", "address": 0, "type": "int16", "scale_factor": {"address": 4}},
        {"name": "reactive_power", "address": 1, "type": "int16", "scale_factor": {"address": 4}},
        {"name": "voltage_l1", "address": 2, "type": "uint16", "scale": 0.1, "no_value": [65535]},
        {"name": "fault", "address": 3, "bit": 0},
        {"name": "run_status", "address": 3, "bit": 2},
        {"name": "energy_import", "address": 100, "type": "float32", "function": "input"},
    ],
    "identity": [{"name": "serial", "address": 50, "type": "string", "length": 2}],
})


def test_sunspec_scale_factor() -> None:
    plan = plan_profile(PROFILE)[0]
    # sf = -1 (0xFFFF): 12345 -> 1234.5
    out = decode(plan, [[12345, (-20) & 0xFFFF, 2300, 0b101, 0xFFFF], list(regs("f", 5.5))])
    assert out.values["active_power"] == 1234.5
    assert out.values["reactive_power"] == -2.0
    assert out.values["fault"] is True and out.values["run_status"] is True
    assert out.values["energy_import"] == 5.5
    assert out.quality == "good"
    # SunSpec's "not implemented" scale factor is a missing value, not an error
    out = decode(plan, [[1, 2, 2300, 0, 0x8000], list(regs("f", 5.5))])
    assert "active_power" in out.missing and out.quality == "good"


def test_failed_read_makes_the_reading_partial() -> None:
    plan = plan_profile(PROFILE)[0]
    out = decode(plan, [None, list(regs("f", 5.5))])
    assert out.quality == "partial"
    assert out.values == {"energy_import": 5.5}
    assert set(out.errors) == {"active_power", "reactive_power", "voltage_l1", "fault", "run_status"}
    out = decode(plan, [[1, 2, 3], list(regs("f", 5.5))])  # short response
    assert out.quality == "partial" and "short response" in out.errors["fault"]


def test_sentinel_is_missing_not_partial() -> None:
    plan = plan_profile(PROFILE)[0]
    out = decode(plan, [[1, 1, 0xFFFF, 0, 0], list(regs("f", 5.5))])
    assert out.missing == {"voltage_l1": "no value (65535)"}
    assert out.quality == "good"


def test_register_image_round_trips_through_the_plan() -> None:
    values: dict[str, Any] = {
        "active_power": 1234.5, "reactive_power": -20.0, "voltage_l1": 231.4, "fault": False,
        "run_status": True, "energy_import": 98765.4, "serial": "AB",
    }
    image = register_image(PROFILE, values)
    assert image["holding"][4] == (-1) & 0xFFFF  # 1234.5 needs one decimal: sf -1 (int16)
    out_values: dict[str, Any] = {}
    for plan in plan_profile(PROFILE):
        responses = [[image[r.function].get(a, 0) for a in range(r.address, r.end)] for r in plan.reads]
        out = decode(plan, responses)
        out_values |= out.values | out.identity
    assert out_values == values


def test_register_image_encodes_none_as_the_sentinel_and_rejects_unknown_names() -> None:
    image = register_image(PROFILE, {"voltage_l1": None})
    assert image["holding"][2] == 65535
    with pytest.raises(ValueError, match="no point named bogus"):
        register_image(PROFILE, {"bogus": 1})
    with pytest.raises(ValueError, match="outside uint16"):
        register_image(PROFILE, {"voltage_l1": 7000.0})
