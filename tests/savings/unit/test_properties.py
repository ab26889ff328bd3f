"""Laws of the statistics and savings arithmetic, checked with hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcwatch.savings.changepoint import fit
from epcwatch.savings.models import Frequency, Observations
from epcwatch.savings.savings import avoided_energy
from epcwatch.savings.stats import fit_stats

values = st.lists(st.floats(10, 1000), min_size=8, max_size=40)


@given(values, st.floats(0.01, 100), st.integers(0, 2**32 - 1))
def test_cvrmse_and_nmbe_are_scale_free(y, scale, seed):
    y = np.array(y)
    yhat = y + np.random.default_rng(seed).normal(0, 5, len(y))
    a = fit_stats(y, yhat, p=2)
    b = fit_stats(y * scale, yhat * scale, p=2)
    assert b.cvrmse == pytest.approx(a.cvrmse, rel=1e-9)
    assert b.nmbe == pytest.approx(a.nmbe, rel=1e-9, abs=1e-9)
    assert b.r2 == pytest.approx(a.r2, rel=1e-9, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(-500, 500))
def test_adding_a_constant_load_moves_only_the_intercept(seed, shift):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 30, 80)
    y = 600 + 20 * np.maximum(t - 21, 0) + rng.normal(0, 10, 80)
    m1, s1 = fit("3pc", Observations(energy=y, temp=t, frequency=Frequency.DAILY))
    m2, s2 = fit("3pc", Observations(energy=y + shift, temp=t, frequency=Frequency.DAILY))
    assert s2 == pytest.approx(s1, rel=1e-6, abs=1e-6)
    assert m2.coefficients["intercept"] == pytest.approx(m1.coefficients["intercept"] + shift, abs=1e-6)
    assert m2.nonlinear == m1.nonlinear


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(0.0, 0.5))
def test_daily_savings_add_up_to_the_total(seed, missing):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 30, 120)
    y = 600 + 20 * np.maximum(t - 21, 0) + rng.normal(0, 10, 120)
    base = Observations(energy=y, temp=t, frequency=Frequency.DAILY)
    model, _ = fit("3pc", base)
    st_ = fit_stats(y, model.predict(base), model.n_params)
    rep_e = 0.9 * y
    rep_e[rng.uniform(size=120) < missing] = np.nan
    series, summary = avoided_energy(
        model, st_, Observations(energy=rep_e, temp=t, frequency=Frequency.DAILY)
    )
    ok = np.isfinite(series.savings)
    assert summary.periods == int(ok.sum())
    assert float(series.savings[ok].sum()) == pytest.approx(summary.avoided_energy_use, rel=1e-9, abs=1e-9)
    if ok.any():
        assert series.cumulative[-1] == pytest.approx(summary.avoided_energy_use, rel=1e-9, abs=1e-9)
