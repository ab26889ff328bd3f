"""Fixtures of the dashboards' tests: one InfluxDB database holding the simulated site."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from epcwatch.dashboards.influx import InfluxClient
from epcwatch.dashboards.metadata import building_info_lines
from epcwatch.devservices.services import Influxd, influx_query

sys.path.insert(0, str(Path(__file__).parent))
import dash_simdata as simdata


@pytest.fixture(scope="session")
def sim_db(influxdb: Influxd) -> Iterator[InfluxClient]:
    """The simulated site written once per session (building_info through the metadata lines)."""
    name = f"dash_sim_{os.getpid()}"
    influx_query(influxdb.url, f'DROP DATABASE "{name}"', method="POST")
    influx_query(influxdb.url, f'CREATE DATABASE "{name}"', method="POST")
    client = InfluxClient(influxdb.url, name)
    data = simdata.lines()
    for i in range(0, len(data), 5000):
        client.write(data[i : i + 5000])
    client.write(building_info_lines(simdata.PORTFOLIO))
    yield client
    influx_query(influxdb.url, f'DROP DATABASE "{name}"', method="POST")
