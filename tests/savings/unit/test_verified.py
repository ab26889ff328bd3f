"""The verified share of a contract's energy, and how the M&V report states it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.clock import ManualClock
from epcwatch.savings.contract import load_contract
from epcwatch.savings.report import share_text
from epcwatch.savings.runner import run_contract
from epcwatch.savings.verified import DeviceAudit, DeviceDay, PeriodShare, VerifiedShare, period_share
from tests.savings.unit.test_runner import FakeSource

D1, D2 = date(2025, 6, 1), date(2025, 6, 2)


def test_a_day_counts_when_every_reading_at_and_between_its_edges_verifies() -> None:
    days = [
        DeviceDay("m1", D1, 100.0, 0, 24),
        DeviceDay("m1", D2, 50.0, 24, 48),
        DeviceDay("m2", D1, 30.0),  # unsigned site: no seq link
    ]
    audits = {"m1": DeviceAudit(frozenset(range(49)) - {30}, {30: "altered after storage"})}
    p = period_share("reporting", days, audits)
    assert p.kwh == 180.0 and p.kwh_verified == 100.0
    assert [(i.day, i.device, i.why) for i in p.issues] == [
        (D1, "m2", "unsigned readings"),
        (D2, "m1", "altered after storage (seq 30)"),
    ]


@given(st.lists(st.tuples(st.floats(0, 1e4), st.booleans()), max_size=20))
def test_verified_kwh_is_the_sum_over_verified_days(rows: list[tuple[float, bool]]) -> None:
    days = [DeviceDay("m", date(2025, 1, 1 + i), kwh, 2 * i, 2 * i + 1) for i, (kwh, _) in enumerate(rows)]
    ok = frozenset(s for i, (_, good) in enumerate(rows) if good for s in (2 * i, 2 * i + 1))
    p = period_share("reporting", days, {"m": DeviceAudit(ok)})
    assert p.kwh_verified == pytest.approx(sum(k for k, good in rows if good))
    assert len(p.issues) == sum(1 for _, good in rows if not good)
    assert p.share is None or 0 <= p.share <= 1


def test_share_text_never_rounds_up_to_a_whole_verification() -> None:
    assert share_text(1.0) == "100 %"
    assert share_text(0.9996) == "99.9 %"
    assert share_text(0.5) == "50 %"
    assert share_text(None) == "–"


def test_report_states_the_share_and_marks_a_report_below_the_minimum(world, contract_file, tmp_path) -> None:
    path = contract_file("contract.yaml")
    c = load_contract(path).model_copy(update={"min_verified_share": 0.99})
    full = PeriodShare("baseline", 1000.0, 1000.0, [])
    cases = {
        "ok": VerifiedShare(full, PeriodShare("reporting", 800.0, 800.0, []), 0.99),
        "low": VerifiedShare(
            full,
            period_share(
                "reporting",
                [DeviceDay("m1", D1, 800.0, 0, 1)],
                {"m1": DeviceAudit(frozenset({0}), {1: "missing"})},
            ),
            0.99,
        ),
    }
    html = {}
    for name, ev in cases.items():
        res = run_contract(
            c,
            FakeSource(world["daily"].copy()),
            tmp_path / name,
            contract_path=path,
            write_back=False,
            clock=ManualClock(datetime(2026, 1, 5, tzinfo=UTC).timestamp()),
            verified=ev,
        )
        html[name] = (tmp_path / name / "report.html").read_text()
        assert res.doc["verified_readings"]["verifiable"] is (name == "ok")
    assert "100 % of reporting-period kWh verified" in html["ok"] and "Not verifiable" not in html["ok"]
    assert "0 % of reporting-period kWh verified" in html["low"] and "Not verifiable" in html["low"]
    assert "missing (seq 1)" in html["low"]
