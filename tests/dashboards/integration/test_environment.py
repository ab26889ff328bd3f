"""grafana-client 5.x pulls in urllib3-future, which installs itself as the ``urllib3`` module.
These tests prove the rest of the environment still works with it: influxdb-client writing to a
real ``/api/v2/write`` (VictoriaMetrics) and pip, which vendors its own urllib3."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from epcwatch.devservices.services import VictoriaMetrics

pytestmark = pytest.mark.integration


def test_urllib3_module_is_urllib3_future() -> None:
    from importlib.metadata import version

    import urllib3

    # urllib3-future overwrote the urllib3 package: the module reports its version, not urllib3's
    assert urllib3.__version__ == version("urllib3-future") != version("urllib3")
    import grafana_client  # noqa: F401  (imports niquests on top of it)


def test_influxdb_client_writes_through_urllib3_future(victoria: VictoriaMetrics) -> None:
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    with InfluxDBClient(url=victoria.url, token="unused", org="epcwatch") as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket="epcwatch", record="envcheck,site=s1 value=42 1735689600000000000"
        )
    q = urllib.request.quote('{__name__="envcheck_value"}')
    with urllib.request.urlopen(f"{victoria.url}/internal/force_flush", timeout=10):
        pass
    with urllib.request.urlopen(f"{victoria.url}/api/v1/export?match[]={q}", timeout=10) as r:
        rows = [json.loads(line) for line in r.read().splitlines() if line.strip()]
    assert rows and rows[0]["values"] == [42]


def test_pip_still_runs() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and res.stdout.startswith("pip ")
