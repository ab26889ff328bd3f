"""Interval energy: the rules, and agreement with an independent computation."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from epcwatch.collector.rollup import (
    Interval,
    Rules,
    StepKind,
    _next_power_of_ten,
    align_range,
    day_bounds,
    edge_samples,
    interval_energy,
    step_increase,
)

UTC = ZoneInfo("UTC")
SH = ZoneInfo("Asia/Shanghai")
T0 = 1_735_660_800_000  # 2024-12-31T16:00Z = 2025-01-01 00:00 in Shanghai
MIN = 60_000
RULES = Rules(max_rate_per_h=1000.0)  # 1000 kWh/h bound → 16.7 kWh per minute


@pytest.mark.parametrize(
    ("a", "b", "dt", "inc", "kind"),
    [
        (100.0, 105.0, MIN, 5.0, StepKind.NORMAL),
        (100.0, 100.0, MIN, 0.0, StepKind.NORMAL),
        (99_998.0, 3.0, MIN, 5.0, StepKind.ROLLOVER),  # 5-digit register wrapped
        (5_000.0, 2.0, MIN, 2.0, StepKind.RESET),  # cleared to zero, counted up 2
        (5_000.0, 1_234.0, MIN, 0.0, StepKind.IMPLAUSIBLE),  # replacement meter, unknown start
        (100.0, 5_000.0, MIN, 0.0, StepKind.IMPLAUSIBLE),  # jump up
        (100.0, 5_000.0, 10 * 3_600_000, 4900.0, StepKind.NORMAL),  # same jump after 10 h: plausible
    ],
)
def test_step_rules(a: float, b: float, dt: int, inc: float, kind: StepKind) -> None:
    assert step_increase(a, b, dt, RULES) == pytest.approx((inc, kind))


def test_configured_modulus() -> None:
    m = 2**32 * 0.01
    inc, kind = step_increase(m - 1.0, 2.0, MIN, Rules(max_rate_per_h=1000.0, moduli=(m,)))
    assert kind is StepKind.ROLLOVER and inc == pytest.approx(3.0)


def test_step_spread_linearly_over_intervals() -> None:
    samples = [(T0 + 10 * MIN, 0.0), (T0 + 20 * MIN, 10.0)]  # 10 kWh over 10 minutes
    out = interval_energy(samples, Interval.QUARTER, UTC, RULES)
    assert [(o.start, round(o.increase, 9)) for o in out] == [(T0, 5.0), (T0 + 15 * MIN, 5.0)]
    assert [round(o.coverage, 9) for o in out] == [round(5 / 15, 9), round(5 / 15, 9)]


def test_local_days_and_dst() -> None:
    # Berlin, 2025-03-30 has 23 hours
    tz = ZoneInfo("Europe/Berlin")
    start = int(datetime(2025, 3, 30, tzinfo=tz).timestamp() * 1000)
    assert start == int(datetime(2025, 3, 29, 23, tzinfo=ZoneInfo("UTC")).timestamp() * 1000)
    ((s, e),) = list(day_bounds(start, start + 1, tz))
    assert (s, e - s) == (start, 23 * 3_600_000)
    assert (
        align_range(Interval.DAY, start + 5, start + 7, SH)[1]
        - align_range(Interval.DAY, start + 5, start + 7, SH)[0]
        == 86_400_000
    )


# -- property: agreement with an independent computation -----------------------------------------
M = 10_000.0  # a 4-digit register (kWh)


@st.composite
def meter_history(draw: st.DrawFn) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """Returns (counter samples as a meter reports them, true cumulative energy at each sample).

    The true energy grows by random increments; the register wraps at M (rollover), is cleared
    (reset: it restarts from zero right after a reading), or is replaced by a meter with an
    unknown reading (its step's energy cannot be known, so the truth counts 0 for it, as the
    documented rule does).
    """
    n = draw(st.integers(2, 120))
    t = T0 + draw(st.integers(0, 10**8))
    reg = draw(st.floats(0, M - 1, allow_nan=False))
    true = 0.0
    samples = [(t, reg)]
    truth = [(t, 0.0)]
    for _ in range(n):
        dt = draw(st.integers(5_000, 30 * MIN))
        bound = RULES.max_rate_per_h * dt / 3_600_000
        inc = draw(st.floats(0, bound * 0.9, allow_nan=False))
        event = draw(st.sampled_from(["normal"] * 6 + ["reset", "replace"]))
        prev = samples[-1][1]
        # resets and replacements only where no rollover could explain them (see the rules)
        unambiguous = _next_power_of_ten(prev) - prev > bound
        if event == "reset" and unambiguous and inc < prev:
            reg = inc  # cleared right after the last reading, counted up inc since
        elif event == "replace" and unambiguous and prev > bound + 2:
            reg = draw(st.floats(bound + 1, prev - 1, allow_nan=False))  # new meter, unknown start
            inc = 0.0  # unknown, not counted
        else:
            reg = (reg + inc) % M
        t += dt
        true += inc
        samples.append((t, reg))
        truth.append((t, true))
    return samples, truth


def independent(truth: list[tuple[int, float]], interval: Interval, tz: ZoneInfo) -> dict[int, float]:
    """Interval energy as differences of the piecewise-linear true cumulative energy."""
    ts = np.array([t for t, _ in truth], dtype=float)
    es = np.array([e for _, e in truth])
    out = {}
    a, b = align_range(interval, int(ts[0]), int(ts[-1]), tz)
    bounds = (
        [(s, s + 15 * MIN) for s in range(a, b, 15 * MIN)]
        if interval is Interval.QUARTER
        else list(day_bounds(a, b, tz))
    )
    for s, e in bounds:
        lo, hi = max(s, ts[0]), min(e, ts[-1])
        if hi > lo:
            out[s] = float(np.interp(hi, ts, es) - np.interp(lo, ts, es))
    return out


@pytest.mark.slow  # a long property run: the full check runs it, --fast does not
@settings(max_examples=300, deadline=None)
@given(meter_history(), st.sampled_from([Interval.QUARTER, Interval.DAY]), st.sampled_from([UTC, SH]))
def test_matches_independent_computation(
    history: tuple[list[tuple[int, float]], list[tuple[int, float]]], interval: Interval, tz: ZoneInfo
) -> None:
    samples, truth = history
    got = {iv.start: iv.increase for iv in interval_energy(samples, interval, tz, RULES)}
    want = independent(truth, interval, tz)
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-9, abs=1e-6)
    assert all(iv >= 0 for iv in got.values())


@settings(max_examples=200, deadline=None)
@given(meter_history(), st.data())
def test_recomputing_a_subrange_gives_the_same_intervals(
    history: tuple[list[tuple[int, float]], list[tuple[int, float]]], data: st.DataObject
) -> None:
    samples, _ = history
    full = {iv.start: iv for iv in interval_energy(samples, Interval.QUARTER, UTC, RULES)}
    if not full:
        return
    keys = sorted(full)
    i = data.draw(st.integers(0, len(keys) - 1))
    j = data.draw(st.integers(i, len(keys) - 1))
    start, end = keys[i], keys[j] + 15 * MIN
    # what the rollup job queries: the range plus one sample on either side
    inside = [s for s in samples if start <= s[0] < end]
    before = [s for s in samples if s[0] < start][-1:]
    after = [s for s in samples if s[0] >= end][:1]
    part = interval_energy(before + inside + after, Interval.QUARTER, UTC, RULES, start=start, end=end)
    assert part == [full[k] for k in keys[i : j + 1]]


@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=30, unique=True),
    st.integers(0, 10_000),
    st.integers(1, 3000),
)
def test_edge_samples_bracket_the_interval(times: list[int], start: int, length: int) -> None:
    times.sort()
    end = start + length
    edges = edge_samples(times, start, end)
    if edges is None:
        assert all(t < start for t in times) or all(t > end for t in times)
        return
    first, last = edges
    assert first in times and last in times and first <= last
    # the first edge is the last sample at or before the start, if there is one
    before = [t for t in times if t <= start]
    assert first == (before[-1] if before else times[0])
    after = [t for t in times if t >= end]
    assert last == (after[0] if after else times[-1])
    # every sample inside the interval lies between the edges
    assert all(first <= t <= last for t in times if start <= t < end)
