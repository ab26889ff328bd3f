"""G14 statistics, t-statistics and savings uncertainty against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sstats

from epcwatch.savings.models import Frequency
from epcwatch.savings.stats import (
    coefficient_table,
    effective_n,
    fit_stats,
    fractional_savings_uncertainty,
    g14_verdict,
    lag1_autocorrelation,
    savings_uncertainty,
)


def test_statistics_by_hand():
    y = np.array([10.0, 12, 14, 13, 16])
    yhat = np.array([10.0, 11, 13, 13, 15])  # residuals 0, 1, 1, 0, 1
    st = fit_stats(y, yhat, p=2)
    # ȳ = 13, SSE = 3, Σr = 3, n − p = 3, SST = 9 + 1 + 1 + 0 + 9 = 20
    assert st.cvrmse == pytest.approx(100 * math.sqrt(3 / 3) / 13)
    assert st.nmbe == pytest.approx(100 * 3 / (3 * 13))
    assert st.r2 == pytest.approx(1 - 3 / 20)
    assert st.adj_r2 == pytest.approx(1 - (3 / 20) * 4 / 3)
    assert st.rmse == pytest.approx(1.0)
    # residuals − mean 0.6: (−.6, .4, .4, −.6, .4); Σ dₜdₜ₋₁ = −.24 + .16 − .24 − .24 = −.56; Σd² = 1.2
    assert st.autocorrelation == pytest.approx(-0.56 / 1.2)
    assert st.n_effective == 5  # negative ρ: no correction


def test_unbiased_example_and_verdict():
    y = np.array([10.0, 12, 14, 13, 16])
    st = fit_stats(y, np.array([11.0, 12, 13, 14, 15]), p=2)  # residuals −1, 0, 1, −1, 1
    assert st.nmbe == pytest.approx(0.0)
    assert st.cvrmse == pytest.approx(100 * math.sqrt(4 / 3) / 13)
    assert g14_verdict(st, Frequency.MONTHLY).passed
    assert not g14_verdict(fit_stats(y, y * 0.8, p=2), Frequency.MONTHLY).passed


def test_effective_n():
    assert effective_n(365, 0.5) == pytest.approx(365 * 0.5 / 1.5)
    assert effective_n(100, -0.2) == 100
    assert lag1_autocorrelation(np.array([1.0, 1.0, 1.0])) == 0.0


def test_t_statistics_match_scipy_linregress():
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 30, 50)
    y = 3 + 2.5 * x + rng.normal(0, 4, 50)
    reg = sstats.linregress(x, y)
    design = np.column_stack([np.ones(50), x])
    beta = np.array([reg.intercept, reg.slope])
    tab = coefficient_table(design, y, beta, ["intercept", "slope"], p_total=2)
    assert tab[1].std_error == pytest.approx(reg.stderr, rel=1e-9)
    assert tab[0].std_error == pytest.approx(reg.intercept_stderr, rel=1e-9)
    assert tab[1].t == pytest.approx(reg.slope / reg.stderr, rel=1e-9)
    assert tab[1].p_value == pytest.approx(reg.pvalue, rel=1e-6)


def test_fractional_savings_uncertainty_by_hand():
    # CV 10 %, n = 365 days, ρ = 0.5 → n′ = 121.67; m = 365; F = 15 %; p = 6; 90 %
    n, rho, m, f, p = 365, 0.5, 365, 0.15, 6
    n_eff = n * (1 - rho) / (1 + rho)
    t = sstats.t.ppf(0.95, n_eff - p)
    by_hand = t * 1.26 * 0.10 * math.sqrt((n / n_eff) * (1 + 2 / n_eff) * (1 / m)) / f
    assert by_hand == pytest.approx(0.1273, abs=5e-4)  # the arithmetic written out in the docs
    got = fractional_savings_uncertainty(
        cvrmse_pct=10.0, n=n, n_eff=n_eff, p=p, m=m, fraction=f, confidence=0.90
    )
    assert got == pytest.approx(by_hand, rel=1e-12)
    # absolute uncertainty = FSU × savings = FSU × F × baseline
    u = savings_uncertainty(
        cvrmse_pct=10.0, n=n, n_eff=n_eff, p=p, m=m, baseline_total=1000.0, confidence=0.90
    )
    assert u == pytest.approx(by_hand * f * 1000.0, rel=1e-12)
    # more confidence, more uncertainty; more reporting periods, less
    lo = fractional_savings_uncertainty(
        cvrmse_pct=10.0, n=n, n_eff=n_eff, p=p, m=m, fraction=f, confidence=0.68
    )
    more_m = fractional_savings_uncertainty(
        cvrmse_pct=10.0, n=n, n_eff=n_eff, p=p, m=4 * m, fraction=f, confidence=0.90
    )
    assert lo < got and more_m == pytest.approx(got / 2, rel=1e-9)
