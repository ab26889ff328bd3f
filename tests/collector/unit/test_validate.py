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
