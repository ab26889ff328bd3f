"""The write path's policy with honest fakes: what is acked, when, in which order."""

from __future__ import annotations

import base64
from collections.abc import Sequence

import orjson
import pytest

from epcwatch.collector.deadletters import claimed_seqs, dead_letter_line
from epcwatch.collector.errors import (
    RejectedWriteError,
    StoppedError,
    TooLargeError,
    TransientWriteError,
)
from epcwatch.collector.pipeline import Backoff, Inbound, Pipeline
from epcwatch.wire import Ack, DeadLetter


def data(stored: set[str]) -> set[str]:
    """The stored lines that are not dead letters."""
    return {line for line in stored if not line.startswith("dead_letter,")}


class FakeWriter:
    """Stores lines like InfluxDB 1.x: a float field stays float, conflicting lines are refused."""

    name = "fake"

    def __init__(self) -> None:
        self.stored: set[str] = set()
        self.calls = 0
        self.failures: list[Exception] = []
        self.refuse: set[str] = set()
        self.max_lines: int | None = None
        self.message = (
            'partial write: field type conflict: input field "x" on measurement "m" is type integer'
        )

    def write(self, body: bytes) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        lines = body.decode().split("\n")
        if self.max_lines is not None and len(lines) > self.max_lines:
            raise TooLargeError("413: too large")
        bad = [line for line in lines if line in self.refuse]
        self.stored |= {line for line in lines if line not in self.refuse}
        if bad:
            raise RejectedWriteError(self.message)

    def close(self) -> None:
        pass


