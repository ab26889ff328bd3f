"""Interval energy at ingest against the real servers: the points the collector writes as site
messages arrive (stopped and restarted half-way, its state kept in its SQLite file) are exactly
those that ``epcwatch collector rollup`` recomputes afterwards from the stored readings."""

from __future__ import annotations

import sqlite3
import subprocess
from typing import Any

import orjson
import pytest

from epcwatch.devservices.services import influx_query
from tests.collector.conftest import EPCWATCH, Publisher, collector_config, total
from tests.support import wait_for

pytestmark = pytest.mark.integration

DAY0 = 1_735_660_800_000  # 2025-01-01 00:00 Asia/Shanghai
STEP = 60_000


def site_messages(cycles: range) -> list[tuple[str, bytes]]:
    """One site message per minute: three meters (one resets, one rolls over) and an AHU."""
    out = []
    for k in cycles:
        ts = DAY0 + 23 * 3_600_000 + k * STEP  # from 23:00 on the first day, across midnight
        blocks = []
        for d, start in (("m1", 1_000.0), ("m2", 99_990.0), ("m3", 50.0)):
            reg = start + 0.7 * k + (k % 5) * 0.01
            if d == "m2":
                reg %= 100_000.0  # wraps at 100,000 kWh
            if d == "m3" and k >= 40:
                reg = 0.3 * (k - 40)  # cleared at k = 40
            blocks.append(
                {
                    "device": d,
                    "kind": "meter",
                    "tags": {"building": "b1", "category": "A"},
                    "readings": [
                        {"seq": k, "ts": ts, "values": {"energy_import": round(reg, 4), "active_power": 1.0}}
                    ],
                }
            )
        blocks.append(
            {
                "device": "ahu1",
                "kind": "hvac",
                "tags": {"building": "b1"},
                "readings": [{"seq": k, "ts": ts, "values": {"energy_import": 10.0 + 0.2 * k}}],
            }
        )
        out.append(
            ("epc/v1/civic/_site/telemetry", orjson.dumps({"v": 2, "site": "civic", "devices": blocks}))
        )
    return out


def intervals(url: str, db: str) -> list[Any]:
    doc = influx_query(url, "SELECT * FROM energy_interval GROUP BY *", db=db)
    series = doc["results"][0].get("series") or []  # type: ignore[index,union-attr]
    return sorted((sorted(s["tags"].items()), s["columns"], s["values"]) for s in series)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_at_ingest_equals_rollup_across_a_restart(
    mosquitto, influxdb, database, collectors, tmp_path, how: str
) -> None:
    """``stop``: the collector shuts down and stores a checkpoint; ``kill`` (SIGKILL): it dies
    with the readings since its start only in the journal, which the restart replays."""
    over = {
        "rollup": {
            "at_ingest": True,
            "timezones": {"civic": "Asia/Shanghai"},
            "max_rate_per_h": 1000,
            "open_every_s": 0,
        }
    }
    cfg = collector_config(
        mosquitto.port, influxdb.url, database, client_id="ingest-1", group="ingest", **over
    )
    pub = Publisher(mosquitto.port)
    c = collectors("c1", cfg).start()
    pub.publish(site_messages(range(0, 70)))
    assert wait_for(lambda: total(influxdb.url, database) == 3 * 70, 60), c.log()
    if how == "stop":
        c.stop()  # state stored in collector-intervals.sqlite beside the config
    else:
        c.kill()
    state = tmp_path / "collector-intervals.sqlite"
    with sqlite3.connect(state) as db:
        journal = db.execute("SELECT count(*) FROM log").fetchone()[0]
        checkpoints = db.execute("SELECT count(*) FROM checkpoint").fetchone()[0]
    if how == "stop":
        assert (journal, checkpoints) == (0, 1)  # a checkpoint replaced the journal
    else:
        assert journal > 0 and checkpoints == 0
    c = collectors("c1", cfg).start()
    pub.publish(site_messages(range(70, 150)))
    pub.publish(site_messages(range(60, 65)))  # a redelivery of older messages
    assert wait_for(lambda: total(influxdb.url, database) == 3 * 150, 60), c.log()
    c.stop()
    pub.close()
    at_ingest = intervals(influxdb.url, database)
    assert at_ingest, "no energy_interval points written at ingest"
    assert any(dict(tags).get("interval") == "1d" for tags, _, _ in at_ingest)

    influx_query(influxdb.url, "DROP MEASUREMENT energy_interval", db=database, method="POST")
    argv = [
        EPCWATCH,
        "collector",
        "rollup",
        "-c",
        str(c.config_path),
        "--from",
        "2025-01-01T00:00+08:00",
        "--to",
        "2025-01-03T00:00+08:00",
    ]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert intervals(influxdb.url, database) == at_ingest
