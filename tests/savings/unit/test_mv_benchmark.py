"""A seeded small version of bench/mv_peer.py: epcwatch alone against known true savings.

Daily buildings with lagged heating/cooling, holidays, AR(1) noise (ρ up to 0.9) and missing
days. The 90 % band must contain the truth in most replicates (at least 18 of 24: a correct
90 % band fails this with probability 0.3 %), the 68 % band must not be so wide that it
almost always does (at most 22 of 24) nor so narrow that it mostly misses (at least 12 of 24),
and the savings must be close to the truth.
"""

from __future__ import annotations

import numpy as np
import pytest

from epcwatch.savings import synthetic
from epcwatch.savings.csvfit import fit_csv
from epcwatch.savings.engine import Period

BASE, REP = Period.parse("2023-01-01/2023-12-31"), Period.parse("2024-01-01/2024-12-31")
CASES = [
    {"rho": 0.0},
    {"rho": 0.5, "lag_hours": 24},
    {"rho": 0.9, "heating": 0.0, "lag_hours": 12, "climate_mean": 21},
]


#: about 15 s of CPU: the full check runs it, `scripts/check --fast` does not
pytestmark = pytest.mark.slow


def test_daily_savings_accuracy_and_band_coverage(tmp_path):
    errors, in68, in90 = [], [], []
    for i, kw in enumerate(CASES):
        for r in range(8):
            frame = synthetic.building(seed=50_000 + 100 * i + r, frequency="daily", noise_share=0.05, **kw)
            path = tmp_path / f"b{i}_{r}.csv"
            synthetic.to_csv(frame, str(path), daily_rows=True)
            rep = frame[frame["date"] >= "2024-01-01"]
            ok = rep["energy"].notna()
            truth = float((rep["counterfactual"] - rep["energy"])[ok].sum())
            s = fit_csv(path, BASE, REP, calendar="cn").summary
            err = s.avoided_energy_use - truth
            errors.append(err / truth)
            in68.append(abs(err) <= s.uncertainty["68"])
            in90.append(abs(err) <= s.uncertainty["90"])
    assert sum(in90) >= 18, (sum(in90), errors)
    assert 12 <= sum(in68) <= 22, (sum(in68), errors)  # a 68 % band: ~16 of 24, sd 2.3
    assert float(np.mean(np.abs(errors))) < 0.06, errors
    assert abs(float(np.mean(errors))) < 0.03, errors
