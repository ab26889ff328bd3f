"""The fit path's own Student t and lag filter (epcwatch.savings.numerics) against scipy, whose
import they replace, and against the closed forms that exist (ν = 1 Cauchy, ν = 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal, stats

from epcwatch.savings.models import LAG_HOURS
from epcwatch.savings.numerics import first_order_lag, t_ppf, t_sf, t_two_sided_p

dofs = st.one_of(st.floats(0.5, 50.0), st.floats(50.0, 1e5), st.sampled_from([1.0, 2.0, 360.0, 8604.0]))
ts = st.floats(-1e4, 1e4, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(ts, dofs)
def test_tails_match_scipy(t: float, dof: float) -> None:
    ref = float(stats.t.sf(t, dof))
    assert t_sf(t, dof) == pytest.approx(ref, rel=1e-9, abs=1e-300)
    assert float(t_two_sided_p(np.array([t]), dof)[0]) == pytest.approx(
        2 * float(stats.t.sf(abs(t), dof)), rel=1e-9
    )


@settings(max_examples=300, deadline=None)
@given(st.floats(1e-6, 1 - 1e-6), dofs)
def test_quantiles_match_scipy_and_invert_the_tail(q: float, dof: float) -> None:
    t = t_ppf(q, dof)
    assert t == pytest.approx(float(stats.t.ppf(q, dof)), rel=1e-9, abs=1e-12)
    assert 1.0 - t_sf(t, dof) == pytest.approx(q, rel=1e-9, abs=1e-15)


def test_closed_forms() -> None:
    # ν = 1 is Cauchy, ν = 2 has F(t) = ½ + t/(2√(2 + t²)); scipy itself is off by 3e-9 at t = 1e-8, ν = 1
    for t in (1e-8, 1e-3, 0.5, 1.0, 3.0, 50.0, 1e6):
        assert t_sf(t, 1.0) == pytest.approx(0.5 - math.atan(t) / math.pi, rel=1e-13)
        assert t_sf(t, 2.0) == pytest.approx(0.5 - t / (2 * math.sqrt(2 + t * t)), rel=1e-12)
    for q in (0.6, 0.84, 0.95, 0.975, 0.995):
        assert t_ppf(q, 1.0) == pytest.approx(math.tan(math.pi * (q - 0.5)), rel=1e-13)
        assert t_ppf(q, 2.0) == pytest.approx((2 * q - 1) * math.sqrt(2 / (4 * q * (1 - q))), rel=1e-13)


def test_edges_of_the_tail() -> None:
    p = t_two_sided_p(np.array([0.0, np.inf, -np.inf, np.nan]), 10.0)
    assert p[0] == 1.0 and p[1] == 0.0 and p[2] == 0.0 and math.isnan(p[3])
    assert t_ppf(0.5, 7.0) == 0.0
    assert math.isinf(t_ppf(1.0, 7.0))
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_ppf(0.9, 0.0)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_two_sided_p(np.array([1.0]), -1.0)


def test_vectorised_tails_match_the_scalar_ones() -> None:
    t = np.random.default_rng(0).standard_cauchy(500) * 3  # > 8 values: the vectorised fraction
    for dof in (1.5, 30.0, 8604.0):
        vec = t_two_sided_p(t, dof)
        assert np.allclose(vec, [2 * t_sf(abs(v), dof) for v in t], rtol=1e-12, atol=1e-300)
        assert np.allclose(vec, 2 * stats.t.sf(np.abs(t), dof), rtol=1e-9, atol=1e-300)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(LAG_HOURS))
def test_lag_filter_is_lfilter_bit_for_bit(seed: int, tau: float) -> None:
    x = np.random.default_rng(seed).normal(size=2000).cumsum()
    a = 1.0 - np.exp(-1.0 / tau)
    assert np.array_equal(first_order_lag(x, a), signal.lfilter([a], [1.0, -(1.0 - a)], x))


@pytest.mark.parametrize("deficient", [False, True])
def test_towt_normal_equations_give_the_minimum_norm_solution(deficient):
    """towt.solve: the least-squares solution and the design's rank, full rank or not (a
    column repeated, as an hour of the week never seen leaves an empty indicator)."""
    from epcwatch.savings.towt import solve

    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 12))
    if deficient:
        x[:, 7] = x[:, 2]
    y = x @ rng.normal(size=12) + rng.normal(0, 0.1, 400)
    beta, rank = solve(x.T @ x, x.T @ y)
    assert rank == (11 if deficient else 12)
    np.testing.assert_allclose(beta, np.linalg.pinv(x) @ y, rtol=1e-8, atol=1e-10)
