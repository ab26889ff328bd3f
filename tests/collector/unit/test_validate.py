from __future__ import annotations

import orjson
import pytest

from epcwatch.collector.validate import Reason, Rejection, validate
from epcwatch.wire import HealthMessage, StatusMessage, TelemetryMessage

TOPIC = "epc/v1/s1/d1/telemetry"


def doc(**over: object) -> bytes:
    d: dict[str, object] = {
        "site": "s1",
        "device": "d1",
        "kind": "meter",
        "readings": [{"seq": 1, "ts": 1_700_000_000_000, "values": {"active_power": 1.5}}],
    }
    d.update(over)
    return orjson.dumps(d)


def reason(topic: str, payload: bytes, **kw: int) -> Reason:
    r = validate(topic, payload, **kw)
    assert isinstance(r, Rejection), r
    assert str(r).startswith(r.reason.value + ": ") and len(r.detail) > 0
    return r.reason


def test_valid_telemetry() -> None:
    assert isinstance(validate(TOPIC, doc()), TelemetryMessage)


@pytest.mark.parametrize(
    ("topic", "payload", "expected"),
    [
        (TOPIC, b"\xff\xfe{}", Reason.NOT_UTF8),
        (TOPIC, b"{not json", Reason.INVALID_JSON),
        (TOPIC, b"", Reason.INVALID_JSON),
        (TOPIC, doc(kind="toaster"), Reason.SCHEMA),
        (TOPIC, doc(readings=[]), Reason.SCHEMA),
        (TOPIC, doc(readings=[{"seq": 1, "ts": 1_700_000_000_000, "values": {"bogus": 1}}]), Reason.SCHEMA),
        (
            TOPIC,
            doc(readings=[{"seq": 1, "ts": 1_700_000_000_000, "values": {"active_power": 1e300}}]),
            Reason.SCHEMA,
        ),
        (
            TOPIC,
            doc(readings=[{"seq": 1, "ts": 1_700_000_000_000, "values": {"run_status": 1.5}}]),
            Reason.SCHEMA,
        ),
        (TOPIC, doc(site="s2"), Reason.TOPIC_MISMATCH),
        (TOPIC, doc(device="d2"), Reason.TOPIC_MISMATCH),
        (TOPIC, doc(tags={"building": "b\\"}), Reason.UNWRITABLE),
        ("epc/v1/s1/d1/other", doc(), Reason.BAD_TOPIC),
        ("epc/v1/S1/d1/telemetry", doc(), Reason.BAD_TOPIC),
    ],
)
def test_rejections(topic: str, payload: bytes, expected: Reason) -> None:
    assert reason(topic, payload) is expected


def test_oversized_checked_before_parsing() -> None:
    assert reason(TOPIC, b"\xff" * 5000, max_bytes=4096) is Reason.OVERSIZED


def test_schema_detail_names_the_field() -> None:
    r = validate(TOPIC, doc(readings=[{"seq": "x", "ts": 1_700_000_000_000, "values": {"active_power": 1}}]))
    assert isinstance(r, Rejection) and "readings.0.seq" in r.detail


def test_health_and_status() -> None:
    h = orjson.dumps(
        {
            "site": "s1",
            "ts": 1_700_000_000_000,
            "agent": "a",
            "uptime_s": 1,
            "outbox_depth": 0,
            "outbox_bytes": 0,
            "connected": True,
        }
    )
    assert isinstance(validate("epc/v1/s1/health", h), HealthMessage)
    assert reason("epc/v1/s2/health", h) is Reason.TOPIC_MISMATCH
    s = orjson.dumps({"site": "s1", "state": "offline"})
    assert isinstance(validate("epc/v1/s1/status", s), StatusMessage)


def test_unknown_item_code_is_rejected_with_the_known_codes() -> None:
    r = validate(TOPIC, doc(tags={"item_code": "01A40"}))
    assert isinstance(r, Rejection) and r.reason is Reason.ITEM_CODE
    assert str(r) == (
        "item_code: tags.item_code: '01A40' is not a national item code "
        "(known: 01000, 01A00, 01A10, 01A20, 01A30, 01B00, 01B10, 01B20, 01C00, 01C10, 01C20, 01C30, 01D00)"
    )
    # the shape is the wire's business, the table the collector's
    assert reason(TOPIC, doc(tags={"item_code": "lighting"})) is Reason.SCHEMA


def test_item_code_contradicting_its_category_is_rejected() -> None:
    r = validate(TOPIC, doc(tags={"item_code": "01B10", "category": "A"}))
    assert isinstance(r, Rejection) and r.reason is Reason.ITEM_CODE
    assert (
        "category 'A' contradicts item code 01B10 (01B00 空调用电 Air conditioning, category B)" in r.detail
    )


def test_known_item_codes_pass_and_give_their_category() -> None:
    from epcwatch.collector.lineprotocol import telemetry_lines

    msg = validate(TOPIC, doc(tags={"item_code": "01C20", "building": "b1"}))
    assert isinstance(msg, TelemetryMessage)
    assert telemetry_lines(msg) == [
        "meter,building=b1,category=C,device=d1,item_code=01C20,site=s1 active_power=1.5 1700000000000"
    ]
    water = validate(TOPIC, doc(tags={"item_code": "02000"}))
    assert isinstance(water, TelemetryMessage)
    assert telemetry_lines(water)[0].startswith("meter,device=d1,item_code=02000,site=s1 ")


def test_category_letter_alone_is_its_level_one_code() -> None:
    from epcwatch.collector.lineprotocol import telemetry_lines

    msg = validate(TOPIC, doc(tags={"category": "B"}))
    assert isinstance(msg, TelemetryMessage)
    assert telemetry_lines(msg)[0].startswith("meter,category=B,device=d1,item_code=01B00,site=s1 ")
