"""Pure poll-schedule arithmetic: when a device is due next, and how long a failing device waits.

Polls sit on a grid of the device's interval in the agent clock's time (``k · interval``), so
readings of devices with the same interval carry aligned timestamps and a late poll never
shifts the following ones. A poll that overruns skips the slots it missed instead of bursting
to catch up. A device that keeps failing is retried with capped exponential backoff, rounded
up to its grid, so one dead device costs the bus at most one timeout per backoff period.
"""

from __future__ import annotations

import math

from epcwatch.backoff import backoff_delay

__all__ = ["backoff_delay", "next_due", "next_slot"]


def next_slot(now: float, interval: float) -> float:
    """The first grid point ``k · interval`` strictly after ``now``."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    k = math.floor(now / interval) + 1
    slot = k * interval
    # guard against floating point landing exactly on (or just before) ``now``
    while slot <= now:
        k += 1
        slot = k * interval
    return slot


def next_due(now: float, interval: float, consecutive_failures: int = 0, backoff_cap: float = 300.0) -> float:
    """When to poll a device next, given the time its last poll finished.

    Healthy: the next grid slot. Failing: the first grid slot at or after ``now + backoff``,
    where the backoff starts at one interval and doubles up to ``max(backoff_cap, interval)``.
    """
    delay = backoff_delay(consecutive_failures, interval, max(backoff_cap, interval))
    slot = next_slot(now, interval)
    if slot >= now + delay:
        return slot
    k = math.ceil((now + delay) / interval)
    while k * interval < now + delay:  # floating point: make sure the slot is not early
        k += 1
    return float(k * interval)
