"""10,000 generated bad payloads, interleaved with good ones, through the real broker and collector:
every bad one dead-lettered with a reason (on MQTT, and durably in InfluxDB), every good one
stored.

The test once saw 9,999 of 10,000 dead letters: it started publishing when the collector had
connected, not when its subscription was confirmed, so a first message could reach a group
that had not subscribed yet, and the broker dropped it for nobody. The collector now logs
``MQTT subscribed`` on the SUBACK, and the test's collector fixture waits for that line."""

from __future__ import annotations

import base64
import random
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from epcwatch.collector.validate import Rejection, validate
from epcwatch.devservices.services import influx_query
from tests.collector.badpayloads import BAD, DEVICE, MAX_BYTES, SITE, TOPIC, bad_payloads
from tests.collector.conftest import (
    DeadLetters,
    Publisher,
    collector_config,
    counts_per_device,
    telemetry,
    wait_for,
)
from tests.support import poll_until

N_BAD = 10_000
N_GOOD = 2_000


def generate(n: int) -> list[tuple[str, bytes]]:
    """``n`` payloads drawn from the strategies (a derandomized generation run, no shrinking)."""
    out: list[tuple[str, bytes]] = []

    @settings(
        max_examples=n,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(bad_payloads)
    def collect(example: tuple[str, bytes]) -> None:
        out.append(example)

    collect()
    return out


@settings(max_examples=300, deadline=None)
@given(bad_payloads)
def test_every_generated_payload_is_refused_with_its_reason(example: tuple[str, bytes]) -> None:
    kind, payload = example
    r = validate(TOPIC, payload, MAX_BYTES)
    assert isinstance(r, Rejection), (kind, payload[:300])
    assert r.reason.value in BAD[kind][1], (kind, str(r))


@pytest.mark.integration
@pytest.mark.slow
def test_ten_thousand_bad_payloads(mosquitto, influxdb, database, collectors) -> None:
    bad = generate(N_BAD)
    # hypothesis may stop early once it has explored a small space; top up by cycling
    while len(bad) < N_BAD:
        bad += bad[: N_BAD - len(bad)]
    kinds = Counter(k for k, _ in bad)
    assert set(kinds) == set(BAD), kinds
    good = [
        (f"epc/v1/{SITE}/good{d}/telemetry", telemetry(SITE, f"good{d}", seq, 1_700_000_000_000 + seq * 1000))
        for d in range(4)
        for seq in range(N_GOOD // 4)
    ]
    messages = [(TOPIC, p) for _, p in bad] + good
    random.Random(5).shuffle(messages)

    group = "badload"
    dl = DeadLetters(mosquitto.port, group)
    pub = Publisher(mosquitto.port)
    cfg = collector_config(
        mosquitto.port,
        influxdb.url,
        database,
        client_id="bad-1",
        group=group,
        batch={"max_points": 5000, "max_wait_s": 0.5, "max_payload_bytes": MAX_BYTES},
    )
    c = collectors("bad", cfg)
    c.start()
    try:
        assert pub.publish(messages) == N_BAD + N_GOOD
        if not poll_until(lambda: len(dl) >= N_BAD, 300):
            got = Counter(base64.b64decode(d["payload_b64"]) for d in dl.items)
            missing = Counter(p for _, p in bad) - got
            kinds_missing = [k for k, p in bad if p in missing]
            pytest.fail(
                f"{len(dl)} dead letters; missing {sum(missing.values())} of kinds {kinds_missing}: "
                f"{list(missing)[:3]!r}; collector log: {c.log()[-3000:]}"
            )
        want = {f"good{d}": N_GOOD // 4 for d in range(4)}
        assert wait_for(lambda: counts_per_device(influxdb.url, database) == want, 120), counts_per_device(
            influxdb.url, database
        )
        assert len(dl) == N_BAD  # no good one dead-lettered, no bad one twice
        sent = Counter(p for _, p in bad)
        got = Counter(base64.b64decode(d["payload_b64"]) for d in dl.items)
        assert got == sent
        for d in dl.items:
            assert d["topic"] == TOPIC and d["collector"] == "bad-1"
            assert d["reason"].split(":")[0] in {
                "schema",
                "invalid_json",
                "not_utf8",
                "topic_mismatch",
                "oversized",
                "item_code",  # a generated tag set may carry an item code that is not national
            }
        assert "Traceback" not in c.log()
        assert c.proc is not None and c.proc.poll() is None  # never crashed
        assert DEVICE not in counts_per_device(influxdb.url, database)
        # durable: every distinct bad payload is a dead_letter point in InfluxDB (identical
        # payloads received in the same millisecond are one point, by design)
        q = 'SELECT count("bytes") FROM "dead_letter" GROUP BY "sha"'
        doc = influx_query(influxdb.url, q, db=database)
        series = doc["results"][0].get("series", [])  # type: ignore[index]
        assert len(series) == len(set(sent)), (len(series), len(set(sent)))
        assert sum(int(s["values"][0][1]) for s in series) <= N_BAD
    finally:
        pub.close()
        dl.close()
