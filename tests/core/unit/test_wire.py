from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from epcwatch import measurements, topics
from epcwatch.measurements import FieldType
from epcwatch.wire import MAX_TS_MS, MIN_TS_MS, Ack, Reading, TelemetryMessage, coalesce, json_schemas

ids = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,20}\Z")
names = st.sampled_from(sorted(measurements.VOCABULARY))


def value_for(name: str) -> st.SearchStrategy[bool | int | float]:
    ft = measurements.VOCABULARY[name].field_type
    if ft is FieldType.BOOL:
        return st.booleans()
    if ft is FieldType.INT:
        return st.integers(-(10**12), 10**12)
    return st.floats(-1e12, 1e12, allow_nan=False)


values = st.dictionaries(names, st.just(0), min_size=1, max_size=8).flatmap(
    lambda d: st.fixed_dictionaries({k: value_for(k) for k in d})
)


@st.composite
def messages(draw: st.DrawFn) -> TelemetryMessage:
    n = draw(st.integers(1, 5))
    start = draw(st.integers(0, 10**9))
    readings = [
        Reading(
            seq=start + i,
            ts=draw(st.integers(MIN_TS_MS, MAX_TS_MS - 1)),
            values=draw(values),
            quality=draw(st.sampled_from(["good", "partial"])),
        )
        for i in range(n)
    ]
    return TelemetryMessage(site=draw(ids), device=draw(ids), kind="meter", readings=readings)


@given(messages())
def test_message_json_round_trip(msg: TelemetryMessage) -> None:
    again = TelemetryMessage.model_validate_json(msg.model_dump_json())
    assert again == msg


def test_rejects_unknown_measurement_and_nan() -> None:
    base = {"site": "s1", "device": "d1", "kind": "meter"}
    with pytest.raises(ValidationError, match="unknown measurement 'watts'"):
        TelemetryMessage.model_validate(
            {**base, "readings": [{"seq": 1, "ts": MIN_TS_MS, "values": {"watts": 1}}]}
        )
    with pytest.raises(ValidationError, match="finite"):
        TelemetryMessage.model_validate(
            {**base, "readings": [{"seq": 1, "ts": MIN_TS_MS, "values": {"active_power": float("nan")}}]}
        )
    with pytest.raises(ValidationError, match="boolean"):
        TelemetryMessage.model_validate(
            {**base, "readings": [{"seq": 1, "ts": MIN_TS_MS, "values": {"run_status": 1}}]}
        )


def test_rejects_out_of_order_seq_and_bad_ids() -> None:
    r = {"ts": MIN_TS_MS, "values": {"active_power": 1.0}}
    with pytest.raises(ValidationError, match="strictly increasing"):
        TelemetryMessage.model_validate(
            {"site": "s1", "device": "d1", "kind": "meter", "readings": [{**r, "seq": 2}, {**r, "seq": 2}]}
        )
    with pytest.raises(ValidationError):
        TelemetryMessage.model_validate(
            {"site": "S1", "device": "d1", "kind": "meter", "readings": [{**r, "seq": 1}]}
        )


def test_topics_round_trip() -> None:
    t = topics.telemetry("site-1", "meter_2")
    assert t == "epc/v1/site-1/meter_2/telemetry"
    p = topics.parse(t)
    assert (p.site, p.device, p.channel) == ("site-1", "meter_2", "telemetry")
    assert topics.parse(topics.status("site-1")).channel == "status"
    with pytest.raises(topics.TopicError):
        topics.telemetry("Site", "x")
    with pytest.raises(topics.TopicError):
        topics.parse("epc/v1/a/b/c/telemetry")


