from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.collector import lineprotocol as lp
from epcwatch.wire import TelemetryMessage


def msg(values: dict[str, object], **tags: str) -> TelemetryMessage:
    return TelemetryMessage.model_validate(
        {
            "site": "s1",
            "device": "d1",
            "kind": "meter",
            "tags": tags,
            "readings": [{"seq": 1, "ts": 1_700_000_000_123, "values": values}],
        }
    )


def test_fields_typed_by_vocabulary_not_by_json() -> None:
    # active_power is a float field: an integer JSON value is still written as a float;
    # alarm_code is an int field: 5.0 becomes 5i; run_status is a bool field
    line = lp.telemetry_lines(msg({"active_power": 5, "alarm_code": 5.0, "run_status": True}))[0]
    assert line == "meter,device=d1,site=s1 active_power=5.0,alarm_code=5i,run_status=true 1700000000123"


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [("a b", r"a\ b"), ("a,b", r"a\,b"), ("a=b", r"a\=b"), ("plain", "plain"), ("中文", "中文")],
)
def test_tag_escaping(raw: str, escaped: str) -> None:
    assert lp.escape_key(raw) == escaped
    assert lp.telemetry_lines(msg({"active_power": 1.0}, building=raw))[0].startswith(
        f"meter,building={escaped},device=d1,site=s1 "
    )


def test_string_and_generic_points() -> None:
    assert lp.format_value('say "hi" \\') == r'"say \"hi\" \\"'
    assert lp.point("m", {"b": None, "a": "x"}, {"f": 1, "g": None, "h": 2.5, "k": False}, 7) == (
        "m,a=x f=1i,h=2.5,k=false 7"
    )
    assert lp.point("m", {}, {"g": None}, 7) is None


def test_non_finite_and_wrong_types_refused() -> None:
    with pytest.raises(lp.LineProtocolError):
        lp.format_typed("active_power", float("nan"))
    with pytest.raises(lp.LineProtocolError):
        lp.format_typed("alarm_code", 1.5)
    with pytest.raises(lp.LineProtocolError):
        lp.format_typed("run_status", 1)
    with pytest.raises(lp.LineProtocolError):
        lp.format_typed("no_such_thing", 1)


def test_trailing_backslash_is_not_writable() -> None:
    assert not lp.tag_value_writable("a\\")
    assert lp.tag_value_writable("a\\b")
    assert not lp.tag_value_writable("")


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_floats_round_trip(v: float) -> None:
    text = lp.format_typed("active_power", v)
    assert float(text) == v
    assert not text.endswith("i")
