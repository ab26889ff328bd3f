"""Out-of-sample evidence in the JSON/HTML report, and a contract reusing its frozen baseline."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from epcwatch.clock import ManualClock
from epcwatch.savings import synthetic
from epcwatch.savings.contract import load_contract
from epcwatch.savings.csvfit import fit_csv
from epcwatch.savings.engine import Period
from epcwatch.savings.runner import run_contract


class FakeSource:
    """Daily energy and temperature from one frame; nothing written anywhere."""

    def __init__(self, daily: pd.DataFrame) -> None:
        self.daily = daily

    def daily_energy(self, site, meters, start, end, tz) -> pd.DataFrame:
        d = self.daily[
            (self.daily["date"] >= pd.Timestamp(start)) & (self.daily["date"] <= pd.Timestamp(end))
        ]
        out = d[["date", "energy"]].reset_index(drop=True)
        out.attrs["source"] = "fake"
        return out

    def daily_temperature(self, site, weather, start, end, tz) -> pd.DataFrame:
        return self.daily[["date", "temperature"]]

    def write_lines(self, lines: list[str]) -> None:
        pass


def test_blocked_cv_temperature_range_and_placebo(tmp_path):
    # two pre-retrofit years: 2022 (placebo training year) and the 2023 baseline
    frame = synthetic.building(seed=21, frequency="daily", rho=0.3, start="2022-01-01")
    path = tmp_path / "d.csv"
    synthetic.to_csv(frame, str(path), daily_rows=True)
    o = fit_csv(
        path, Period.parse("2023-01-01/2023-12-31"), Period.parse("2024-01-01/2024-12-31"), calendar="cn"
    )
    ev = o.to_dict()["evidence"]
    cv = ev["blocked_cv"]
    assert cv["folds"] == 12 and len(cv["per_month_nmbe"]) == 12
    # out of sample is worse than in sample, never better by construction
    assert cv["cvrmse"] > o.baseline_fit.stats.cvrmse
    assert abs(cv["nmbe"]) < 5
    assert 0 <= ev["temperature_range"]["share_outside"] < 0.2
    pl = ev["placebo"]
    assert pl["available"] is True
    assert abs(pl["fraction"]) < 0.03  # no retrofit between the two years: savings ≈ 0
    assert pl["uncertainty_90"] > 0


def test_report_exports_its_baseline_and_a_contract_reuses_it(world, contract_file, tmp_path):
    path = contract_file("contract.yaml")
    clock = ManualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp())
    first = run_contract(
        load_contract(path), FakeSource(world["daily"]), tmp_path / "a", contract_path=path, clock=clock
    )
    exported = tmp_path / "a" / "baseline.json"
    assert exported.exists()
    assert first.doc["frozen_baseline"]["loaded"] is False
    assert first.doc["evidence"]["blocked_cv"]["folds"] == 12
    html = (tmp_path / "a" / "report.html").read_text()
    assert "Evidence (out of sample)" in html and first.doc["frozen_baseline"]["sha256"][:16] in html
    # the signed-off baseline named in the contract; a meter re-read later edits one baseline day
    frozen_path = tmp_path / "frozen-contract.yaml"
    frozen_path.write_text(path.read_text() + f"\nfrozen_baseline: {exported}\n")
    daily = world["daily"].copy()
    daily.loc[daily["date"] == "2024-05-20", "energy"] += 500.0
    second = run_contract(
        load_contract(frozen_path), FakeSource(daily), tmp_path / "b", contract_path=frozen_path, clock=clock
    )
    fz = second.doc["frozen_baseline"]
    assert fz["loaded"] is True
    assert fz["data_changes"]["count"] == 1
    assert fz["data_changes"]["changes"][0]["period"].startswith("2024-05-20")
    assert fz["data_changes"]["changes"][0]["difference"] == pytest.approx(500.0, abs=1e-3)
    s1, s2 = first.outcome.summary, second.outcome.summary
    assert s2.avoided_energy_use == pytest.approx(s1.avoided_energy_use, rel=1e-9)
    assert np.isclose(s2.uncertainty["90"], s1.uncertainty["90"], rtol=1e-9)
