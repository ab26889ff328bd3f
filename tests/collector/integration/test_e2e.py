"""End to end through real Mosquitto and InfluxDB: telemetry, health, status, dead letters."""

from __future__ import annotations

import base64

import orjson
import pytest

from epcwatch.devservices.services import influx_query
from tests.collector.conftest import (
    DeadLetters,
    Publisher,
    collector_config,
    counts_per_device,
    telemetry,
    wait_for,
)

pytestmark = pytest.mark.integration

TS = 1_700_000_000_000


def test_telemetry_health_status_and_dead_letters(mosquitto, influxdb, database, collectors) -> None:
    group = "e2e"
    dl = DeadLetters(mosquitto.port, group)
    pub = Publisher(mosquitto.port)
    c = collectors(
        "c1", collector_config(mosquitto.port, influxdb.url, database, client_id="e2e-1", group=group)
    )
    c.start()
    try:
        good = [
            (
                f"epc/v1/s1/{d}/telemetry",
                telemetry("s1", d, seq, TS + seq * 10_000, readings=3, building="b 1,=x", tenant="租户 A"),
            )
            for d in ("m1", "m2")
            for seq in range(0, 300, 3)
        ]
        bad = [
            ("epc/v1/s1/m1/telemetry", b"\xff not utf-8"),
            ("epc/v1/s1/m1/telemetry", telemetry("s2", "m1", 1, TS)),
            ("epc/v1/s1/m2/telemetry", telemetry("s1", "m2", 1, TS, item_code="01A40")),
            ("epc/v1/s1/health", b'{"site": "s1"}'),
        ]
        health = orjson.dumps(
            {
                "site": "s1",
                "ts": TS,
                "agent": "edge-1",
                "uptime_s": 10.5,
                "outbox_depth": 3,
                "outbox_bytes": 300,
                "connected": True,
                "devices": [{"device": "m1", "polls_ok": 9, "polls_failed": 1}],
            }
        )
        status = orjson.dumps({"site": "s1", "state": "online", "ts": TS + 1, "agent": "edge-1"})
        pub.publish(
            good[:100]
            + bad[:3]
            + [("epc/v1/s1/health", health), ("epc/v1/s1/status", status)]
            + good[100:]
            + bad[3:]
        )
        assert wait_for(lambda: counts_per_device(influxdb.url, database) == {"m1": 300, "m2": 300}, 60), (
            counts_per_device(influxdb.url, database),
            c.log()[-3000:],
        )
        assert wait_for(lambda: len(dl) == 4, 30), dl.items
        reasons = sorted(d["reason"].split(":")[0] for d in dl.items)
        assert reasons == ["item_code", "not_utf8", "schema", "topic_mismatch"]
        item = next(d["reason"] for d in dl.items if d["reason"].startswith("item_code"))
        assert item.startswith("item_code: tags.item_code: '01A40' is not a national item code (known: 01000")
        assert any(base64.b64decode(d["payload_b64"]) == b"\xff not utf-8" for d in dl.items)
        assert all(d["collector"] == "e2e-1" for d in dl.items)

        # tags survive escaping; fields keep the vocabulary's types
        rows = influx_query(influxdb.url, "SELECT * FROM meter WHERE device = 'm1' LIMIT 1", db=database)
        series = rows["results"][0]["series"][0]  # type: ignore[index]
        row = dict(zip(series["columns"], series["values"][0], strict=True))
        assert row["building"] == "b 1,=x" and row["tenant"] == "租户 A" and row["alarm_code"] == 0
        fk = influx_query(influxdb.url, "SHOW FIELD KEYS FROM meter", db=database)
        types = dict(fk["results"][0]["series"][0]["values"])  # type: ignore[index]
        assert types == {"active_power": "float", "energy_import": "float", "alarm_code": "integer"}

        agent = influx_query(influxdb.url, "SELECT outbox_depth, connected FROM agent_health", db=database)
        values = agent["results"][0]["series"][0]["values"]  # type: ignore[index]
        assert [v[1:] for v in values] == [[3, True], [None, True]]
        dev = influx_query(influxdb.url, "SELECT polls_ok, polls_failed FROM device_health", db=database)
        assert dev["results"][0]["series"][0]["values"] == [[TS, 9, 1]]  # type: ignore[index]
        # 200 telemetry + 4 bad + health + status messages; 600 readings + agent_health, device_health
        # and the status point; 4 dead letters
        assert wait_for(lambda: _health(influxdb.url, database) == (206, 603, 4), 20), _health(
            influxdb.url, database
        )
    finally:
        pub.close()
        dl.close()


