"""The fast path accepts only what the wire model accepts, and writes the same line protocol."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcwatch.collector import fastpath, proofs
from epcwatch.collector.lineprotocol import telemetry_lines
from epcwatch.collector.validate import validate
from epcwatch.wire import TelemetryMessage, coalesce
from tests.collector.strategies import documents

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5,
)


def _b64(n: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=n, max_size=n).map(lambda b: base64.b64encode(b).decode())


@st.composite
def signed_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document of a signing site: consecutive seqs and a proof of the right shape (the
    signature itself is the pipeline's to check)."""
    d = draw(documents(site="s1", device="d1"))
    first = draw(st.integers(0, 2**40))
    for i, r in enumerate(d["readings"]):
        r["seq"] = first + i
    d["proof"] = {
        "kid": draw(st.text("0123456789abcdef", min_size=16, max_size=16)),
        "first_prev": draw(_b64(32)),
        "sig": draw(_b64(64)),
    }
    return d


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    """A valid document with one part replaced by something arbitrary."""
    d = draw(signed_documents() if draw(st.booleans()) else documents(site="s1", device="d1"))
    where = draw(st.sampled_from(["top", "tags", "reading", "value", "proof"]))
    if where == "proof":
        proof = d.setdefault("proof", {"kid": "0" * 16, "first_prev": "A" * 43 + "=", "sig": "A" * 86 + "=="})
        key = draw(st.sampled_from(["kid", "first_prev", "sig", "x"]))
        proof[key] = draw(junk | st.sampled_from(["A" * 43 + "=", "A" * 44, "0" * 16, "0" * 15 + "G"]))
    elif where == "top":
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


def meaning(line: str) -> tuple[str, dict[str, tuple[str, float | bool | str]], str]:
    """What InfluxDB stores for a line: series key, typed field values, timestamp. ("5" and
    "5.0" are the same float in line protocol; only a trailing "i" makes an integer.)"""
    key, fields, ts = re.split(r"(?<!\\) ", line)
    out: dict[str, tuple[str, float | bool | str]] = {}
    for kv in fields.split(","):
        k, v = kv.split("=")
        if v.startswith('"'):
            out[k] = ("str", v)  # a string field (quality)
        elif v in ("true", "false"):
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
        want = telemetry_lines(slow) if slow.proof is None else proofs.reading_lines(slow)
        assert [meaning(x) for x in fast.lines] == [meaning(x) for x in want]
        if slow.proof is None:
            assert fast.signed == []
        else:
            p = slow.proof
            assert [(d, [r["seq"] for r in rs], pr) for d, rs, pr in fast.signed] == [
                ("d1", [r.seq for r in slow.readings], (p.kid, p.first_prev, p.sig))
            ]
        assert fast.max_ts == max(r.ts for r in slow.readings)
        # the seqs the end-to-end acknowledgement will name: exactly the readings', coalesced
        assert fast.seq_ranges == coalesce((r.seq, r.seq) for r in slow.readings)


@settings(max_examples=400)
@given(documents(site="s1", device="d1"))
def test_valid_documents_take_the_fast_path(doc: dict[str, Any]) -> None:
    payload = orjson.dumps(doc)
    assert fastpath.telemetry("s1", "d1", payload) is not None
    check(payload)


@settings(max_examples=200)
@given(signed_documents())
def test_signed_documents_take_the_fast_path(doc: dict[str, Any]) -> None:
    payload = orjson.dumps(doc)
    assert fastpath.telemetry("s1", "d1", payload) is not None
    check(payload)
    site_doc = {"v": 2, "site": "s1", "devices": [{k: v for k, v in doc.items() if k not in ("v", "site")}]}
    fast = fastpath.site_telemetry("s1", orjson.dumps(site_doc))
    assert fast is not None and fast.lines == fastpath.telemetry("s1", "d1", payload).lines  # type: ignore[union-attr]
    assert len(fast.signed) == 1


@pytest.mark.slow  # a long property run: the full check runs it, --fast does not
@settings(max_examples=1500)
@given(mutated())
def test_fast_acceptance_implies_model_acceptance(doc: dict[str, Any]) -> None:
    # the standard encoder: big integers, NaN and Infinity tokens reach the parsers too
    check(json.dumps(doc).encode())


@given(st.binary(max_size=200))
def test_arbitrary_bytes(payload: bytes) -> None:
    check(payload)
