"""Shared fixtures: real servers on free ports in temp dirs, one set per test session.

A test that needs a server whose binary is missing fails with the package to install; it
never skips silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from epcwatch.devservices.services import Influxd, Mosquitto, VictoriaMetrics, free_port
from tests.support import Child

# no per-example time limit: these shared 2-core machines are noisy, and a property test checks
# a law, not a speed (speed is measured in bench/)
settings.register_profile("epcwatch", deadline=None)
settings.load_profile("epcwatch")


@pytest.fixture(scope="session")
def services_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def mosquitto(services_root: Path) -> Iterator[Mosquitto]:
    """A Mosquitto broker shared by the session (anonymous, loopback, persistent)."""
    svc = Mosquitto(state_dir=services_root / "shared", port=free_port())
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def influxdb(services_root: Path) -> Iterator[Influxd]:
    """An InfluxDB 1.x server shared by the session, with database ``epcwatch`` created."""
    svc = Influxd(state_dir=services_root / "shared", port=free_port())
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def victoria(services_root: Path) -> Iterator[VictoriaMetrics]:
    """VictoriaMetrics, the real ``/api/v2/write`` target of the v2 writer."""
    svc = VictoriaMetrics(state_dir=services_root / "shared", port=free_port())
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own, for tests that stop, kill or restart it."""
    svc = Mosquitto(state_dir=tmp_path, port=free_port())
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def private_influxdb(tmp_path: Path) -> Iterator[Influxd]:
    """An InfluxDB of the test's own, for tests that stop, kill or restart it."""
    svc = Influxd(state_dir=tmp_path, port=free_port())
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def database(influxdb: Influxd, request: pytest.FixtureRequest) -> str:
    """A fresh database on the shared InfluxDB, named after the test."""
    from epcwatch.devservices.services import influx_query

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:60] + f"_{os.getpid()}"
    influx_query(influxdb.url, f'DROP DATABASE "{name}"', method="POST")
    influx_query(influxdb.url, f'CREATE DATABASE "{name}"', method="POST")
    return name


@pytest.fixture
def children(tmp_path: Path) -> Iterator[list[Child]]:
    """Child processes started by a test; each is stopped (by PID) at teardown."""
    started: list[Child] = []
    yield started
    for c in reversed(started):
        c.stop()
