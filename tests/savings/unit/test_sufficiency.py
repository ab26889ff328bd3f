"""Data sufficiency warnings: qualified names, data, and refusal of disqualified baselines."""

from __future__ import annotations

import numpy as np
import pytest

from epcwatch.savings.sufficiency import InsufficientDataError, check_days, disqualified, require


def _year(valid_share: float = 1.0, start: str = "2024-01-01", days: int = 366, seed: int = 0):
    dates = np.arange(np.datetime64(start), np.datetime64(start) + days)
    energy = np.full(days, 1000.0) + np.random.default_rng(seed).normal(0, 20, days)
    temp = np.full(days, 15.0)
    n_bad = round(days * (1 - valid_share))
    energy[:n_bad] = np.nan
    return dates, energy, temp


def _check(dates, energy, temp, start="2024-01-01", end="2024-12-31", period="baseline"):
    return check_days(
        dates=dates,
        energy=energy,
        temp=temp,
        start=np.datetime64(start),
        end=np.datetime64(end),
        period=period,
    )


def names(ws):
    return {w.qualified_name for w in ws}


def test_complete_year_is_sufficient():
    ws = _check(*_year())
    assert not disqualified(ws)
    assert names(ws) == set()


def test_short_baseline_is_disqualified():
    d, e, t = _year(days=300)
    ws = _check(d, e, t, end="2024-10-26")
    assert "epcwatch.sufficiency.baseline_too_short" in names(ws)
    w = next(w for w in ws if w.qualified_name.endswith("too_short"))
    assert w.disqualifying and w.data == {"days": 300, "required": 365}
    with pytest.raises(InsufficientDataError, match="365"):
        require(ws, override=False)
    require(ws, override=True)  # an explicit override passes


def test_too_few_valid_days():
    ws = _check(*_year(valid_share=0.85))
    w = next(w for w in ws if w.qualified_name == "epcwatch.sufficiency.too_few_valid_days")
    assert w.disqualifying
    assert w.data["valid_days"] == 366 - round(366 * 0.15)
    assert w.data["days_without_energy"] == round(366 * 0.15)
    assert w.data["days_without_temperature"] == 0
    # the gap sits in January and February: monthly coverage names them
    monthly = next(w for w in ws if w.qualified_name.endswith("low_monthly_coverage"))
    assert set(monthly.data["months"]) == {"2024-01", "2024-02"}
    assert not monthly.disqualifying


def test_month_gap_alone_is_a_warning_not_a_disqualification():
    d, e, t = _year()
    t[(d >= np.datetime64("2024-06-01")) & (d < np.datetime64("2024-06-11"))] = np.nan  # 10 days
    ws = _check(d, e, t)
    assert not disqualified(ws)
    assert next(w for w in ws if w.qualified_name.endswith("low_monthly_coverage")).data == {
        "months": {"2024-06": round(20 / 30, 4)}
    }


def test_negative_and_extreme_energy():
    d, e, t = _year()
    e[10] = -5.0
    e[20] = 50_000.0
    ws = names(_check(d, e, t))
    assert "epcwatch.sufficiency.baseline_negative_energy" in ws
    assert "epcwatch.sufficiency.baseline_extreme_energy" in ws


def test_reporting_gaps_are_not_disqualifying():
    d, e, t = _year(valid_share=0.5, start="2025-01-01", days=365)
    ws = _check(d, e, t, start="2025-01-01", end="2025-12-31", period="reporting")
    assert "epcwatch.sufficiency.reporting_gaps" in names(ws)
    assert not disqualified(ws)
