"""The verification procedure flags each kind of tampering precisely (which seq), and passes a
key rotation."""

from __future__ import annotations

from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from epcwatch import provenance as p
from epcwatch.verify.audit import MessageRecord, StoredReading, audit_device

SITE, DEV = "civic-centre", "b1-main"
T0 = 1_735_689_600_000


def signed_history(
    n: int, per_message: int, keys: list[tuple[Ed25519PrivateKey, int]]
) -> tuple[list[StoredReading], list[MessageRecord]]:
    """``n`` readings in messages of ``per_message``; ``keys``: (key, first seq it signs)."""
    readings: list[StoredReading] = []
    records: list[MessageRecord] = []
    prev = p.GENESIS
    for first in range(0, n, per_message):
        batch = [
            p.ChainReading(s, T0 + 60_000 * s, {"energy_import": 100.0 + s / 10, "active_power": 5000.0})
            for s in range(first, min(n, first + per_message))
        ]
        readings += [StoredReading(r.seq, r.ts, r.values, r.quality) for r in batch]
        sr = p.signed_range(SITE, DEV, batch, prev)
        key = [k for k, start in keys if start <= batch[-1].seq][-1]
        records.append(MessageRecord(sr, p.sign(key, sr), p.key_id(key.public_key()), batch[-1].ts))
        prev = sr.head
    return readings, records


def ring(*keys: tuple[Ed25519PrivateKey, int, int | None, bool]) -> p.Keyring:
    return p.Keyring(
        [p.TrustedKey(SITE, p.public_bytes(k.public_key()), vf, vu, rev) for k, vf, vu, rev in keys]
    )


KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
RING = ring((KEY, 0, None, False))


def test_an_untouched_history_verifies_completely() -> None:
    rs, ms = signed_history(50, 7, [(KEY, 0)])
    rep = audit_device(SITE, DEV, rs, ms, RING, expected_first_seq=0)
    assert rep.ok and rep.verified == list(range(50))


@given(st.integers(0, 49))
def test_a_value_edited_after_storage_is_flagged_at_its_seq(k: int) -> None:
    rs, ms = signed_history(50, 7, [(KEY, 0)])
    rs[k] = replace(rs[k], values={**rs[k].values, "energy_import": rs[k].values["energy_import"] + 0.5})
    rep = audit_device(SITE, DEV, rs, ms, RING, expected_first_seq=0)
    assert rep.altered == [k] and not rep.invalid and not rep.missing
    assert rep.verified == [s for s in range(50) if s != k]


@given(st.integers(0, 49))
def test_a_deleted_reading_is_missing_and_the_rest_verifies(k: int) -> None:
    rs, ms = signed_history(50, 7, [(KEY, 0)])
    del rs[k]
    rep = audit_device(SITE, DEV, rs, ms, RING, expected_first_seq=0)
    assert rep.missing == [(k, k)] and not rep.altered and not rep.invalid
    assert rep.verified == [s for s in range(50) if s != k]


def test_an_injected_reading_under_a_foreign_key_is_invalid() -> None:
    rs, ms = signed_history(20, 5, [(KEY, 0)])
    intruder = Ed25519PrivateKey.generate()
    fake = p.ChainReading(20, T0 + 60_000 * 20, {"energy_import": 999.0})
    sr = p.signed_range(SITE, DEV, [fake], ms[-1].signed.head)
    rs.append(StoredReading(fake.seq, fake.ts, fake.values))
    ms.append(MessageRecord(sr, p.sign(intruder, sr), p.key_id(intruder.public_key()), fake.ts))
    rep = audit_device(SITE, DEV, rs, ms, RING, expected_first_seq=0)
    assert rep.invalid == {20: p.KeyStatus.UNKNOWN} and rep.verified == list(range(20))


def test_a_forged_signature_under_the_sites_own_key_id_is_invalid() -> None:
    rs, ms = signed_history(10, 5, [(KEY, 0)])
    ms[1] = MessageRecord(ms[1].signed, bytes(64), ms[1].key_id, ms[1].ts)
    rep = audit_device(SITE, DEV, rs, ms, RING, expected_first_seq=0)
    assert rep.verified == list(range(5)) and set(rep.invalid) == set(range(5, 10))


def test_a_replayed_message_is_flagged() -> None:
    rs, ms = signed_history(20, 5, [(KEY, 0)])
    rep = audit_device(SITE, DEV, rs, [*ms, ms[1]], RING, expected_first_seq=0)
    assert rep.replayed == [(5, 9)] and rep.verified == list(range(20))


def test_a_revoked_key_verifies_nothing() -> None:
    rs, ms = signed_history(20, 5, [(KEY, 0)])
    rep = audit_device(SITE, DEV, rs, ms, ring((KEY, 0, None, True)), expected_first_seq=0)
    assert rep.verified == [] and set(rep.invalid.values()) == {p.KeyStatus.REVOKED}


def test_a_gap_during_an_outage_is_reported_with_its_range() -> None:
    rs, ms = signed_history(40, 5, [(KEY, 0)])
    rs = [r for r in rs if not 12 <= r.seq <= 21]
    rep = audit_device(SITE, DEV, rs, ms, RING, expected_first_seq=0)
    assert rep.missing == [(12, 21)]
    assert rep.counts()["missing"] == 10


def test_a_key_rotation_passes() -> None:
    new = Ed25519PrivateKey.generate()
    rotate_at = 25
    rs, ms = signed_history(50, 5, [(KEY, 0), (new, rotate_at)])
    t_rot = T0 + 60_000 * rotate_at
    keyring = ring((KEY, 0, t_rot, False), (new, t_rot, None, False))
    rep = audit_device(SITE, DEV, rs, ms, keyring, expected_first_seq=0)
    assert rep.ok and rep.verified == list(range(50))
    # the old key signing after its rotation does not verify
    last = ms[-1]
    forged = [
        *ms[:-1],
        MessageRecord(last.signed, p.sign(KEY, last.signed), p.key_id(KEY.public_key()), last.ts),
    ]
    rep = audit_device(SITE, DEV, rs, forged, keyring, expected_first_seq=0)
    assert set(rep.invalid) == set(range(45, 50))
    assert set(rep.invalid.values()) == {p.KeyStatus.OUT_OF_VALIDITY}


def test_unsigned_readings_are_counted_apart() -> None:
    rs = [StoredReading(s, T0 + s, {"energy_import": float(s)}) for s in range(5)]
    rep = audit_device(SITE, DEV, rs, [], RING, expected_first_seq=0)
    assert rep.unsigned == list(range(5)) and rep.ok
