"""The dashboards component's error tree; library exceptions are converted at the boundary."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError
from epcwatch.influx import InfluxError

__all__ = ["DashboardsError", "InfluxError", "PublishError", "StatsError"]


class DashboardsError(EpcwatchError):
    """Base of every error this component raises; ``str()`` is ready to show to an operator."""


class PublishError(DashboardsError):
    """Grafana unreachable or refusing a folder or dashboard request."""


class StatsError(DashboardsError):
    """Statistics that cannot be computed (bad period, unknown site, missing floor area)."""
