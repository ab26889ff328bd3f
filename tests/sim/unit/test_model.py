"""The pure load model: sub-metering identities, exact counters, retrofits and counterfactual."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcwatch.sim.ledger import Counters, daily_totals
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import demo_complex
from epcwatch.sim.timegrid import STEP_S, day_steps, grid, local_midnight
from epcwatch.sim.weather import weather
from epcwatch.sim.workdays import is_workday

SPEC = demo_complex(seed=3)
MODEL = ComplexModel(SPEC)
TZ = MODEL.tz
# a span with the retrofit date, the Spring Festival 2025 and a swapped working Sunday in it
K0, K1 = day_steps(dt.date(2024, 12, 20), dt.date(2025, 2, 10), TZ)
#: counters cache whole days; one instance serves every test
COUNTERS = Counters(MODEL)


@pytest.fixture(scope="module")
def loads_both():
    k = np.arange(K0, K1, dtype=np.int64)
    g = grid(k, TZ)
    w = weather(g, SPEC.seed)
    return MODEL.loads_on(g, w, True), MODEL.loads_on(g, w, False)


def test_main_is_the_sum_of_the_category_meters_at_every_step(loads_both):
    for loads in loads_both:
        power = MODEL.power_w(loads)
        for b in SPEC.buildings:
            subs = sum(power[d.id] for d in MODEL.spec.category_meters(b.id))
            np.testing.assert_allclose(power[f"{b.id}-main"], subs, rtol=1e-12)
            assert (power[f"{b.id}-main"] > 0).all()


def test_tenant_meters_partition_category_a(loads_both):
    power = MODEL.power_w(loads_both[0])
    for b in SPEC.buildings:
        tenants = sum(power[f"{b.id}-t-{t.id}"] for t in b.tenants)
        np.testing.assert_allclose(tenants, power[f"{b.id}-light"], rtol=1e-12)
        # the lighting controller reports the lighting part of A, never more than A
        assert (power[f"{b.id}-lc1"] <= power[f"{b.id}-light"]).all()


def test_counterfactual_equals_actual_before_the_retrofits_and_differs_after(loads_both):
    actual, cf = (MODEL.power_w(x) for x in loads_both)
    before = loads_both[0].grid.local_day < (dt.date(2025, 1, 1) - dt.date(1970, 1, 1)).days
    for dev in actual:
        np.testing.assert_array_equal(actual[dev][before], cf[dev][before])
    retrofitted = {r.building for r in SPEC.retrofits}
    for b in SPEC.buildings:
        saved = (cf[f"{b.id}-main"] - actual[f"{b.id}-main"])[~before].sum()
        if b.id in retrofitted:
            assert saved > 0
        else:
            assert saved == 0


def test_led_retrofit_lowers_lighting_and_tight_schedule_stops_weekend_ahus(loads_both):
    actual, cf = loads_both
    after = actual.grid.local_day >= (dt.date(2025, 1, 1) - dt.date(1970, 1, 1)).days
    weekend = after & ~actual.grid.workday
    b1a, b1c = actual.buildings["b1"], cf.buildings["b1"]
    assert (b1a.lighting[after] <= b1c.lighting[after]).all()
    assert (b1a.lighting[after] < b1c.lighting[after]).any()
    assert not b1a.hvac_on[weekend].any()
    assert b1c.hvac_on[weekend].any()


def test_chinese_working_days_drive_occupancy(loads_both):
    assert is_workday(dt.date(2025, 1, 26))  # a Sunday worked in exchange for the Spring Festival
    assert not is_workday(dt.date(2025, 1, 29))  # Spring Festival, a Wednesday
    g = loads_both[0].grid
    occ = loads_both[0].buildings["b1"].occupancy
    at_ten = (g.tod_h > 10.0) & (g.tod_h < 10.02)
    festival = at_ten & (g.local_day == (dt.date(2025, 1, 29) - dt.date(1970, 1, 1)).days)
    swapped = at_ten & (g.local_day == (dt.date(2025, 1, 26) - dt.date(1970, 1, 1)).days)
    assert occ[swapped].min() > 5 * occ[festival].max()


def test_daily_totals_are_the_counters_differences_at_local_midnight():
    first, last = dt.date(2024, 12, 30), dt.date(2025, 1, 2)
    totals = daily_totals(MODEL, first, last)
    counters = COUNTERS
    day = first
    for i in range(len(totals.days)):
        a = counters.at(local_midnight(day, TZ))
        b = counters.at(local_midnight(day + dt.timedelta(days=1), TZ))
        for dev, kwh in totals.actual_kwh.items():
            assert b[(dev, "energy_import")] - a[(dev, "energy_import")] == pytest.approx(kwh[i], rel=1e-9)
        for dev, hours in totals.run_hours.items():
            assert b[(dev, "run_hours")] - a[(dev, "run_hours")] == pytest.approx(
                hours[i], rel=1e-9, abs=1e-9
            )
        day += dt.timedelta(days=1)


@settings(max_examples=40, deadline=None)
@given(
    a=st.floats(min_value=0, max_value=3 * 86400),
    b=st.floats(min_value=0, max_value=3 * 86400),
)
def test_counters_integrate_the_piecewise_constant_power_exactly(a, b):
    """counter(t2) - counter(t1) = integral of the step power between them, partial steps included."""
    t0 = local_midnight(dt.date(2025, 3, 3), TZ)
    t1, t2 = sorted((t0 + a, t0 + b))
    counters = COUNTERS
    c1, c2 = counters.at(t1), counters.at(t2)
    k = np.arange(int(t1 // STEP_S), int(t2 // STEP_S) + 1, dtype=np.int64)
    power = MODEL.power_w(MODEL.loads(k))
    starts = np.maximum(k * STEP_S, t1)
    ends = np.minimum((k + 1) * STEP_S, t2)
    seconds = np.clip(ends - starts, 0, None)
    for dev, p in power.items():
        expected = float((p * seconds).sum() / 3.6e6)
        got = c2[(dev, "energy_import")] - c1[(dev, "energy_import")]
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert got >= 0


def test_series_samples_agree_with_counters_at_the_same_instants():
    counters = COUNTERS
    day = dt.date(2025, 7, 14)
    samples = list(counters.series(day, day, 900))
    ts, loads, values = samples[0]
    assert len(ts) == 96 and (np.diff(ts) == 900).all()
    fresh = Counters(MODEL)  # evaluated independently of the series' running sums
    for i in (0, 37, 95):
        at = fresh.at(float(ts[i]))
        for key, v in values.items():
            assert v[i] == pytest.approx(at[key], rel=1e-12)
    power = MODEL.power_w(loads)
    np.testing.assert_allclose(power["b1-main"], MODEL.power_w(MODEL.loads(ts // STEP_S))["b1-main"])


def test_same_seed_same_complex_other_seed_other_weather():
    k = np.arange(K0, K0 + 1440, dtype=np.int64)
    a = ComplexModel(demo_complex(seed=3)).power_w(ComplexModel(demo_complex(seed=3)).loads(k))
    np.testing.assert_array_equal(a["b2-main"], MODEL.power_w(MODEL.loads(k))["b2-main"])
    other = ComplexModel(demo_complex(seed=4))
    assert not np.array_equal(other.power_w(other.loads(k))["b2-main"], a["b2-main"])


def test_weather_is_a_humid_subtropical_year():
    k0, k1 = day_steps(dt.date(2024, 1, 1), dt.date(2024, 12, 31), TZ)
    g = grid(np.arange(k0, k1, 10, dtype=np.int64), TZ)
    w = weather(g, SPEC.seed)
    month = np.array([(dt.date(1970, 1, 1) + dt.timedelta(days=int(d))).month for d in g.local_day])
    jan, jul = w.temp_c[month == 1].mean(), w.temp_c[month == 7].mean()
    assert 2 < jan < 10 and 22 < jul < 30
    assert 70 < w.humidity_pct.mean() < 90
    assert (w.daylight[(g.tod_h < 5) | (g.tod_h > 21)] == 0).all()
