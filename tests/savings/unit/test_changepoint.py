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