class FakeBroker:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.letters: list[DeadLetter] = []
        self.confirmed: list[Ack] = []
        self.events: list[str] = []
        self.fail_dead_letters = False

    def ack(self, items: Sequence[Inbound]) -> None:
        self.acked += [i.mid for i in items]
        self.events.append("puback")

    def dead_letter(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail_dead_letters:
            raise RuntimeError("broker gone")
        self.letters += letters
        self.events.append("dead letter")

    def confirm(self, acks: Sequence[Ack]) -> None:
        self.confirmed += acks
        self.events.append("e2e ack")

    def stored_ranges(self) -> dict[tuple[str, str], set[int]]:
        out: dict[tuple[str, str], set[int]] = {}
        for a in self.confirmed:
            for d, ranges in a.devices.items():
                for first, last in ranges:
                    out.setdefault((a.site, d), set()).update(range(first, last + 1))
        return out


def telemetry(seq: int, device: str = "d1", **values: object) -> bytes:
    return orjson.dumps(
        {
            "site": "s1",
            "device": device,
            "kind": "meter",
            "readings": [
                {"seq": seq, "ts": 1_700_000_000_000 + seq, "values": values or {"active_power": 1.0}}
            ],
        }
    )


def item(mid: int, payload: bytes, device: str = "d1") -> Inbound:
    return Inbound(mid, 1, f"epc/v1/s1/{device}/telemetry", payload, 1_700_000_000_000)


@pytest.fixture
def rig() -> tuple[Pipeline, FakeWriter, FakeBroker, list[float]]:
    writer, broker, waits = FakeWriter(), FakeBroker(), []

    def wait(s: float) -> bool:
        waits.append(s)
        return False

    p = Pipeline(
        writer,
        broker,
        group="g",
        collector="c",
        backoff=Backoff(0.5, 4.0, 60.0),
        wait=wait,
        health_interval_s=1e9,
    )
    p.health.line(0.0, p.monotonic())  # health due later, not in these batches
    return p, writer, broker, waits


def test_acks_in_order_after_the_write(rig) -> None:
    p, writer, broker, _ = rig
    for mid in (5, 3, 9):
        p.add(item(mid, telemetry(mid)))
    assert broker.acked == [] and writer.calls == 0
    p.flush()
    assert broker.acked == [5, 3, 9]
    assert len(writer.stored) == 3 and writer.calls == 1


def test_transient_errors_retried_with_capped_backoff_and_retry_after(rig) -> None:
    p, writer, broker, waits = rig
    writer.failures = [TransientWriteError("down") for _ in range(6)] + [TransientWriteError("429", 7.0)]
    p.add(item(1, telemetry(1)))
    p.flush()
    assert broker.acked == [1] and writer.calls == 8
    assert all(w <= 4.0 for w in waits[:6]) and waits[-1] == 7.0
    assert waits[5] >= 2.0  # grew to the cap (jittered within [cap/2, cap])


def test_stop_during_retries_acks_nothing(rig) -> None:
    p, writer, broker, _ = rig
    writer.failures = [TransientWriteError("down")] * 3
    p.wait = lambda s: True
    p.add(item(1, telemetry(1)))
    with pytest.raises(StoppedError):
        p.flush()
    assert broker.acked == [] and broker.letters == []


def test_invalid_messages_dead_lettered_with_reason_then_acked_in_order(rig) -> None:
    p, writer, broker, _ = rig
    p.add(item(1, telemetry(1)))
    p.add(item(2, b"\xff\xfe"))
    p.add(item(3, telemetry(3, device="other")))  # topic says d1
    p.add(item(4, telemetry(4)))
    p.flush()
    assert broker.acked == [1, 2, 3, 4]
    assert [dl.reason.split(":")[0] for dl in broker.letters] == ["not_utf8", "topic_mismatch"]
    assert base64.b64decode(broker.letters[0].payload_b64) == b"\xff\xfe"
    assert len(data(writer.stored)) == 2
    # the dead letters are in the database too, before anything is acknowledged
    dead = sorted(line for line in writer.stored if line.startswith("dead_letter,"))
    assert len(dead) == 2 and "reason=not_utf8" in dead[0] + dead[1]
    assert broker.events == ["dead letter", "e2e ack", "puback"]
    # the topic_mismatch letter claims d1's seq 3 (its topic's device): durably handled, acked
    assert broker.stored_ranges() == {("s1", "d1"): {1, 3, 4}}
    assert p.stats.dead_letters == 2 and p.stats.messages == 4 and p.stats.points == 2


def test_partial_write_dead_letters_the_refused_and_writes_the_rest(rig) -> None:
    p, writer, broker, _ = rig
    bad = "meter,device=d1,site=s1 alarm_code=3i 1700000000002"
    writer.refuse = {bad}
    writer.message = (
        'partial write: field type conflict: input field "alarm_code" on measurement "meter" is type '
        "integer, already exists as type float dropped=1"
    )
    for seq in (1, 2, 3):
        p.add(item(seq, telemetry(seq, **({"alarm_code": 3} if seq == 2 else {"active_power": 1.0}))))
    p.flush()
    assert broker.acked == [1, 2, 3]
    assert len(broker.letters) == 1 and broker.letters[0].reason.startswith("rejected_by_database")
    assert "alarm_code" in broker.letters[0].reason
    # the batch, then the rest again, then the dead letter
    assert len(data(writer.stored)) == 2 and writer.calls == 3
    assert broker.stored_ranges() == {("s1", "d1"): {1, 2, 3}}


def test_unexplained_refusal_is_bisected(rig) -> None:
    p, writer, broker, _ = rig
    writer.message = "partial write: points beyond retention policy dropped=1"
    lines = []
    for seq in range(1, 17):
        p.add(item(seq, telemetry(seq)))
        lines.append(f"meter,device=d1,site=s1 active_power=1.0 {1_700_000_000_000 + seq}")
    writer.refuse = {lines[10]}
    p.flush()
    assert broker.acked == list(range(1, 17))
    assert [orjson.loads(base64.b64decode(d.payload_b64))["readings"][0]["seq"] for d in broker.letters] == [
        11
    ]
    assert data(writer.stored) == set(lines) - {lines[10]}


def test_too_large_is_split(rig) -> None:
    p, writer, broker, _ = rig
    writer.max_lines = 3
    for seq in range(10):
        p.add(item(seq, telemetry(seq)))
    p.flush()
    assert len(writer.stored) == 10 and broker.letters == [] and len(broker.acked) == 10
    assert broker.confirmed == [Ack(site="s1", devices={"d1": [(0, 9)]}, collector="c")]


def test_unconfirmed_dead_letter_blocks_the_ack(rig) -> None:
    p, _, broker, _ = rig
    broker.fail_dead_letters = True
    p.add(item(1, b"nope"))
    with pytest.raises(RuntimeError):
        p.flush()
    assert broker.acked == [] and broker.confirmed == []


def test_one_end_to_end_ack_per_site_with_coalesced_ranges(rig) -> None:
    p, _, broker, _ = rig
    multi = orjson.dumps(
        {
            "site": "s1",
            "device": "d2",
            "kind": "meter",
            "readings": [
                {"seq": s, "ts": 1_700_000_000_000 + s, "values": {"active_power": 1.0}}
                for s in (7, 8, 9, 12)
            ],
        }
    )
    for seq in (1, 2, 3, 5):
        p.add(item(seq, telemetry(seq)))
    p.add(item(10, multi, device="d2"))
    p.add(Inbound(11, 1, "epc/v1/s2/d1/telemetry", telemetry(4).replace(b'"s1"', b'"s2"'), 1))
    p.flush()
    assert sorted(broker.confirmed, key=lambda a: a.site) == [
        Ack(site="s1", devices={"d1": [(1, 3), (5, 5)], "d2": [(7, 9), (12, 12)]}, collector="c"),
        Ack(site="s2", devices={"d1": [(4, 4)]}, collector="c"),
    ]
    assert broker.events == ["e2e ack", "puback"]


def test_dead_letter_not_in_the_database_is_not_acknowledged(rig) -> None:
    """A message is "stored" for the edge only once its dead letter is in InfluxDB: while that
    write fails, nothing of the batch is acknowledged, end to end or to the broker."""
    p, writer, broker, _ = rig
    p.add(item(1, telemetry(1)))
    p.add(item(2, telemetry(2, active_power="x")))  # schema: a string is not a number
    sealed = p.seal()
    refused = p.write(sealed)  # both written: the telemetry and the dead letter
    assert any(line.startswith("dead_letter,") for line in writer.stored)
    writer.failures = [TransientWriteError("down")] * 3
    p.wait = lambda s: True  # stopping while the dead letter's write is retried
    p.add(item(3, telemetry(3)))
    p.add(item(4, b"{}"))
    with pytest.raises(StoppedError):
        p.flush()
    p.finish(sealed, refused)
    assert broker.stored_ranges() == {("s1", "d1"): {1, 2}} and broker.acked == [1, 2]


def test_dead_letter_point_carries_reason_topic_excerpt_and_hash() -> None:
    payload = b'{"site":"s1","device":"d1","readings":[{"seq":4}]}\x00' + b"x" * 500
    line = dead_letter_line(
        topic="epc/v1/s1/d1/telemetry", reason="schema: readings.0.ts: missing", payload=payload,
        received_ms=1_700_000_000_123, collector="c1",
    )  # fmt: skip
    import hashlib

    digest = hashlib.sha256(payload).hexdigest()
    assert line.startswith(f"dead_letter,collector=c1,device=d1,reason=schema,sha={digest[:16]},site=s1 ")
    assert line.endswith(" 1700000000123")
    assert 'topic="epc/v1/s1/d1/telemetry"' in line and f'sha256="{digest}"' in line
    assert 'reason_text="schema: readings.0.ts: missing"' in line and f"bytes={len(payload)}i" in line
    assert "\\x00" in line and "x" * 200 not in line  # control characters shown, excerpt bounded
    assert claimed_seqs("epc/v1/s1/d1/telemetry", payload[:-501]) == [("s1", "d1", [(4, 4)])]
    assert claimed_seqs("epc/v1/s1/d1/telemetry", payload) == []  # not JSON
    assert claimed_seqs("somewhere/else", payload[:-501]) == []
    assert claimed_seqs("epc/v1/s1/health", payload[:-501]) == []


def test_a_dead_lettered_site_message_claims_the_seqs_of_every_device_block() -> None:
    # schema 2: one message, several devices; each device's seqs are acknowledged once the dead
    # letter is stored, so the edge stops sending a message no collector can ever store
    doc = {
        "v": 2,
        "site": "s1",
        "devices": [
            {"device": "m1", "kind": "meter", "readings": [{"seq": 3, "ts": 1, "values": {}}, {"seq": 4}]},
            {"device": "m2", "kind": "meter", "readings": [{"seq": 9, "ts": 1, "values": {}}]},
            {"device": "NOT AN ID", "readings": [{"seq": 1}]},
            {"device": "m3", "readings": [{"seq": "7"}]},  # no seq a device could claim
        ],
    }
    assert claimed_seqs("epc/v1/s1/_site/telemetry", orjson.dumps(doc)) == [
        ("s1", "m1", [(3, 4)]),
        ("s1", "m2", [(9, 9)]),
    ]


def test_health_and_status_messages_become_points(rig) -> None:
    p, writer, broker, _ = rig
    health = {
        "site": "s1",
        "ts": 1_700_000_000_000,
        "agent": "edge-1",
        "uptime_s": 5,
        "outbox_depth": 2,
        "outbox_bytes": 100,
        "connected": True,
        "devices": [{"device": "d1", "polls_ok": 3, "polls_failed": 1, "last_latency_ms": 12}],
    }
    p.add(Inbound(1, 1, "epc/v1/s1/health", orjson.dumps(health), 1))
    p.add(
        Inbound(
            2, 1, "epc/v1/s1/status", b'{"site":"s1","state":"offline","agent":"edge-1"}', 1_700_000_000_500
        )
    )
    p.flush()
    assert broker.acked == [1, 2] and broker.letters == []
    assert any(s.startswith("agent_health,agent=edge-1,site=s1 outbox_depth=2i") for s in writer.stored)
    assert any(
        s.startswith("device_health,device=d1,site=s1 polls_ok=3i,polls_failed=1i")
        and "last_latency_ms=12.0" in s
        for s in writer.stored
    )
    assert "agent_health,agent=edge-1,site=s1 connected=false 1700000000500" in writer.stored


def test_collector_health_point(rig) -> None:
    p, writer, _, _ = rig
    p.health.interval_s = 0.0
    p.add(item(1, telemetry(1)))
    p.add(item(2, b"bad"))
    p.flush()
    p.flush()  # the second health point counts the first batch
    health = sorted(s for s in writer.stored if s.startswith("collector_health,collector=c,group=g "))
    assert any(
        "messages=2i" in h and "points=1i" in h and "dead_letters=1i" in h and "lag_ms=" in h for h in health
    )


def test_parsed_topics_are_remembered_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Telemetry topics are parsed once (a valid one to its site and device, anything else to
    None, so it goes to the model and its dead letter), and the memo never outgrows its bound."""
    from epcwatch.collector import pipeline

    monkeypatch.setattr(pipeline, "_TOPICS", {})
    monkeypatch.setattr(pipeline, "_MAX_TOPICS", 5)
    t = pipeline._telemetry_topic("epc/v1/s1/m1/telemetry")
    assert t is not None and (t.site, t.device, t.channel) == ("s1", "m1", "telemetry")
    assert pipeline._telemetry_topic("epc/v1/s1/m1/telemetry") is t  # the same object: remembered
    site = pipeline._telemetry_topic("epc/v1/s1/_site/telemetry")
    assert site is not None and (site.device, site.channel) == (None, "site_telemetry")
    for bad in ("epc/v1/S1/m1/telemetry", "epc/v1/s1/status", "epc/v2/s1/m1/telemetry", "x/y"):
        assert pipeline._telemetry_topic(bad) is None
        assert pipeline._telemetry_topic(bad) is None
    for i in range(20):
        assert pipeline._telemetry_topic(f"epc/v1/s1/d{i}/telemetry") is not None
        assert len(pipeline._TOPICS) <= 5
