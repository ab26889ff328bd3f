"""Each defect an independent M&V review found, reproduced: these tests fail on the old engine."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from epcwatch.savings import degreeday
from epcwatch.savings.changepoint import fit as cp_fit
from epcwatch.savings.changepoint import search_bounds
from epcwatch.savings.csvdata import read_csv
from epcwatch.savings.engine import hourly_to_daily, monthly_observations, run
from epcwatch.savings.errors import DataError
from epcwatch.savings.models import Frequency, ModelError, Observations
from epcwatch.savings.savings import avoided_energy, guarantee
from epcwatch.savings.selection import evaluate, select
from epcwatch.savings.stats import (
    DegreesOfFreedomError,
    fit_stats,
    savings_uncertainty,
    t_quantile,
    uncertainty_model,
)


def _daily(seed: int = 0, n: int = 365, rho: float = 0.0) -> Observations:
    rng = np.random.default_rng(seed)
    doy = np.arange(n)
    t = 16 + 10 * np.sin(2 * np.pi * (doy - 105) / 365) + rng.normal(0, 2, n)
    e = np.zeros(n)
    eps = rng.normal(0, 20, n)
    for i in range(n):
        e[i] = (rho * e[i - 1] if i else 0.0) + eps[i]
    y = 500 + 15 * np.maximum(14 - t, 0) + 25 * np.maximum(t - 22, 0) + e
    return Observations(energy=y, temp=t, frequency=Frequency.DAILY)


def test_negative_baseline_days_are_treated_as_missing():
    obs = _daily()
    bad = obs.energy.copy()
    bad[[10, 50, 100, 200, 300]] = -5000.0
    missing = obs.energy.copy()
    missing[[10, 50, 100, 200, 300]] = np.nan
    a = select(Observations(energy=bad, temp=obs.temp, frequency=Frequency.DAILY), "5p")
    b = select(Observations(energy=missing, temp=obs.temp, frequency=Frequency.DAILY), "5p")
    assert a.chosen.stats.n == b.chosen.stats.n == 360
    assert a.chosen.stats.cvrmse == pytest.approx(b.chosen.stats.cvrmse)


def test_cvrmse_uses_the_magnitude_of_the_mean():
    y = -np.array([100.0, 120, 90, 110, 105, 95])  # a net-export site
    yhat = y + np.array([30.0, -30, 25, -25, 20, -20])
    st = fit_stats(y, yhat, p=2)
    assert st.cvrmse > 0
    assert st.cvrmse == pytest.approx(100 * math.sqrt(float((y - yhat) @ (y - yhat)) / 4) / abs(y.mean()))


def test_no_degrees_of_freedom_is_refused_not_clamped():
    with pytest.raises(DegreesOfFreedomError):
        t_quantile(0.9, 0.0)
    with pytest.raises(DegreesOfFreedomError):
        savings_uncertainty(cvrmse_pct=10, n=10, n_eff=3.0, p=4, m=10, baseline_total=1000, confidence=0.9)
    # strongly autocorrelated residuals: n′ = n(1−ρ)/(1+ρ) falls below p
    rng = np.random.default_rng(1)
    e = np.cumsum(rng.normal(0, 1, 60)) * 0.5 + rng.normal(0, 0.01, 60)
    x = np.column_stack([np.ones(60)] + [rng.normal(0, 1, 60) for _ in range(8)])
    with pytest.raises(DegreesOfFreedomError):
        uncertainty_model(x, e - x @ np.linalg.lstsq(x, e, rcond=None)[0], 9, Frequency.DAILY)


def test_exact_prediction_variance_without_autocorrelation():
    """ρ ≤ 0: Var = s²·(gᵀ(XᵀX)⁻¹g + m), the textbook OLS prediction variance of a sum."""
    rng = np.random.default_rng(3)
    n, m = 200, 50
    x = np.column_stack([np.ones(n), rng.uniform(0, 30, n)])
    y = x @ np.array([10.0, 2.0]) + rng.normal(0, 3, n)
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = y - x @ beta
    # make the residual series anti-correlated so that the AR(1) correction is off
    order = np.argsort(resid)
    alt = np.empty(n, dtype=int)
    alt[0::2], alt[1::2] = order[: n // 2], order[n // 2 :][::-1]
    um = uncertainty_model(x[alt], resid[alt], 2, Frequency.DAILY)
    assert um.rho == 0.0
    g = np.array([m, 15.0 * m])
    s2 = float(resid @ resid) / (n - 2)
    want = math.sqrt(s2 * (g @ np.linalg.inv(x.T @ x) @ g + m))
    assert um.standard_error(g, m) == pytest.approx(want, rel=1e-9)


def test_amount_adjustments_do_not_scale_the_uncertainty():
    obs = _daily()
    fr = select(obs, "5p").chosen
    rep = _daily(seed=5)
    _, plain = avoided_energy(fr.model, fr.stats, rep, uncertainty=fr.uncertainty)
    big = np.full(len(rep), 0.3 * float(np.mean(fr.model.predict(rep))))
    _, adjusted = avoided_energy(fr.model, fr.stats, rep, big, uncertainty=fr.uncertainty)
    assert adjusted.adjusted_baseline + adjusted.adjustments > 1.25 * plain.adjusted_baseline
    assert adjusted.uncertainty["90"] == pytest.approx(plain.uncertainty["90"])
    # an adjustment's own stated uncertainty adds in quadrature
    mask = np.ones(len(rep), dtype=bool)
    _, stated = avoided_energy(
        fr.model, fr.stats, rep, big, uncertainty=fr.uncertainty, adjustment_uncertainty=[(mask, 0.1)]
    )
    sd_adj = 0.1 * float(big.sum())
    assert plain.multipliers is not None
    k90 = plain.multipliers["90"]
    assert stated.uncertainty["90"] == pytest.approx(k90 * math.hypot(plain.standard_error, sd_adj))


def test_constant_temperature_gives_no_slope():
    rng = np.random.default_rng(0)
    t = 20.0 + rng.normal(0, 0.001, 365)
    y = 1000 + rng.normal(0, 30, 365)
    obs = Observations(energy=y, temp=t, frequency=Frequency.DAILY)
    with pytest.raises(ModelError, match="hardly varies"):
        cp_fit("2p", obs)
    sel = select(obs)
    assert sel.chosen.model.type == "mean"


def test_monthly_degree_days_need_daily_temperatures():
    obs = _daily(n=365)
    dates = pd.date_range("2024-01-01", periods=365, freq="D")
    frame = pd.DataFrame({"date": dates, "energy": obs.energy, "temperature": obs.temp})
    monthly = monthly_observations(frame)
    # from daily temperatures: degree days are counted over days, so 12 bills get real slopes
    model, _ = degreeday.fit(monthly)
    assert {"hdd_slope", "cdd_slope"} <= set(model.coefficients)
    # bills with only the month's mean temperature: refused, not degenerate
    bare = Observations(
        energy=monthly.energy, temp=monthly.temp, frequency=Frequency.MONTHLY, days=monthly.days
    )
    with pytest.raises(ModelError, match="daily temperatures"):
        degreeday.fit(bare)


def test_guarantee_prorated_over_valid_days_and_one_sided_label():
    obs = _daily()
    fr = select(obs, "5p").chosen
    rep = _daily(seed=9)
    e = rep.energy.copy()
    e[:65] = np.nan  # 300 valid days
    rep = Observations(energy=e * 0.8, temp=rep.temp, frequency=Frequency.DAILY)
    _, summary = avoided_energy(fr.model, fr.stats, rep, uncertainty=fr.uncertainty)
    g = guarantee(36500.0, summary.periods, summary)
    assert summary.periods == 300
    assert g.guaranteed == pytest.approx(36500.0 * 300 / 365)
    # one-sided lower 90 % bound = lower end of the two-sided 80 % interval
    assert g.lower_bound_90 == pytest.approx(summary.avoided_energy_use - summary.uncertainty["80"])
    assert "one-sided" in g.test


def test_mixed_utc_offsets_need_a_timezone(tmp_path):
    rows = ["timestamp,energy,temperature"]
    for ts in pd.date_range("2024-03-30", "2024-04-02", freq="h", tz="Europe/Berlin"):
        rows.append(f"{ts.isoformat()},1.0,10.0")
    path = tmp_path / "dst.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="--timezone"):
        read_csv(path)
    df, freq = read_csv(path, timezone="Europe/Berlin")
    assert freq == Frequency.HOURLY
    # local midnight stays midnight on both sides of the change (UTC would shift one by an hour)
    local = df["timestamp"]
    assert (local.dt.hour == 0).sum() == 4
    assert local.iloc[0] == pd.Timestamp("2024-03-30 00:00")


def test_reporting_model_is_checked_like_a_baseline():
    base = _daily()
    rep = _daily(seed=4, n=120)  # a third of a year: too short for a normalised year
    normal = Observations(energy=np.full(365, np.nan), temp=_daily(seed=8).temp, frequency=Frequency.DAILY)
    out = run(
        base, rep, pd.DatetimeIndex(pd.date_range("2025-01-01", periods=120)), [], model="5p", normal=normal
    )
    names = {w.qualified_name for w in out.warnings}
    assert "epcwatch.reporting_model.too_short" in names
    assert "epcwatch.reporting_model.temperature_range" in names
    assert "reporting_model" in out.to_dict() and "g14" in out.to_dict()["reporting_model"]


def test_an_hour_needs_most_of_its_subhourly_readings(tmp_path):
    rows = ["timestamp,energy,temperature"]
    for ts in pd.date_range("2024-01-01", periods=8, freq="15min"):
        rows.append(f"{ts.isoformat()},1.0,5.0")
    rows.append(f"{pd.Timestamp('2024-01-01 02:00').isoformat()},1.0,5.0")  # 1 of 4 readings
    path = tmp_path / "q.csv"
    path.write_text("\n".join(rows) + "\n")
    df, _ = read_csv(path)
    assert df["energy"].tolist()[:2] == [4.0, 4.0]
    assert math.isnan(df["energy"].iloc[2])


def test_daily_mean_temperature_needs_coverage():
    ts = pd.date_range("2024-01-01", periods=48, freq="h")
    temp = np.full(48, 10.0)
    temp[24:44] = np.nan  # day two: 4 of 24 hours with a temperature
    d = hourly_to_daily(pd.DataFrame({"timestamp": ts, "energy": 1.0, "temperature": temp}))
    assert d["temperature"].iloc[0] == 10.0
    assert math.isnan(d["temperature"].iloc[1])


def test_every_change_point_segment_keeps_k_periods_strictly_on_each_side():
    t = np.arange(40, dtype=float)  # k = max(3, ceil(0.05·40)) = 3
    lo, hi = search_bounds(t)
    assert int(np.sum(t < lo)) >= 3 and int(np.sum(t > hi)) >= 3


def test_slope_signs_are_constrained_in_the_search():
    rng = np.random.default_rng(2)
    t = rng.uniform(0, 30, 300)
    y = 800 - 10 * t + rng.normal(0, 10, 300)  # energy falling all the way: no cooling response
    with pytest.raises(ModelError, match="physically signed"):
        cp_fit("3pc", Observations(energy=y, temp=t, frequency=Frequency.DAILY))
    y2 = 600 + 20 * np.maximum(t - 21, 0) - 3 * t + rng.normal(0, 10, 300)
    model, _ = cp_fit("3pc", Observations(energy=y2, temp=t, frequency=Frequency.DAILY))
    assert model.coefficients["cooling_slope"] >= 0


def test_g14_thresholds_state_their_path():
    fr = evaluate(select(_daily(), "5p").chosen.model, _daily())
    assert fr.verdict.path == "regression" and fr.verdict.cvrmse_limit == 25.0
    assert fr.simulation_verdict is not None and fr.simulation_verdict.path == "calibrated_simulation"


def test_named_independent_variables_enter_the_model(tmp_path):
    from epcwatch.savings import synthetic
    from epcwatch.savings.csvfit import fit_csv
    from epcwatch.savings.engine import Period

    frame = synthetic.building(seed=31, frequency="daily", rho=0.3)
    rng = np.random.default_rng(5)
    production = rng.uniform(0, 100, len(frame))  # tonnes a day, unrelated to the weather
    frame["energy"] += 6.0 * production
    frame["counterfactual"] += 6.0 * production
    path = tmp_path / "p.csv"
    out = frame.rename(columns={"date": "timestamp"})[["timestamp", "energy", "temperature"]].copy()
    out["timestamp"] = out["timestamp"].dt.strftime("%Y-%m-%d")
    out["production"] = production
    out.to_csv(path, index=False)
    base, rep = Period.parse("2023-01-01/2023-12-31"), Period.parse("2024-01-01/2024-12-31")
    with_var = fit_csv(path, base, rep, calendar="cn", variables=("production",))
    without = fit_csv(path, base, rep, calendar="cn")
    assert with_var.model.coefficients["variable_production"] == pytest.approx(6.0, rel=0.1)
    r = frame[frame["date"] >= "2024-01-01"]
    truth = float((r["counterfactual"] - r["energy"])[r["energy"].notna()].sum())
    assert abs(with_var.summary.avoided_energy_use - truth) <= with_var.summary.uncertainty["90"]
    assert with_var.summary.uncertainty["90"] < without.summary.uncertainty["90"]


@pytest.mark.parametrize("day_type", [False, True])
def test_degree_day_designs_at_once_equal_one_by_one(day_type: bool) -> None:
    """The balance-point search builds every candidate's design at once; each equals ``design``
    of that candidate, bit for bit (daily and monthly rows, with and without the day shift)."""
    daily = _daily(seed=3)
    daily = Observations(
        energy=daily.energy,
        temp=daily.temp,
        frequency=Frequency.DAILY,
        nonworking=(np.arange(len(daily.energy)) % 7 >= 5).astype(float),
    )
    dates = pd.date_range("2024-01-01", periods=365, freq="D")
    frame = pd.DataFrame({"date": dates, "energy": daily.energy, "temperature": daily.temp})
    for obs in (daily, monthly_observations(frame)):
        columns = {
            "heating_balance_point": {h: degreeday._degree_days(obs, h, heating=True) for h in (8.0, 12.5)},
            "cooling_balance_point": {c: degreeday._degree_days(obs, c, heating=False) for c in (12.5, 21.0)},
        }
        for group in (
            [{"heating_balance_point": 8.0}, {"heating_balance_point": 12.5}],
            [{"cooling_balance_point": 21.0}],
            [
                {"heating_balance_point": h, "cooling_balance_point": c}
                for h in (8.0, 12.5)
                for c in (12.5, 21.0)
            ],
        ):
            at_once = degreeday._designs(obs, group, day_type, columns)
            one_by_one = np.stack([degreeday.design(obs, c, day_type)[0] for c in group])
            assert at_once.tobytes() == one_by_one.tobytes()
