"""The verifier's report: every failure named by device, seq and time; the total adds up."""

from __future__ import annotations

from epcwatch.verify.audit import DeviceReport
from epcwatch.verify.cli import render_text, report_doc

T = 1_735_689_600_000


def test_report_names_each_failure_and_totals() -> None:
    good = DeviceReport("s1", "m1", verified=[0, 1, 2])
    bad = DeviceReport(
        "s1",
        "m2",
        verified=[0, 2],
        altered=[1],
        missing=[(3, 4)],
        invalid={5: "revoked key"},
        replayed=[(0, 1)],
    )
    times = {("s1", "m2"): {0: T, 1: T + 60_000, 2: T + 120_000, 5: T + 300_000}}
    doc = report_doc([good, bad], times, {("s1", "m1"): 7})
    assert doc["ok"] is False
    assert doc["total"] == {
        "verified": 5,
        "altered": 1,
        "missing": 2,
        "unsigned": 7,
        "invalid": 1,
        "replayed": 1,
    }
    m2 = doc["devices"][1]
    assert m2["altered"] == [{"seq": 1, "time": "2025-01-01T00:01:00Z"}]
    assert m2["invalid"] == [{"seq": 5, "time": "2025-01-01T00:05:00Z", "reason": "revoked key"}]
    text = render_text(doc).splitlines()
    assert text[0].startswith("s1/m1: ok  verified 3") and "unsigned 7" in text[0]
    assert "  altered after storage: seq 1 at 2025-01-01T00:01:00Z" in text
    assert "  missing: seq 3..4" in text and "  replayed: message seq 0..1" in text
    assert text[-1].startswith("total: FAIL  verified 5  altered 1  missing 2")


def test_unsigned_readings_alone_do_not_fail_the_report() -> None:
    doc = report_doc([DeviceReport("s1", "m1", unsigned=[0, 1])], {}, {})
    assert doc["ok"] is True and doc["total"]["unsigned"] == 2
