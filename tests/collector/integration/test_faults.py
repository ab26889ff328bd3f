"""Fault injection with real servers: the database away under load until the collector has
failed repeatedly and a backlog has built up, a collector killed with SIGKILL mid-batch, two
collectors in a group with one killed. Nothing lost, nothing doubled (every reading's series +
timestamp stored once, counted per series)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.collector.conftest import (
    FreezableProxy,
    Publisher,
    collector_config,
    counts_per_device,
    telemetry,
    total,
    wait_for,
)

pytestmark = pytest.mark.integration
TS = 1_700_000_000_000


class Load:
    """Publishes ``per_tick`` messages of ``readings`` readings per device every ``tick`` seconds
    from a thread, until stopped; remembers how many readings each device was sent."""

    def __init__(
        self, port: int, devices: int, readings: int = 5, tick: float = 0.1, per_tick: int = 2
    ) -> None:
        self.pub = Publisher(port)
        self.devices = [f"dev{i}" for i in range(devices)]
        self.readings, self.tick, self.per_tick = readings, tick, per_tick
        self.sent = dict.fromkeys(self.devices, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            batch = []
            for _ in range(self.per_tick):
                for d in self.devices:
                    batch.append(
                        (
                            f"epc/v1/site/{d}/telemetry",
                            telemetry("site", d, seq, TS + seq * 1000, self.readings),
                        )
                    )
                    self.sent[d] += self.readings
                seq += self.readings
            self.pub.publish(batch)
            time.sleep(self.tick)

    def start(self) -> Load:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.pub.close()


def sent(load: Load) -> int:
    return sum(load.sent.values())


@pytest.mark.slow
def test_influxdb_away_under_load(mosquitto, private_influxdb, collectors) -> None:
    influx = private_influxdb
    db = "epcwatch"
    c = collectors(
        "c", collector_config(mosquitto.port, influx.url, db, client_id="outage-1", group="outage")
    )
    c.start()
    load = Load(mosquitto.port, devices=5).start()
    try:
        assert wait_for(lambda: total(influx.url, db) > 0, 30)
        influx.stop()
        at_stop = sent(load)
        # the outage lasts until the collector has failed to write again and again (the first
        # failure and the tenth retry are logged) and a backlog of 5,000 readings has reached
        # the broker while nothing could be stored
        assert wait_for(
            lambda: c.log().count("write failed, retrying") >= 2 and sent(load) - at_stop >= 5000, 300
        ), c.log()[-2000:]
        influx.start()
        # keep publishing until the collector writes again
        assert wait_for(lambda: "write succeeded after retries" in c.log(), 120), c.log()[-2000:]
    finally:
        load.stop()
    assert wait_for(lambda: counts_per_device(influx.url, db) == load.sent, 180), (
        counts_per_device(influx.url, db),
        load.sent,
        c.log()[-2000:],
    )
    assert "write failed, retrying" in c.log()
    assert "dead letter" not in c.log()


def test_sigkill_mid_batch_redelivers_unacked(mosquitto, influxdb, database, collectors) -> None:
    """A collector killed while a batch is on its way to the database: the batch was never
    acked, so the broker redelivers it to the restarted collector (same client id, persistent
    session) and every reading ends up stored once."""
    proxy = FreezableProxy(influxdb.port)
    cfg = collector_config(
        mosquitto.port, proxy.url, database, client_id="kill-1", group="kill", health={"interval_s": 3600}
    )
    c = collectors("c", cfg)
    c.start()
    pub = Publisher(mosquitto.port)
    sent = {f"k{i}": 0 for i in range(5)}

    def send(seqs: range) -> None:
        msgs = []
        for seq in seqs:
            for d in sent:
                msgs.append((f"epc/v1/site/{d}/telemetry", telemetry("site", d, seq, TS + seq * 1000)))
                sent[d] += 1
        pub.publish(msgs)

    try:
        send(range(400))
        assert wait_for(lambda: total(influxdb.url, database) == 2000, 60), total(influxdb.url, database)
        proxy.frozen.set()  # the next writes hang mid-request
        time.sleep(0.5)
        send(range(400, 500))
        time.sleep(2)
        # the collector holds the last 500 (received, being written, unacked)
        assert total(influxdb.url, database) < 2500
        c.kill()
        proxy.frozen.clear()
        c2 = collectors("c-restarted", cfg).start()  # as systemd would, same client id
        assert "session_present=True" in c2.log()
        assert wait_for(lambda: counts_per_device(influxdb.url, database) == sent, 60), (
            counts_per_device(influxdb.url, database),
            c2.log()[-2000:],
        )
        assert total(influxdb.url, database) == 2500
    finally:
        pub.close()
        proxy.close()


@pytest.mark.slow
def test_two_collectors_one_killed(mosquitto, influxdb, database, collectors) -> None:
    def cfg(n: int) -> dict:
        return collector_config(
            mosquitto.port,
            influxdb.url,
            database,
            client_id=f"pair-{n}",
            group="pair",
            batch={"max_points": 500, "max_wait_s": 0.5},
        )

    a, b = collectors("a", cfg(1)), collectors("b", cfg(2))
    a.start()
    b.start()
    load = Load(mosquitto.port, devices=6, readings=2, tick=0.05).start()
    try:
        assert wait_for(lambda: total(influxdb.url, database) > 2000, 60)
        a.kill()
        at_kill = total(influxdb.url, database)
        assert wait_for(lambda: total(influxdb.url, database) > at_kill + 2000, 60)  # b carries on
        at_restart = sent(load)
        a.start()  # as systemd would: its session's queued share is delivered to it
        # publish on until the restarted collector has written its share of new traffic
        assert wait_for(lambda: sent(load) > at_restart + 2000 and a.log().count("MQTT connected") == 2, 60)
    finally:
        load.stop()
    assert wait_for(lambda: counts_per_device(influxdb.url, database) == load.sent, 120), (
        counts_per_device(influxdb.url, database),
        load.sent,
    )
    assert "write failed" not in a.log() + b.log()
