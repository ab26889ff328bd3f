"""Signed messages on the way in: checked against the keyring, stored with what the verifier needs."""

from __future__ import annotations

import base64

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epcwatch import provenance
from epcwatch.collector.pipeline import Inbound, Pipeline
from epcwatch.provenance import ChainReading, Keyring, TrustedKey
from epcwatch.verify.audit import MessageRecord, StoredReading, audit_device
from tests.collector.unit.test_pipeline import FakeBroker, FakeWriter

T0 = 1_700_000_000_000
KEY = Ed25519PrivateKey.generate()
PUB = provenance.public_bytes(KEY.public_key())


def signed(
    seqs: range, key: Ed25519PrivateKey = KEY, prev: bytes = provenance.GENESIS, site: str = "s1"
) -> bytes:
    readings = [{"seq": s, "ts": T0 + s * 1000, "values": {"energy_import": 100.0 + s}} for s in seqs]
    chain = [ChainReading(r["seq"], r["ts"], r["values"]) for r in readings]  # type: ignore[arg-type]
    sr = provenance.signed_range(site, "d1", chain, prev)
    proof = {
        "kid": provenance.key_id(key.public_key()),
        "first_prev": base64.b64encode(prev).decode(),
        "sig": base64.b64encode(provenance.sign(key, sr)).decode(),
    }
    return orjson.dumps({"site": "s1", "device": "d1", "kind": "meter", "readings": readings, "proof": proof})


def rig(keyring: Keyring | None) -> tuple[Pipeline, FakeWriter, FakeBroker]:
    w, b = FakeWriter(), FakeBroker()
    p = Pipeline(w, b, group="g", collector="c", health_interval_s=1e9, keyring=keyring)
    p.health.line(0.0, p.monotonic())
    return p, w, b


@pytest.fixture(params=[1, 2], ids=["schema1", "schema2"])
def wire(request: pytest.FixtureRequest) -> int:
    """Every test runs with schema-1 messages and with schema-2 site messages (the proof on the
    device block); the edge sends schema 2 by default."""
    return int(request.param)


def site_message(*payloads: bytes) -> bytes:
    """Schema-1 messages of site s1 as one schema-2 site message, one device block each."""
    blocks = [{k: v for k, v in orjson.loads(x).items() if k not in ("v", "site")} for x in payloads]
    return orjson.dumps({"v": 2, "site": "s1", "devices": blocks})


def add(p: Pipeline, mid: int, payload: bytes, wire: int = 1) -> None:
    if wire == 2:
        p.add(Inbound(mid, 1, "epc/v1/s1/_site/telemetry", site_message(payload), T0 + 10**6))
    else:
        p.add(Inbound(mid, 1, "epc/v1/s1/d1/telemetry", payload, T0 + 10**6))


def parse_stored(lines: set[str]) -> tuple[list[StoredReading], list[MessageRecord]]:
    """Read the written line protocol back the way the verifier reads InfluxDB."""
    readings, records = [], []
    for line in lines:
        key, fields, ts = line.split(" ")
        f = dict(kv.split("=", 1) for kv in fields.split(","))
        if key.startswith("provenance,"):
            d = base64.b64decode(f["digests"].strip('"'))
            first, last = int(f["first_seq"][:-1]), int(f["last_seq"][:-1])
            sr = provenance.SignedRange(
                "s1",
                "d1",
                first,
                last,
                base64.b64decode(f["first_prev"].strip('"')),
                tuple(d[i : i + 32] for i in range(0, len(d), 32)),
            )
            sig = base64.b64decode(f["sig"].strip('"'))
            records.append(MessageRecord(sr, sig, f["kid"].strip('"'), int(f["last_ts"][:-1])))
        elif key.startswith("meter,"):
            readings.append(
                StoredReading(int(f["seq"][:-1]), int(ts), {"energy_import": float(f["energy_import"])})
            )
    return readings, records


def test_signed_messages_are_stored_with_seq_and_a_provenance_point(wire: int) -> None:
    p, w, b = rig(Keyring([TrustedKey("s1", PUB)]))
    first = signed(range(0, 3))
    head = provenance.signed_range(
        "s1",
        "d1",
        [ChainReading(s, T0 + s * 1000, {"energy_import": 100.0 + s}) for s in range(3)],
        provenance.GENESIS,
    ).head
    add(p, 1, first, wire)
    add(p, 2, signed(range(3, 5), prev=head), wire)
    p.flush()
    assert b.acked == [1, 2] and b.letters == []
    readings, records = parse_stored(w.stored)
    assert sorted(r.seq for r in readings) == [0, 1, 2, 3, 4] and len(records) == 2
    rep = audit_device("s1", "d1", readings, records, Keyring([TrustedKey("s1", PUB)]), expected_first_seq=0)
    assert rep.ok and rep.verified == [0, 1, 2, 3, 4]


def test_a_message_received_twice_is_two_provenance_points(wire: int) -> None:
    p, w, _ = rig(None)
    add(p, 1, signed(range(0, 2)), wire)
    add(p, 2, signed(range(0, 2)), wire)  # same receive ms
    p.flush()
    readings, records = parse_stored(w.stored)
    assert len(readings) == 2 and len(records) == 2
    assert audit_device("s1", "d1", readings, records, Keyring([TrustedKey("s1", PUB)])).replayed == [(0, 1)]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (signed(range(0, 2), key=Ed25519PrivateKey.generate()), "unknown key"),
        (signed(range(0, 2), site="s2"), "signature does not verify"),  # signed for another site
    ],
)
def test_bad_proofs_are_dead_lettered_with_the_reason(payload: bytes, reason: str, wire: int) -> None:
    p, w, b = rig(Keyring([TrustedKey("s1", PUB)]))
    add(p, 1, payload, wire)
    p.flush()
    # nothing of the message is stored; its dead letter is (durably, in InfluxDB as well)
    assert b.acked == [1] and {line.split(",", 1)[0] for line in w.stored} <= {"dead_letter"}
    assert len(b.letters) == 1 and b.letters[0].reason.startswith("provenance: " + reason)


