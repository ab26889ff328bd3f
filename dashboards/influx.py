"""The dashboards' InfluxDB access: the project's one client (:mod:`epcwatch.influx`)."""

from __future__ import annotations

from epcwatch.influx import InfluxClient, InfluxError, Series

__all__ = ["InfluxClient", "InfluxError", "Series"]
