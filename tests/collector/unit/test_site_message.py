"""Schema 2 (several devices of a site in one message): the fast path accepts only what the
wire model accepts, writes the same line protocol as the schema-1 messages of the same
readings, and the dead-letter reasons are those of schema 1."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from epcwatch import topics
from epcwatch.broker.acl import site_block
from epcwatch.collector import fastpath
from epcwatch.collector.lineprotocol import site_telemetry_lines, telemetry_lines
from epcwatch.collector.validate import Reason, Rejection, validate
from epcwatch.wire import SiteTelemetryMessage, TelemetryMessage
from tests.collector.strategies import documents
from tests.collector.unit.test_fastpath import junk, meaning

TOPIC = "epc/v1/s1/_site/telemetry"


@st.composite
def site_documents(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 5))
    blocks = []
    for i in range(n):
        d = draw(documents(site="s1", device=f"d{i}"))
        d.pop("site")
        d.pop("v", None)
        blocks.append(d)
    return {"v": 2, "site": "s1", "devices": blocks}


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    d = draw(site_documents())
    block = draw(st.sampled_from(d["devices"]))
    where = draw(st.sampled_from(["top", "block", "reading", "value", "duplicate"]))
    if where == "top":
        d[draw(st.sampled_from(["v", "site", "devices", "device", "extra"]))] = draw(junk)
    elif where == "block":
        block[draw(st.sampled_from(["device", "kind", "tags", "readings", "v", "site"]))] = draw(junk)
    elif where == "reading":
        block["readings"][0][draw(st.sampled_from(["seq", "ts", "values", "quality", "x"]))] = draw(junk)
    elif where == "value":
        values = block["readings"][-1]["values"]
        values[draw(st.sampled_from([*values, "active_power", "run_status"]))] = draw(junk | st.floats())
    else:
        d["devices"].append(dict(block))
    return d


def check(payload: bytes) -> None:
    fast = fastpath.site_telemetry("s1", payload)
    slow = validate(TOPIC, payload)
    if fast is not None:
        assert isinstance(slow, SiteTelemetryMessage), (payload, slow)
        assert [meaning(x) for x in fast.lines] == [meaning(x) for x in site_telemetry_lines(slow)]
        assert fast.max_ts == max(r.ts for b in slow.devices for r in b.readings)


@settings(max_examples=200)
@given(site_documents())
def test_valid_site_documents_take_the_fast_path(doc: dict[str, Any]) -> None:
    payload = orjson.dumps(doc)
    assert fastpath.site_telemetry("s1", payload) is not None
    check(payload)


@pytest.mark.slow  # a long property run: the full check runs it, --fast does not
@settings(max_examples=600)
@given(mutated())
def test_fast_acceptance_implies_model_acceptance(doc: dict[str, Any]) -> None:
    check(json.dumps(doc).encode())


@given(st.binary(max_size=200))
def test_arbitrary_bytes(payload: bytes) -> None:
    check(payload)


@settings(max_examples=200)
@given(site_documents())
def test_same_lines_as_one_message_per_device(doc: dict[str, Any]) -> None:
    site_lines = site_telemetry_lines(SiteTelemetryMessage.model_validate_json(orjson.dumps(doc)))
    per_device = [
        line
        for b in doc["devices"]
        for line in telemetry_lines(TelemetryMessage.model_validate({**b, "site": "s1"}))
    ]
    assert site_lines == per_device


def block(device: str, seq: int = 0) -> dict[str, Any]:
    return {
        "device": device,
        "kind": "meter",
        "readings": [{"seq": seq, "ts": 1_767_225_600_000, "values": {"active_power": 1.5}}],
    }


def reason(payload: dict[str, Any], topic: str = TOPIC) -> Reason:
    res = validate(topic, orjson.dumps(payload))
    assert isinstance(res, Rejection), res
    return res.reason


def test_dead_letter_reasons_stay_those_of_schema_1() -> None:
    assert reason({"v": 2, "site": "s2", "devices": [block("d1")]}) is Reason.TOPIC_MISMATCH
    assert reason({"v": 2, "site": "s1", "devices": [block("d1"), block("d1", 1)]}) is Reason.SCHEMA
    assert reason({"v": 1, "site": "s1", "devices": [block("d1")]}) is Reason.SCHEMA
    assert reason({"v": 2, "site": "s1", "devices": []}) is Reason.SCHEMA
    bad_tag = block("d1") | {"tags": {"building": "b\\"}}
    assert reason({"v": 2, "site": "s1", "devices": [block("d0"), bad_tag]}) is Reason.UNWRITABLE
    # a schema-2 document on a device topic, and a schema-1 document on the site topic
    assert reason({"v": 2, "site": "s1", "devices": [block("d1")]}, "epc/v1/s1/d1/telemetry") is Reason.SCHEMA
    assert reason({"site": "s1", "device": "d1", **block("d1")}) is Reason.SCHEMA


def test_too_many_readings_in_total() -> None:
    blocks = [
        {
            **block(f"d{i}"),
            "readings": [
                {"seq": s, "ts": 1_767_225_600_000 + s, "values": {"active_power": 1.0}} for s in range(300)
            ],
        }
        for i in range(4)
    ]
    payload = orjson.dumps({"v": 2, "site": "s1", "devices": blocks})
    assert fastpath.site_telemetry("s1", payload) is None
    res = validate(TOPIC, payload, max_bytes=10**7)
    assert isinstance(res, Rejection) and res.reason is Reason.SCHEMA


def test_site_topic_is_covered_by_the_existing_filters() -> None:
    t = topics.site_telemetry("s1")
    assert t == TOPIC
    assert topics.parse(t).channel == "site_telemetry"
    # the segment can never be a device id, so it never collides with a device's topic
    assert not topics.ID_RE.match(topics.SITE_SEGMENT)
    # the collectors' subscription and the site's ACL line match it unchanged
    assert topic_matches_sub(topics.TELEMETRY_FILTER, t)
    assert topic_matches_sub(site_block("s1").lines()[2].split()[-1], t)
    assert not topic_matches_sub(site_block("s2").lines()[2].split()[-1], t)
