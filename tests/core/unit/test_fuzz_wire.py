"""Fuzzing the wire parser and the topic parser: every bad input is a clear, typed error
(pydantic ``ValidationError`` or ``TopicError``), nothing else escapes, and whatever is
accepted satisfies the contract."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from epcwatch import measurements, topics
from epcwatch.wire import MAX_ABS_VALUE, DeadLetter, HealthMessage, StatusMessage, TelemetryMessage

FUZZ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)

VALID: dict[str, Any] = {
    "v": 1,
    "site": "civic-centre",
    "device": "b1-main",
    "kind": "meter",
    "tags": {"building": "b1", "floor": "1", "category": "C", "tenant": "t1", "profile": "eastron-sdm630"},
    "readings": [
        {"seq": 7, "ts": 1_790_000_000_000, "values": {"active_power": 1234.5, "energy_import": 42.0}},
        {"seq": 8, "ts": 1_790_000_060_000, "values": {"active_power": 1200.0}, "quality": "partial"},
    ],
}

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def check_accepted(msg: TelemetryMessage) -> None:
    """What the parser lets through obeys the contract the collector relies on."""
    topics.check_id(msg.site)
    topics.check_id(msg.device)
    seqs = [r.seq for r in msg.readings]
    assert seqs == sorted(set(seqs))
    for r in msg.readings:
        for name, v in r.values.items():
            assert name in measurements.VOCABULARY
            if not isinstance(v, bool):
                assert math.isfinite(v) and abs(v) <= MAX_ABS_VALUE
    assert TelemetryMessage.model_validate_json(msg.model_dump_json()) == msg


def parse(payload: bytes) -> None:
    try:
        msg = TelemetryMessage.model_validate_json(payload)
    except ValidationError as exc:
        assert exc.errors(), "a rejection names at least one problem"
        assert str(exc)
        return
    check_accepted(msg)


@FUZZ
@given(st.binary(max_size=512))
def test_arbitrary_bytes(payload: bytes) -> None:
    parse(payload)


@FUZZ
@given(json_values)
def test_arbitrary_json(doc: Any) -> None:
    parse(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS) if _dumpable(doc) else b"{")


def _dumpable(doc: Any) -> bool:
    try:
        orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


Path = tuple[str | int, ...]


def _paths(doc: Any, prefix: Path = ()) -> list[Path]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(doc: Any, path: Path, op: str, value: Any) -> Any:
    if not path:
        return value if op == "replace" else doc
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        doc = dict(doc)
        if not rest and op == "delete":
            doc.pop(head, None)
        elif not rest and op == "add_sibling":
            doc[f"x{len(doc)}"] = value
        else:
            doc[head] = _mutate(doc[head], rest, op, value)
    elif isinstance(doc, list):
        doc = list(doc)
        assert isinstance(head, int)
        if not rest and op == "delete":
            doc.pop(head)
        elif not rest and op == "add_sibling":
            doc.insert(head, value)
        else:
            doc[head] = _mutate(doc[head], rest, op, value)
    return doc


@FUZZ
@given(st.data())
def test_mutated_valid_messages(data: st.DataObject) -> None:
    doc: Any = VALID
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        op = data.draw(st.sampled_from(["replace", "delete", "add_sibling"]))
        value = data.draw(json_values | st.sampled_from(["", "A", "a/b", "+", "#", "\x00", "nan", "1e999"]))
        doc = _mutate(doc, path, op, value)
    if _dumpable(doc):
        parse(orjson.dumps(doc))
    # python objects straight into the model (what a non-JSON consumer would hand over)
    try:
        msg = TelemetryMessage.model_validate(doc)
    except ValidationError:
        return
    check_accepted(msg)


@FUZZ
@given(st.binary(max_size=256))
def test_other_wire_models(payload: bytes) -> None:
    for model in (StatusMessage, HealthMessage, DeadLetter):
        with contextlib.suppress(ValidationError):
            model.model_validate_json(payload)


HEAD = b'{"v":1,"site":"a","device":"b","kind":"meter","readings":'


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"null",
        b"[]",
        b'{"v":1}',
        b'{"v":2,"site":"a","device":"b","kind":"meter","readings":[]}',
        HEAD + b'[{"seq":1,"ts":1790000000000,"values":{"active_power":NaN}}]}',
        HEAD + b'[{"seq":1,"ts":1790000000000,"values":{"active_power":1e400}}]}',
        HEAD + b'[{"seq":-1,"ts":1790000000000,"values":{"active_power":1}}]}',
        HEAD + b'[{"seq":2,"ts":1790000000000,"values":{"active_power":1}},'
        b'{"seq":2,"ts":1790000000001,"values":{"active_power":2}}]}',
        HEAD.replace(b'"a"', b'"A B"') + b'[{"seq":1,"ts":1790000000000,"values":{"active_power":1}}]}',
        b"\xff\xfe\x00",
        b'{"v":1,' * 10_000,
    ],
)
def test_known_bad_payloads_are_validation_errors(payload: bytes) -> None:
    with pytest.raises(ValidationError):
        TelemetryMessage.model_validate_json(payload)


@FUZZ
@given(
    st.text(max_size=120)
    | st.lists(
        st.sampled_from(["epc", "v1", "a", "b", "telemetry", "status", "health", "", "+", "#", "A"]),
        max_size=6,
    ).map("/".join)
)
def test_topic_parser(topic: str) -> None:
    try:
        parsed = topics.parse(topic)
    except topics.TopicError as exc:
        assert "must match" in str(exc) or "is not" in str(exc)
        return
    # accepted topics rebuild to themselves
    if parsed.channel == "telemetry":
        assert parsed.device is not None
        assert topics.telemetry(parsed.site, parsed.device) == topic
    elif parsed.channel == "status":
        assert topics.status(parsed.site) == topic
    else:
        assert topics.health(parsed.site) == topic


# -- the collector's validation: never raises, every refusal is a typed reason ------------------
def check_validate(topic: str, payload: bytes) -> None:
    from epcwatch.collector import fastpath
    from epcwatch.collector.validate import Reason, Rejection, validate

    verdict = validate(topic, payload)
    if isinstance(verdict, Rejection):
        assert verdict.reason in Reason and verdict.detail and str(verdict).startswith(verdict.reason.value)
        # the fast path never stores what validation refuses
        try:
            parsed = topics.parse(topic)
        except topics.TopicError:
            return
        if parsed.channel == "telemetry" and parsed.device is not None:
            assert fastpath.telemetry(parsed.site, parsed.device, payload) is None
        return
    parsed = topics.parse(topic)
    assert verdict.site == parsed.site
    if isinstance(verdict, TelemetryMessage):
        assert verdict.device == parsed.device
        check_accepted(verdict)


TOPICS = st.sampled_from(
    [
        "epc/v1/civic-centre/b1-main/telemetry",
        "epc/v1/site-b/b1-main/telemetry",
        "epc/v1/civic-centre/status",
        "epc/v1/civic-centre/health",
        "epc/v1/civic-centre/b1-main/telemetry/extra",
        "epc/deadletter/v1/collectors",
        "",
    ]
) | st.text(max_size=60)


@FUZZ
@given(TOPICS, st.binary(max_size=512))
def test_collector_validation_of_arbitrary_bytes(topic: str, payload: bytes) -> None:
    check_validate(topic, payload)


@FUZZ
@given(TOPICS, st.data())
def test_collector_validation_of_mutated_messages(topic: str, data: st.DataObject) -> None:
    doc: Any = VALID
    for _ in range(data.draw(st.integers(0, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        op = data.draw(st.sampled_from(["replace", "delete", "add_sibling"]))
        value = data.draw(json_values | st.sampled_from(["", "a\\\\", "site-b", "\x00", "nan"]))
        doc = _mutate(doc, path, op, value)
    if _dumpable(doc):
        check_validate(topic, orjson.dumps(doc))
