"""The one set of line-protocol escaping rules, checked against a reference reader that
unescapes exactly what InfluxDB 1.x unescapes (``\\,``, ``\\=`` and ``\\ `` in keys and tag
values; ``\\,`` and ``\\ `` in measurement names; ``\\"`` and ``\\\\`` in string fields)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.errors import EpcwatchError
from epcwatch.influx import influxql
from epcwatch.influx import lineprotocol as lp

SPECIAL = st.sampled_from(list("\\,= \"'x中"))
NAMES = st.lists(
    SPECIAL | st.characters(min_codepoint=0x20, max_codepoint=0x2FF), min_size=1, max_size=12
).map("".join)
WRITABLE = NAMES.filter(lp.tag_value_writable)


def _read_token(text: str, i: int, stops: str, escapable: str) -> tuple[str, int]:
    """Read up to an unescaped character of ``stops``; unescape only ``escapable``."""
    out = []
    while i < len(text) and text[i] not in stops:
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in escapable:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out), i


def read_series_key(key: str) -> tuple[str, dict[str, str]]:
    """The measurement and tags of ``measurement,k=v,…`` the way InfluxDB 1.x reads them."""
    measurement, i = _read_token(key, 0, ", ", ", ")
    tags: dict[str, str] = {}
    while i < len(key) and key[i] == ",":
        k, i = _read_token(key, i + 1, ",= ", ",= ")
        assert key[i] == "="
        v, i = _read_token(key, i + 1, ", ", ",= ")
        tags[k] = v
    assert i == len(key), f"unparsed rest {key[i:]!r}"
    return measurement, tags


def read_string_field(text: str) -> str:
    assert text[0] == text[-1] == '"'
    value, _ = _read_token(text[1:-1], 0, "", '"\\')
    return value


@given(measurement=WRITABLE, key=WRITABLE, value=WRITABLE, other=WRITABLE)
def test_every_writable_name_reads_back_as_itself(measurement: str, key: str, value: str, other: str) -> None:
    tags = {key: value, "zz": other}
    assert read_series_key(lp.series_key(measurement, tags)) == (measurement, tags)


@given(NAMES)
def test_escaping_never_doubles_a_backslash(name: str) -> None:
    assert lp.escape_key(name).count("\\") == name.count("\\") + sum(name.count(c) for c in ",= ")
    assert lp.escape_measurement(name).count("\\") == name.count("\\") + sum(name.count(c) for c in ", ")


@given(st.text(max_size=30))
def test_string_fields_read_back(text: str) -> None:
    assert read_string_field(lp.escape_string(text)) == text


@pytest.mark.parametrize("bad", ["ends\\", "tab\there", "nul\x00"])
def test_unwritable_names_are_refused_not_rewritten(bad: str) -> None:
    with pytest.raises(lp.LineProtocolError) as info:
        lp.point("m", {"building": bad}, {"f": 1.0}, 0)
    assert isinstance(info.value, EpcwatchError) and isinstance(info.value, ValueError)


def test_point_types_fields_and_drops_none() -> None:
    line = lp.point(
        "m x", {"b": "a b", "none": None}, {"f": 1.0, "i": 2, "ok": True, "s": 'q"\\', "n": None}, 5
    )
    assert line == 'm\\ x,b=a\\ b f=1.0,i=2i,ok=true,s="q\\"\\\\" 5'
    assert lp.point("m", {}, {"n": None}, 5) is None


def test_non_finite_floats_are_refused() -> None:
    with pytest.raises(lp.LineProtocolError):
        lp.format_value(float("nan"))


@pytest.mark.parametrize(
    ("raw", "literal", "ident"),
    [("plain", "'plain'", '"plain"'), ("it's", "'it\\'s'", '"it\'s"'), ("a\\b", "'a\\\\b'", '"a\\\\b"')],
)
def test_influxql_quoting(raw: str, literal: str, ident: str) -> None:
    assert influxql.literal(raw) == literal
    assert influxql.ident(raw) == ident