def _health(url: str, db: str) -> tuple[int, int, int]:
    doc = influx_query(
        url, "SELECT max(messages), max(points), max(dead_letters) FROM collector_health", db=db
    )
    series = doc["results"][0].get("series")  # type: ignore[index,union-attr]
    return tuple(int(v) for v in series[0]["values"][0][1:]) if series else (0, 0, 0)  # type: ignore[return-value]


def test_v2_writer_into_victoriametrics(mosquitto, victoria, tmp_path, collectors) -> None:
    """The v2 writer (influxdb-client, synchronous) against a real /api/v2/write: VictoriaMetrics."""
    import json
    import urllib.parse
    import urllib.request

    cfg = collector_config(
        mosquitto.port,
        victoria.url,
        "unused",
        client_id="v2-1",
        group="v2grp",
        influx={"writer": "v2", "bucket": "epcwatch", "org": "city", "token": {"value": "not-checked"}},
    )
    c = collectors("v2", cfg)
    c.start()
    pub = Publisher(mosquitto.port)
    try:
        n = pub.publish(
            (f"epc/v1/s9/v{d}/telemetry", telemetry("s9", f"v{d}", seq, TS + seq * 1000, readings=5))
            for d in range(3)
            for seq in range(0, 200, 5)
        )
        assert n == 120

        def stored() -> int:
            q = urllib.parse.urlencode({"match[]": '{__name__="meter_active_power",site="s9"}'})
            with urllib.request.urlopen(f"{victoria.url}/api/v1/export?{q}", timeout=10) as r:
                lines = [json.loads(x) for x in r.read().splitlines() if x.strip()]
            return sum(len(x["timestamps"]) for x in lines)

        assert wait_for(stored, 60) and wait_for(lambda: stored() == 600, 60), (stored(), c.log()[-2000:])
        assert "write failed" not in c.log()
    finally:
        pub.close()


def test_periodic_rollup_while_running(mosquitto, influxdb, database, collectors) -> None:
    import time

    now = int(time.time() * 1000)
    start = now - now % (15 * 60_000) - 30 * 60_000  # two whole quarters ago
    cfg = collector_config(
        mosquitto.port,
        influxdb.url,
        database,
        client_id="roll-1",
        group="roll",
        rollup={"enabled": True, "every_s": 1, "lookback_h": 2, "max_rate_per_h": 1000},
    )
    c = collectors("roll", cfg)
    c.start()
    pub = Publisher(mosquitto.port)
    try:
        # a meter counting 0.5 kWh per minute for 30 minutes
        msgs = [
            (
                "epc/v1/s5/r1/telemetry",
                orjson.dumps(
                    {
                        "site": "s5",
                        "device": "r1",
                        "kind": "meter",
                        "readings": [
                            {"seq": k, "ts": start + k * 60_000, "values": {"energy_import": 100 + 0.5 * k}}
                        ],
                    }
                ),
            )
            for k in range(31)
        ]
        pub.publish(msgs)

        def quarters() -> list[list[object]]:
            doc = influx_query(
                influxdb.url,
                "SELECT energy_import, coverage FROM energy_interval "
                f"WHERE interval = '15m' AND time >= {start}ms AND time < {start + 30 * 60_000}ms",
                db=database,
            )
            series = doc["results"][0].get("series")  # type: ignore[index,union-attr]
            return series[0]["values"] if series else []

        assert wait_for(lambda: len(quarters()) == 2, 60), (quarters(), c.log()[-2000:])
        assert [round(float(q[1]), 9) for q in quarters()] == [7.5, 7.5]  # type: ignore[arg-type]
        assert [q[2] for q in quarters()] == [1.0, 1.0]
    finally:
        pub.close()
