"""Helpers of the pipeline tests: the collector and edge as child processes, InfluxDB queries,
register resolution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from epcwatch.devservices.services import Influxd, Mosquitto, influx_query
from epcwatch.profiles.dlt645_profile import Dlt645Profile
from epcwatch.profiles.model import Profile
from tests.support import Child, spawn, wait_for

__all__ = ["wait_for"]


def start_collector(
    children: list[Child], tmp: Path, mosquitto: Mosquitto, influxdb: Influxd, database: str
) -> Child:
    """``epcwatch collector run`` on the test's database, subscribed before it returns."""
    cfg = {
        "mqtt": {
            "host": "127.0.0.1",
            "port": mosquitto.port,
            "client_id": f"c-{database}"[:60],
            "group": "g" + str(abs(hash(database)) % 10**8),
        },
        "influx": {"url": influxdb.url, "database": database},
        "batch": {"max_wait_s": 0.2},
        "rollup": {"enabled": False, "timezones": {"civic-centre": "Asia/Shanghai"}},
    }
    path = tmp / "collector.yaml"
    path.write_text(yaml.safe_dump(cfg))
    child = spawn(["collector", "run", "--config", str(path)], tmp)
    children.append(child)
    child.wait_for("MQTT subscribed")  # the SUBACK: from here on the group receives telemetry
    return child


def rollup(tmp: Path, start_iso: str, end_iso: str) -> str:
    import subprocess

    from .conftest import EPCWATCH

    res = subprocess.run(
        [
            EPCWATCH,
            "collector",
            "rollup",
            "--config",
            str(tmp / "collector.yaml"),
            "--from",
            start_iso,
            "--to",
            end_iso,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def rows(influxdb: Influxd, database: str, q: str) -> list[dict[str, Any]]:
    """The rows of an InfluxQL query as dicts (with ``time`` in ms and the series' tags)."""
    doc = influx_query(influxdb.url, q, db=database)
    out: list[dict[str, Any]] = []
    for res in doc.get("results", []):  # type: ignore[union-attr]
        for s in res.get("series", []):
            for v in s["values"]:
                out.append({**s.get("tags", {}), **dict(zip(s["columns"], v, strict=True))})
    return out


def count(influxdb: Influxd, database: str, measurement: str, field: str, where: str = "") -> int:
    r = rows(
        influxdb,
        database,
        f'SELECT count("{field}") FROM "{measurement}"' + (f" WHERE {where}" if where else ""),
    )
    return int(r[0]["count"]) if r else 0


def resolution(profile: Profile | Dlt645Profile, name: str, value: float) -> float:
    """Largest difference a register's (or a DL/T 645 BCD value's) encoding may introduce for ``value``."""
    if isinstance(profile, Dlt645Profile):
        d = profile.point(name)
        return abs(d.scale) / 10**d.bcd.decimals / 2 + 1e-9
    p = next(p for p in profile.points if p.name == name)
    if p.type == "float32":
        return abs(p.scale) * float(np.spacing(np.float32(abs(value) / abs(p.scale)))) + 1e-12
    if p.type == "float64":
        return abs(value) * 1e-15 + 1e-12
    return abs(p.scale) / 2 + 1e-9


def edge_status(site: Path) -> dict[str, Any]:
    path = site.parent / "status.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
