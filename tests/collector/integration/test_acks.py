"""End-to-end acknowledgements and durable dead letters through real Mosquitto and InfluxDB: the
collector confirms on each site's ack topic exactly the seqs it stored, a dead letter is in
InfluxDB before its message is confirmed, and ``epcwatch collector dead-letters`` lists it."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from tests.collector.conftest import (
    EPCWATCH,
    Acks,
    Publisher,
    collector_config,
    counts_per_device,
    telemetry,
    wait_for,
)

pytestmark = pytest.mark.integration
TS = 1_700_000_000_000


def test_acks_name_what_is_stored_and_dead_letters_are_in_influxdb(
    mosquitto, influxdb, database, collectors, tmp_path
) -> None:
    acks = Acks(mosquitto.port)
    pub = Publisher(mosquitto.port)
    cfg = collector_config(mosquitto.port, influxdb.url, database, client_id="acks-1", group="acks")
    c = collectors("acks", cfg).start()
    bad = telemetry("s-b", "m1", 50, TS).replace(b'"active_power":50.0', b'"active_power":"x"')
    try:
        msgs = [
            (f"epc/v1/s-a/{d}/telemetry", telemetry("s-a", d, seq, TS + seq * 1000, readings=5))
            for d in ("m1", "m2")
            for seq in range(0, 100, 5)
        ]
        msgs += [
            ("epc/v1/s-b/m1/telemetry", telemetry("s-b", "m1", seq, TS + seq * 1000)) for seq in range(50)
        ]
        msgs.append(("epc/v1/s-b/m1/telemetry", bad))  # schema: dead-lettered, seq 50 claimed
        msgs.append(("epc/v1/s-b/m2/telemetry", b"\xff not json"))  # no seq to confirm
        pub.publish(msgs)
        want = {("s-a", "m1"): set(range(100)), ("s-a", "m2"): set(range(100)), ("s-b", "m1"): set(range(51))}
        assert wait_for(lambda: acks.seqs() == want, 60), (acks.seqs(), c.log()[-2000:])
        assert counts_per_device(influxdb.url, database) == {"m1": 150, "m2": 100}
        # acks are batched: far fewer ack messages than telemetry messages
        assert len(acks.acks) < len(msgs) / 4, len(acks.acks)
        assert all(a.collector == "acks-1" for a in acks.acks)
    finally:
        pub.close()
        acks.close()

    out = subprocess.run(
        [EPCWATCH, "collector", "dead-letters", "--config", str(c.config_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    by_device = {r["device"]: r for r in rows}
    assert set(by_device) == {"m1", "m2"} and all(r["site"] == "s-b" for r in rows)
    assert by_device["m1"]["reason"] == "schema" and by_device["m2"]["reason"] == "not_utf8"
    assert by_device["m1"]["sha256"] == hashlib.sha256(bad).hexdigest()
    assert by_device["m1"]["bytes"] == len(bad) and by_device["m1"]["excerpt"] == bad[:200].decode()
    assert by_device["m2"]["topic"] == "epc/v1/s-b/m2/telemetry"
    one = subprocess.run(
        [EPCWATCH, "collector", "dead-letters", "--config", str(c.config_path), "--site", "s-a"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert one.returncode == 0 and "(0, newest first)" in one.stdout, one.stdout + one.stderr
