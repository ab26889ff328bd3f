"""Grafana's InfluxQL macro expansion, reproduced: time filter, intervals, variable formatting."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.dashboards.influxql import (
    InfluxQLQuery,
    UnknownVariableError,
    Variable,
    expand,
    format_value,
    interval_ms,
    interval_text,
    referenced_variables,
    regex_escape,
)


def test_time_filter_and_intervals() -> None:
    q = "SELECT mean(x) FROM m WHERE $timeFilter GROUP BY time($__interval) -- "
    q += "$__interval_ms ${__from} ${__to}"
    out = expand(q, 1_000_000, 87_400_000)
    step = interval_ms(1_000_000, 87_400_000)
    assert "time >= 1000000ms and time <= 87400000ms" in out
    assert f"GROUP BY time({interval_text(step)})" in out
    assert f"-- {step} 1000000 87400000" in out


def test_day_range_interval_is_grafanas_rounding() -> None:
    # one day over 1000 points = 86.4 s -> Grafana rounds to 1 minute
    assert interval_ms(0, 86_400_000) == 60_000
    assert (
        interval_text(60_000) == "1m" and interval_text(3_600_000) == "1h" and interval_text(1500) == "1500ms"
    )


@given(st.integers(0, 10**12), st.integers(1, 10**11))
def test_interval_grows_with_range(start: int, length: int) -> None:
    a = interval_ms(start, start + length)
    b = interval_ms(start, start + 2 * length)
    assert 10_000 <= a <= b


@given(st.text(min_size=1, max_size=30).filter(lambda s: "\n" not in s))
def test_escaped_value_matches_itself_exactly(value: str) -> None:
    pattern = re.compile("^" + regex_escape(value) + "$")
    assert pattern.fullmatch(value)
    assert not pattern.fullmatch(value + "x")


def test_multi_value_formatting_like_grafana() -> None:
    assert format_value(Variable.many(["b1", "b2"])) == "(b1|b2)"
    assert format_value(Variable.many(["a.b"])) == r"a\.b"
    assert format_value(Variable.single("civic-centre")) == "civic-centre"
    assert format_value(Variable.many(["x/y", "(z)"])) == r"(x\/y|\(z\))"
    assert format_value(Variable.single("2024")) == "2024"


def test_variables_regex_text_and_missing() -> None:
    q = "\"site\" =~ /^$site$/ AND x = '${year:text}' AND y = '${year}' AND z = [[building]]"
    v = {
        "site": Variable.many(["s1", "s2"]),
        "year": Variable.single("2024", text="2025"),
        "building": Variable.single("b1"),
    }
    assert expand(q, 0, 1, v) == "\"site\" =~ /^(s1|s2)$/ AND x = '2025' AND y = '2024' AND z = b1"
    assert referenced_variables(q) == {"site", "year", "building"}
    with pytest.raises(UnknownVariableError, match="site"):
        expand(q, 0, 1, {})


def test_expanded_regex_selects_exactly_the_chosen_values() -> None:
    sel = expand("/^$site$/", 0, 1, {"site": Variable.many(["a", "a.b"])}).strip("/")
    assert [s for s in ("a", "a.b", "axb", "ab", "a.bc") if re.fullmatch(sel, s)] == ["a", "a.b"]


def test_target_json_is_grafanas_raw_influxql_target() -> None:
    doc = InfluxQLQuery("B", "SELECT 1", "table", "$tag_site").to_json()
    assert doc == {
        "datasource": {"type": "influxdb", "uid": "${datasource}"},
        "query": "SELECT 1",
        "rawQuery": True,
        "refId": "B",
        "resultFormat": "table",
        "alias": "$tag_site",
    }
