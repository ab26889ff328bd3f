"""The simulator's error tree."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError


class SimError(EpcwatchError):
    """Base of every error the simulator raises on purpose."""
