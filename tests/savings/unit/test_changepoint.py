"""Change-point fits against an independent brute-force grid search, and model persistence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from epcwatch.savings.changepoint import fit
from epcwatch.savings.models import FittedModel, Frequency, Observations


def _data(seed: int, n: int = 120) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.0, 32.0, n)
    h, c = rng.uniform(10, 16), rng.uniform(19, 25)
    y = 500 + rng.uniform(10, 40) * np.maximum(h - t, 0) + rng.uniform(10, 40) * np.maximum(t - c, 0)
    return t, y + rng.normal(0, 15, n)


def _bounds(t: np.ndarray) -> tuple[float, float]:
    s = np.sort(t)
    k = max(3, math.ceil(0.05 * len(t)))  # k periods strictly on each side of a change point
    return float(s[k]), float(s[len(t) - k - 1])


def _brute(kind: str, t: np.ndarray, y: np.ndarray, step: float) -> tuple[float, tuple[float, ...]]:
    """Plain loops and np.linalg.lstsq over every grid point: no shared code with the fitter."""
    lo, hi = _bounds(t)
    grid = np.arange(lo, hi + 1e-9, step)
    best = (np.inf, ())

    def sse(cols: list[np.ndarray]) -> float:
        x = np.column_stack(cols)
        beta = np.linalg.lstsq(x, y, rcond=None)[0]
        # slope signs are constrained: heating/cooling slopes ≥ 0, a 4P curve convex
        if (kind == "4p" and beta[1] + beta[2] <= 0) or (kind != "4p" and np.any(beta[1:] < 0)):
            return np.inf
        r = y - x @ beta
        return float(r @ r)

    one = np.ones_like(t)
    if kind == "5p":
        for a in grid:
            for b in grid[grid >= a]:
                s = sse([one, np.maximum(a - t, 0), np.maximum(t - b, 0)])
                if s < best[0]:
                    best = (s, (a, b))
        return best
    for c in grid:
        cols = {
            "3pc": [one, np.maximum(t - c, 0)],
            "3ph": [one, np.maximum(c - t, 0)],
            "4p": [one, np.maximum(c - t, 0), np.maximum(t - c, 0)],
        }[kind]
        s = sse(cols)
        if s < best[0]:
            best = (s, (c,))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["3pc", "3ph", "4p", "5p"])
def test_matches_brute_force_grid(kind, seed):
    t, y = _data(seed)
    obs = Observations(energy=y, temp=t, frequency=Frequency.DAILY)
    model, sse = fit(kind, obs)
    b_sse, b_cps = _brute(kind, t, y, 0.1 if kind == "5p" else 0.01)
    # as good as the fine brute-force grid (both resolve change points to 0.01 °C, on different
    # lattices, hence the 1e-5 slack) and not materially better: the same optimum
    assert sse <= b_sse * (1 + 1e-5)
    assert sse >= b_sse * (1 - 2e-3)
    assert list(model.nonlinear.values()) == pytest.approx(list(b_cps), abs=0.25)
    r = y - model.predict(obs)
    assert float(r @ r) == pytest.approx(sse, rel=1e-9)


def test_recovers_known_5p_parameters():
    rng = np.random.default_rng(7)
    t = rng.uniform(-2, 34, 365)
    y = 800 + 25 * np.maximum(13.0 - t, 0) + 45 * np.maximum(t - 23.0, 0) + rng.normal(0, 5, 365)
    model, _ = fit("5p", Observations(energy=y, temp=t, frequency=Frequency.DAILY))
    p = model.parameters()
    assert p["heating_change_point"] == pytest.approx(13.0, abs=0.3)
    assert p["cooling_change_point"] == pytest.approx(23.0, abs=0.3)
    assert p["heating_slope"] == pytest.approx(25, rel=0.05)
    assert p["cooling_slope"] == pytest.approx(45, rel=0.05)
    assert p["intercept"] == pytest.approx(800, rel=0.01)


def test_monthly_periods_scale_with_days():
    """A per-day model predicts period totals proportional to the period length."""
    days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=float)
    temp = np.array([6, 8, 12, 17, 22, 24, 26, 26, 22, 17, 12, 7], dtype=float)
    per_day = 1000 + 40 * np.maximum(temp - 20, 0) + 30 * np.maximum(14 - temp, 0)
    obs = Observations(energy=per_day * days, temp=temp, frequency=Frequency.MONTHLY, days=days)
    model, sse = fit("5p", obs)
    assert sse / float(((obs.energy - obs.energy.mean()) ** 2).sum()) < 1e-6
    assert model.predict(obs) == pytest.approx(per_day * days, rel=1e-4)


@pytest.mark.parametrize("kind", ["mean", "2p", "3pc", "3ph", "4p", "5p"])
def test_saved_model_round_trip(kind):
    t, y = _data(3, 200)
    nw = (np.arange(200) % 7 >= 5).astype(float)
    obs = Observations(energy=y, temp=t, frequency=Frequency.DAILY, nonworking=nw)
    model, _ = fit(kind, obs, day_type=True)
    again = FittedModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model
    assert np.array_equal(again.predict(obs), model.predict(obs))


@pytest.mark.parametrize("kind", ["3pc", "3ph", "4p", "5p"])
@pytest.mark.parametrize("monthly", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_grid_normal_equations_match_the_designs(kind, monthly, seed):
    """The search's prefix-sum normal equations give the SSE and β of design()'s own matrix,
    solved by lstsq, for every candidate: shift, split slopes, a variable, fractional
    non-working shares and unequal period lengths included."""
    from epcwatch.savings.changepoint import NONLINEAR, _Hinges, design

    rng = np.random.default_rng(seed)
    n = 40 if monthly else 150
    t = np.round(rng.uniform(-5.0, 33.0, n), 1)  # ties, as rounded readings have
    days = rng.integers(28, 32, n).astype(float) if monthly else np.ones(n)
    nw = rng.uniform(0.2, 0.4, n) if monthly else (rng.uniform(size=n) < 0.3).astype(float)
    occ = rng.uniform(0.5, 1.0, n)
    y = days * (300 + 9 * np.maximum(14 - t, 0) + 12 * np.maximum(t - 22, 0) - 80 * nw + 50 * occ)
    y = y + rng.normal(0, 20, n) * days
    obs = Observations(
        energy=y,
        temp=t,
        frequency=Frequency.MONTHLY if monthly else Frequency.DAILY,
        days=days,
        nonworking=nw,
        extra=occ[:, None],
        extra_names=("occupancy",),
    )
    extra = {"split": True, "variables": ["occupancy"]}
    hinges = _Hinges(kind=kind, temp=t, obs=obs, y=y, split=True, day_type=True, variables=["occupancy"])
    names = NONLINEAR[kind]
    lo, hi = np.quantile(t, [0.1, 0.9])
    cands = np.sort(rng.uniform(lo, hi, (25, len(names))), axis=1)
    cands[0, :] = t[5]  # a change point exactly on a period's temperature
    sse, beta = hinges.sse(cands)
    for i, c in enumerate(cands):
        x, _ = design(kind, obs, dict(zip(names, c, strict=True)), True, extra)
        b = np.linalg.lstsq(x, y, rcond=None)[0]
        r = y - x @ b
        assert sse[i] == pytest.approx(float(r @ r), rel=1e-7, abs=1e-6 * float(y @ y) * 1e-9)
        np.testing.assert_allclose(beta[i], b, rtol=1e-6, atol=1e-6 * float(np.abs(b).max()))
