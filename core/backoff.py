"""The one backoff: capped exponential delays, with optional jitter (pure)."""

from __future__ import annotations

import random


def backoff_delay(consecutive_failures: int, base: float, cap: float) -> float:
    """``base · 2^(n-1)`` capped at ``cap``; 0 while healthy (n = 0)."""
    if consecutive_failures <= 0:
        return 0.0
    exponent = min(consecutive_failures - 1, 62)  # 2**62 · base overflows nothing and exceeds any cap
    return float(min(cap, base * (2.0**exponent)))


def jittered(delay: float, rng: random.Random | None = None) -> float:
    """``delay`` scaled by a uniform factor in [0.5, 1] so that many clients do not retry in lockstep."""
    return delay * (rng or random).uniform(0.5, 1.0)
