"""On the simulator's demo complex, estimated savings fall within their stated uncertainty of the
simulator's true savings: Option C on b1's main meter, Option B on b1's lighting sub-meter.

The baseline model is fitted on 2024 actual energy and predicts 2025; the truth is the sum of
counterfactual − actual over 2025 from ``epcwatch.sim.truth.daily_truth``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from epcwatch.savings.contract import load_contract
from epcwatch.savings.engine import daily_observations, run
from epcwatch.sim.truth import daily_truth
from tests.savings.conftest import REPO


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return daily_truth(dt.date(2024, 1, 1), dt.date(2025, 12, 31), seed=0)


@pytest.mark.parametrize(
    ("contract", "device"), [("contract.yaml", "b1-main"), ("contract-lighting.yaml", "b1-light")]
)
def test_estimated_savings_within_stated_uncertainty(truth, contract, device):
    c = load_contract(REPO / "demo" / "data" / contract)
    d = truth[truth["device"] == device].rename(
        columns={"actual_kwh": "energy", "temp_mean_c": "temperature"}
    )
    d = d.assign(date=pd.to_datetime(d["date"]))
    d["nonworking"] = np.array(c.calendar.nonworking([x.date() for x in d["date"]]), dtype=float)
    base, rep = d[d["date"] < "2025-01-01"], d[d["date"] >= "2025-01-01"]
    assert len(base) == 366 and len(rep) == 365
    out = run(daily_observations(base), daily_observations(rep), pd.DatetimeIndex(rep["date"]), [])
    true = float((rep["counterfactual_kwh"] - rep["energy"]).sum())
    s = out.summary
    assert true > 0  # the retrofit saved something
    assert abs(s.avoided_energy_use - true) <= s.uncertainty["90"], (
        s.avoided_energy_use,
        true,
        s.uncertainty,
    )
    assert out.baseline_fit.verdict.passed and s.fsu["68"] < 0.5