def test_json_schema_exports_every_model() -> None:
    schemas = json_schemas()
    assert set(schemas) == {"TelemetryMessage", "StatusMessage", "HealthMessage", "DeadLetter", "Ack"}
    json.dumps(schemas)
    assert "readings" in schemas["TelemetryMessage"]["properties"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"active_power":5', '"active_power":"5"'),
        ('"v":1', '"v":true'),
        ('"seq":1', '"seq":"1"'),
        ('"ts":1700000000000', '"ts":1700000000000.5'),
    ],
)
def test_wire_is_strict_one_spelling_per_value(old: str, new: str) -> None:
    good = (
        '{"v":1,"site":"s","device":"d","kind":"meter","readings":'
        '[{"seq":1,"ts":1700000000000,"values":{"active_power":5}}]}'
    )
    assert TelemetryMessage.model_validate_json(good).readings[0].values == {"active_power": 5}
    with pytest.raises(ValidationError):
        TelemetryMessage.model_validate_json(good.replace(old, new))


@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)), max_size=40))
def test_coalesce_covers_exactly_the_union_with_sorted_disjoint_ranges(spans: list[tuple[int, int]]) -> None:
    ranges = [(a, a + n) for a, n in spans]
    out = coalesce(ranges)
    covered = {s for a, b in ranges for s in range(a, b + 1)}
    assert {s for a, b in out for s in range(a, b + 1)} == covered
    assert all(a <= b for a, b in out)
    # sorted, disjoint and not adjacent (adjacent ranges are merged)
    assert all(b1 + 1 < a2 for (_, b1), (a2, _) in itertools.pairwise(out))
    # and a valid acknowledgement, round trip through JSON
    if out:
        ack = Ack(site="s1", devices={"m1": out})
        assert Ack.model_validate_json(ack.model_dump_json()) == ack


def test_ack_topic_and_invalid_acks() -> None:
    assert topics.ack("site-1") == "epc/v1/site-1/ack"
    with pytest.raises(topics.TopicError):
        topics.ack("Site")
    for bad in (
        '{"v":1,"site":"s1","devices":{}}',  # nothing acknowledged
        '{"v":1,"site":"s1","devices":{"m1":[[5,4]]}}',  # last < first
        '{"v":1,"site":"s1","devices":{"m1":[[0,4],[4,9]]}}',  # overlapping
        '{"v":1,"site":"s1","devices":{"m1":[[3,4],[0,1]]}}',  # unsorted
        '{"v":1,"site":"s1","devices":{"m1":[[-1,4]]}}',  # negative seq
        '{"v":1,"site":"s1","devices":{"M1":[[0,4]]}}',  # not an id
        '{"v":1,"site":"s1","devices":{"m1":[[0,"4"]]}}',  # strict: one spelling
    ):
        with pytest.raises(ValueError):
            Ack.model_validate_json(bad)


def _signed_doc(seqs: list[int], **proof: str) -> dict[str, object]:
    p = {"kid": "56475aa75463474c", "first_prev": "A" * 43 + "=", "sig": "B" * 86 + "==", **proof}
    return {
        "site": "s1",
        "device": "d1",
        "kind": "meter",
        "readings": [{"seq": s, "ts": MIN_TS_MS + s, "values": {"energy_import": 1.0}} for s in seqs],
        "proof": p,
    }


def test_proof_is_optional_and_needs_consecutive_seqs() -> None:
    msg = TelemetryMessage.model_validate_json(json.dumps(_signed_doc([3, 4, 5])))
    assert msg.proof is not None and msg.proof.kid == "56475aa75463474c"
    doc = _signed_doc([3, 5])
    with pytest.raises(ValidationError, match="consecutive"):
        TelemetryMessage.model_validate_json(json.dumps(doc))
    del doc["proof"]  # unsigned messages may skip seqs (readings dropped at the edge)
    assert TelemetryMessage.model_validate_json(json.dumps(doc)).proof is None


@pytest.mark.parametrize("bad", [{"kid": "XYZ"}, {"first_prev": "A" * 42 + "=="}, {"sig": "B" * 43 + "="}])
def test_proof_fields_have_their_sizes(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        TelemetryMessage.model_validate_json(json.dumps(_signed_doc([1], **bad)))