def test_revoked_and_foreign_keys_are_refused(wire: int) -> None:
    other = Ed25519PrivateKey.generate()
    ring = Keyring(
        [TrustedKey("s1", PUB, revoked=True), TrustedKey("s2", provenance.public_bytes(other.public_key()))]
    )
    p, _, b = rig(ring)
    add(p, 1, signed(range(0, 1)), wire)
    add(p, 2, signed(range(0, 1), key=other), wire)
    p.flush()
    assert [letter.reason.split(" 0")[0].split(" ")[1:3] for letter in b.letters] == [
        ["revoked", "key"],
        ["key", "of"],
    ]


def test_unsigned_messages_still_flow_without_provenance(wire: int) -> None:
    p, w, b = rig(Keyring([TrustedKey("s1", PUB)]))
    add(
        p,
        1,
        orjson.dumps(
            {
                "site": "s1",
                "device": "d1",
                "kind": "meter",
                "readings": [{"seq": 0, "ts": T0, "values": {"energy_import": 1.0}}],
            }
        ),
        wire,
    )
    p.flush()
    assert b.acked == [1] and b.letters == [] and len(w.stored) == 1
    assert not any(line.startswith("provenance") for line in w.stored)


def _head(seqs: range) -> bytes:
    chain = [ChainReading(s, T0 + s * 1000, {"energy_import": 100.0 + s}) for s in seqs]
    return provenance.signed_range("s1", "d1", chain, provenance.GENESIS).head


def test_a_broken_link_is_dead_lettered_and_a_gap_recorded(wire: int) -> None:
    p, _, b = rig(Keyring([TrustedKey("s1", PUB)]))
    add(p, 1, signed(range(0, 3)), wire)
    add(p, 2, signed(range(3, 5), prev=bytes(range(32))), wire)  # follows seq 2 but links elsewhere
    add(p, 3, signed(range(6, 8), prev=_head(range(0, 6))), wire)  # seq 3..5 never arrived
    add(p, 4, signed(range(0, 3)), wire)  # a re-delivery: not a link to check
    p.flush()
    assert [letter.reason for letter in b.letters] == ["provenance: broken link: seq 3 does not follow seq 2"]
    assert p.chain_gaps == [("s1", "d1", 3, 5)]
    assert b.acked == [1, 2, 3, 4]


def other_device(seqs: range, key: Ed25519PrivateKey = KEY) -> bytes:
    doc = orjson.loads(signed(seqs, key=key))
    readings = doc["readings"]
    chain = [ChainReading(r["seq"], r["ts"], r["values"]) for r in readings]
    sr = provenance.signed_range("s1", "d2", chain, provenance.GENESIS)
    doc["device"] = "d2"
    doc["proof"]["sig"] = base64.b64encode(provenance.sign(key, sr)).decode()
    return orjson.dumps(doc)


def test_a_site_message_with_one_bad_block_is_refused_whole() -> None:
    p, w, b = rig(Keyring([TrustedKey("s1", PUB)]))
    bad = other_device(range(0, 2), key=Ed25519PrivateKey.generate())
    p.add(Inbound(1, 1, "epc/v1/s1/_site/telemetry", site_message(signed(range(0, 2)), bad), T0))
    p.flush()
    assert b.acked == [1] and {line.split(",", 1)[0] for line in w.stored} <= {"dead_letter"}
    assert b.letters[0].reason.startswith("provenance: unknown key")
    # nothing of the refused message is remembered: d1's chain starts again at seq 0
    assert p._heads == {}
    good = site_message(signed(range(0, 2)), other_device(range(0, 2)))
    p.add(Inbound(2, 1, "epc/v1/s1/_site/telemetry", good, T0))
    p.flush()
    assert b.acked == [1, 2] and len(b.letters) == 1
    records = [line for line in w.stored if line.startswith("provenance,")]
    assert sorted(r.split(" ")[0] for r in records) == [
        "provenance,device=d1,site=s1",
        "provenance,device=d2,site=s1",
    ]


def test_signed_site_messages_are_checked_on_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    import epcwatch.collector.pipeline as pipeline

    def no_model(*_: object, **__: object) -> None:
        raise AssertionError("the signed site message left the fast path")

    monkeypatch.setattr(pipeline, "validate", no_model)
    p, w, b = rig(Keyring([TrustedKey("s1", PUB)]))
    p.add(
        Inbound(
            1,
            1,
            "epc/v1/s1/_site/telemetry",
            site_message(signed(range(0, 3)), other_device(range(0, 3))),
            T0,
        )
    )
    p.add(
        Inbound(
            2, 1, "epc/v1/s1/_site/telemetry", site_message(signed(range(3, 4), prev=_head(range(0, 3)))), T0
        )
    )
    forged = site_message(signed(range(4, 5), prev=_head(range(0, 4)), key=Ed25519PrivateKey.generate()))
    p.add(Inbound(3, 1, "epc/v1/s1/_site/telemetry", forged, T0))
    p.flush()
    assert b.acked == [1, 2, 3] and [x.reason.split(" ")[1:3] for x in b.letters] == [["unknown", "key"]]
    readings, records = parse_stored(
        {x for x in w.stored if ",device=d1," in x or x.startswith("meter,device=d1")}
    )
    rep = audit_device("s1", "d1", readings, records, Keyring([TrustedKey("s1", PUB)]), expected_first_seq=0)
    assert rep.ok and rep.verified == [0, 1, 2, 3]
