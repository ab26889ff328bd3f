"""Poll schedule and backoff arithmetic (pure)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from epcwatch.edge.schedule import backoff_delay, next_due, next_slot

times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
intervals = st.sampled_from([0.5, 1.0, 5.0, 10.0, 15.0, 60.0, 300.0, 900.0])


@given(times, intervals)
def test_next_slot_is_the_first_grid_point_after_now(now: float, interval: float) -> None:
    slot = next_slot(now, interval)
    assert slot > now
    assert slot - interval <= now + 1e-6 * max(1.0, now)
    k = slot / interval
    assert math.isclose(k, round(k), rel_tol=0, abs_tol=1e-6)


def test_next_slot_examples() -> None:
    assert next_slot(0.0, 10.0) == 10.0
    assert next_slot(10.0, 10.0) == 20.0  # exactly on a slot: the next one
    assert next_slot(19.999, 10.0) == 20.0


@given(st.integers(min_value=0, max_value=10_000), st.floats(0.1, 100), st.floats(0.1, 10_000))
def test_backoff_is_monotonic_and_capped(n: int, base: float, cap: float) -> None:
    d = backoff_delay(n, base, cap)
    assert 0 <= d <= cap
    assert backoff_delay(n + 1, base, cap) >= d
    if n == 0:
        assert d == 0


def test_backoff_doubles_until_the_cap() -> None:
    assert [backoff_delay(n, 1.0, 10.0) for n in range(6)] == [0, 1, 2, 4, 8, 10]


@given(times, intervals, st.integers(0, 50), st.floats(0, 3600))
def test_next_due_is_on_the_grid_and_respects_backoff(
    now: float, interval: float, failures: int, cap: float
) -> None:
    due = next_due(now, interval, failures, cap)
    assert due > now
    k = due / interval
    assert math.isclose(k, round(k), rel_tol=0, abs_tol=1e-6)
    delay = backoff_delay(failures, interval, max(cap, interval))
    assert due >= now + delay - 1e-6 * max(1.0, now)
    # never later than one interval after the backoff
    assert due <= now + max(delay, interval) + interval + 1e-6 * max(1.0, now)


def test_healthy_device_polls_every_slot() -> None:
    t = 1000.0
    slots = []
    for _ in range(5):
        t = next_due(t + 0.3, 10.0)  # each poll takes 0.3 s
        slots.append(t)
    assert slots == [1010.0, 1020.0, 1030.0, 1040.0, 1050.0]


def test_overrun_skips_missed_slots() -> None:
    # a poll that finished 25 s after its slot at 100 resumes at 130, no burst of 110/120
    assert next_due(125.0, 10.0) == 130.0


def test_failing_device_backs_off_to_the_cap() -> None:
    due = [next_due(0.0, 10.0, n, backoff_cap=60.0) for n in range(1, 7)]
    assert due == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
