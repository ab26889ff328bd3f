"""The fast path accepts only what the wire model accepts, and writes the same line protocol."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcwatch.collector import fastpath
from epcwatch.collector.lineprotocol import telemetry_lines
from epcwatch.collector.validate import validate
from epcwatch.wire import TelemetryMessage, coalesce
from tests.collector.strategies import documents

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with one part replaced by something arbitrary."""
    d = draw(documents(site="s1", device="d1"))
    where = draw(st.sampled_from(["top", "tags", "reading", "value"]))
    if where == "top":
        d[draw(st.sampled_from(["v", "site", "device", "kind", "tags", "readings", "extra"]))] = draw(junk)
    elif where == "tags":
        key = draw(st.sampled_from(["building", "category", "floor", "item_code", "x"]))
        codes = st.sampled_from(["01A10", "01B00", "02000", "01A40", "01E00", "1A10", "A"])
        d.setdefault("tags", {})[key] = draw(junk | codes)
    elif where == "reading":
        r = d["readings"][0]
        r[draw(st.sampled_from(["seq", "ts", "values", "quality", "extra"]))] = draw(junk)
    else:
        values = d["readings"][-1]["values"]
        name = draw(st.sampled_from([*values, "active_power", "run_status", "alarm_code"]))
        values[name] = draw(junk | st.floats() | st.integers(-(10**20), 10**20))
    return d


def meaning(line: str) -> tuple[str, dict[str, tuple[str, float | bool]], str]:
    """What InfluxDB stores for a line: series key, typed field values, timestamp. ("5" and
    "5.0" are the same float in line protocol; only a trailing "i" makes an integer.)"""
    key, fields, ts = re.split(r"(?<!\\) ", line)
    out: dict[str, tuple[str, float | bool]] = {}
    for kv in fields.split(","):
        k, v = kv.split("=")
        if v in ("true", "false"):
            out[k] = ("bool", v == "true")
        elif v.endswith("i"):
            out[k] = ("int", int(v[:-1]))
        else:
            out[k] = ("float", float(v))
    return key, out, ts


def check(payload: bytes) -> None:
    fast = fastpath.telemetry("s1", "d1", payload)
    slow = validate("epc/v1/s1/d1/telemetry", payload)
    if fast is not None:
        assert isinstance(slow, TelemetryMessage), (payload, slow)
        assert [meaning(x) for x in fast.lines] == [meaning(x) for x in telemetry_lines(slow)]
        assert fast.max_ts == max(r.ts for r in slow.readings)
        # the seqs the end-to-end acknowledgement will name: exactly the readings', coalesced
        assert fast.seq_ranges == coalesce((r.seq, r.seq) for r in slow.readings)


@settings(max_examples=400)
@given(documents(site="s1", device="d1"))
def test_valid_documents_take_the_fast_path(doc: dict[str, Any]) -> None:
    payload = orjson.dumps(doc)
    assert fastpath.telemetry("s1", "d1", payload) is not None
    check(payload)


@pytest.mark.slow  # a long property run: the full check runs it, --fast does not
@settings(max_examples=1500)
@given(mutated())
def test_fast_acceptance_implies_model_acceptance(doc: dict[str, Any]) -> None:
    # the standard encoder: big integers, NaN and Infinity tokens reach the parsers too
    check(json.dumps(doc).encode())


@given(st.binary(max_size=200))
def test_arbitrary_bytes(payload: bytes) -> None:
    check(payload)
