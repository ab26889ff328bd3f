"""The canonical byte form, the chain and the signature, against the documented example vector
and by property: any change to what a digest covers changes the digest."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from epcwatch import provenance as p
from epcwatch.measurements import VOCABULARY, FieldType

DOC = Path(__file__).resolve().parents[3] / "docs" / "provenance.md"


def _doc_vector() -> dict[str, str]:
    rows = re.findall(r"^\| ([^|]+?) \| `([0-9a-f]+)` \|$", DOC.read_text(), flags=re.M)
    return {k: v for k, v in rows}


def test_documented_example_vector() -> None:
    vec = _doc_vector()
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pub = p.public_bytes(key.public_key())
    assert pub.hex() == vec["public key"]
    assert p.key_id(pub) == vec["key id"]
    r1 = p.ChainReading(1, 1735689600000, {"energy_import": 1234.5, "active_power": 5000.0})
    r2 = p.ChainReading(2, 1735689660000, {"energy_import": 1234.6, "active_power": 5100.0}, "partial")
    assert (
        p.reading_bytes("civic-centre", "b1-main", r1, p.GENESIS).hex() == (vec["reading 1 canonical bytes"])
    )
    d1, d2 = p.chain("civic-centre", "b1-main", [r1, r2])
    assert d1.hex() == vec["reading 1 digest"] and d2.hex() == vec["reading 2 digest"]
    assert (
        p.message_bytes(p.signed_range("civic-centre", "b1-main", [r1, r2], p.GENESIS)).hex()
        == vec["signed bytes (seq 1–2)"]
    )
    sig = bytes.fromhex(vec["signature"])
    assert (
        p.sign(key, p.signed_range("civic-centre", "b1-main", [r1, r2], p.GENESIS)) == sig
    )  # Ed25519 is deterministic
    assert p.verify(pub, sig, p.signed_range("civic-centre", "b1-main", [r1, r2], p.GENESIS))


def test_json_spelling_does_not_change_the_digest() -> None:
    # a float measurement sent as 5 or 5.0, an int one as 3 or 3.0, -0.0 as 0.0: same value
    floats = [n for n, m in VOCABULARY.items() if m.field_type is FieldType.FLOAT]
    ints = [n for n, m in VOCABULARY.items() if m.field_type is FieldType.INT]
    a = {floats[0]: 5, floats[1]: -0.0}
    b = {floats[0]: 5.0, floats[1]: 0.0}
    if ints:
        a[ints[0]] = 3
        b[ints[0]] = 3.0
    assert p.reading_digest("s", "d", p.ChainReading(1, 1, a), p.GENESIS) == p.reading_digest(
        "s", "d", p.ChainReading(1, 1, b), p.GENESIS
    )


FLOAT_NAMES = sorted(n for n, m in VOCABULARY.items() if m.field_type is FieldType.FLOAT)
readings = st.builds(
    p.ChainReading,
    seq=st.integers(0, 2**63 - 1),
    ts=st.integers(946_684_800_000, 4_102_444_800_000),
    values=st.dictionaries(
        st.sampled_from(FLOAT_NAMES), st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=6
    ),
    quality=st.sampled_from(["good", "partial"]),
)


@given(readings, st.data())
def test_any_change_changes_the_digest(r: p.ChainReading, data: st.DataObject) -> None:
    def digest(site: str = "site", device: str = "dev", prev: bytes = p.GENESIS, **change: object) -> bytes:
        fields = {"seq": r.seq, "ts": r.ts, "values": r.values, "quality": r.quality, **change}
        return p.reading_digest(site, device, p.ChainReading(**fields), prev)  # type: ignore[arg-type]

    base = digest()
    name = data.draw(st.sampled_from(sorted(r.values)))
    new = data.draw(
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v + 0.0 != r.values[name] + 0.0)
    )
    assert digest(values={**r.values, name: new}) != base
    assert digest(seq=r.seq + 1 if r.seq < 2**63 - 1 else 0) != base
    assert digest(ts=r.ts + 1) != base
    assert digest(quality="good" if r.quality == "partial" else "partial") != base
    assert digest(device="dev2") != base
    assert digest(site="site2") != base
    assert digest(prev=b"\x01" * 32) != base


@given(st.lists(readings, min_size=2, max_size=8), st.data())
def test_an_edit_anywhere_breaks_the_signature(drawn: list[p.ChainReading], data: st.DataObject) -> None:
    rs = [p.ChainReading(i, r.ts, r.values, r.quality) for i, r in enumerate(drawn)]
    key = Ed25519PrivateKey.generate()
    sig = p.sign(key, p.signed_range("s", "d", rs, p.GENESIS))
    assert p.verify(key.public_key(), sig, p.signed_range("s", "d", rs, p.GENESIS))
    i = data.draw(st.integers(0, len(rs) - 1))
    name = sorted(rs[i].values)[0]
    new = data.draw(
        st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v + 0.0 != rs[i].values[name] + 0.0)
    )
    edited = list(rs)
    edited[i] = p.ChainReading(rs[i].seq, rs[i].ts, {**rs[i].values, name: new}, rs[i].quality)
    assert not p.verify(key.public_key(), sig, p.signed_range("s", "d", edited, p.GENESIS))
    assert not p.verify(key.public_key(), sig, p.signed_range("s", "d", rs, b"\x01" * 32))


def test_keyring_rotation_revocation_and_sites() -> None:
    old, new, other = (Ed25519PrivateKey.generate() for _ in range(3))
    ring = p.Keyring(
        [
            p.TrustedKey("s", p.public_bytes(old.public_key()), valid_from=0, valid_until=1000),
            p.TrustedKey("s", p.public_bytes(new.public_key()), valid_from=1000),
            p.TrustedKey("t", p.public_bytes(other.public_key()), revoked=True),
        ]
    )
    kid = p.key_id(old.public_key())
    assert ring.check(kid, "s", 999)[0] == p.KeyStatus.OK  # rotated out later: still verifies for its time
    assert ring.check(kid, "s", 1000)[0] == p.KeyStatus.OUT_OF_VALIDITY
    assert ring.check(p.key_id(new.public_key()), "s", 5000)[0] == p.KeyStatus.OK
    assert ring.check(p.key_id(new.public_key()), "t", 5000)[0] == p.KeyStatus.WRONG_SITE
    assert ring.check(p.key_id(other.public_key()), "t", 5)[0] == p.KeyStatus.REVOKED
    assert ring.check("0" * 16, "s", 5)[0] == p.KeyStatus.UNKNOWN


def test_non_canonical_input_is_a_clear_error() -> None:
    import pytest

    with pytest.raises(p.ProvenanceError, match="unknown measurement"):
        p.value_bytes("no_such_thing", 1.0)
    with pytest.raises(p.ProvenanceError, match="finite"):
        p.value_bytes(FLOAT_NAMES[0], float("inf"))
    with pytest.raises(p.ProvenanceError, match="32 bytes"):
        p.reading_bytes("s", "d", p.ChainReading(1, 1, {FLOAT_NAMES[0]: 1.0}), b"short")


def _value(name: str) -> st.SearchStrategy[bool | int | float]:
    ft = VOCABULARY[name].field_type
    if ft is FieldType.BOOL:
        return st.booleans()
    if ft is FieldType.INT:
        return st.integers(-(2**40), 2**40) | st.integers(-(2**40), 2**40).map(float)
    return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**12), 10**12)


@st.composite
def uniform_chains(draw: st.DrawFn) -> tuple[list[str], list[p.ChainReading]]:
    """Readings of one device that all carry the same measurements, of every vocabulary type."""
    names = draw(st.lists(st.sampled_from(sorted(VOCABULARY)), min_size=1, max_size=6, unique=True))
    n = draw(st.integers(1, 5))
    first = draw(st.integers(0, 2**62))
    out = []
    for i in range(n):
        values = {name: draw(_value(name)) for name in names}
        ts = draw(st.integers(946_684_800_000, 4_102_444_800_000))
        out.append(p.ChainReading(first + i, ts, values, draw(st.sampled_from(["good", "partial"]))))
    return names, out


@given(uniform_chains(), st.binary(min_size=32, max_size=32))
def test_fixed_layout_gives_the_canonical_bytes(
    case: tuple[list[str], list[p.ChainReading]], prev: bytes
) -> None:
    names, readings_ = case
    layout = p.FixedLayout("civic-centre", "b1-main", names)
    link = prev
    for r in readings_:
        row = [r.values[n] for n in layout.names]
        assert layout.reading_bytes(r.seq, r.ts, r.quality, row, link) == p.reading_bytes(
            "civic-centre", "b1-main", r, link
        )
        link = p.reading_digest("civic-centre", "b1-main", r, link)
    good = [p.ChainReading(r.seq, r.ts, r.values) for r in readings_]
    rows = [[r.values[n] for n in layout.names] for r in good]
    assert layout.chain([r.seq for r in good], [r.ts for r in good], rows, prev) == p.chain(
        "civic-centre", "b1-main", good, prev
    )


@given(
    st.lists(st.sampled_from(FLOAT_NAMES), min_size=1, max_size=4, unique=True),
    st.lists(
        st.floats() | st.integers(-(10**20), 10**20) | st.booleans() | st.none() | st.text(max_size=2),
        min_size=4,
        max_size=4,
    ),
)
def test_fixed_layout_refuses_what_reading_bytes_refuses(names: list[str], raw: list[object]) -> None:
    values = dict(zip(names, raw, strict=False))
    layout = p.FixedLayout("s", "d", names)
    r = p.ChainReading(1, 1, values)  # type: ignore[arg-type]
    try:
        want: bytes | None = p.reading_bytes("s", "d", r, p.GENESIS)
    except (p.ProvenanceError, OverflowError, TypeError, ValueError):
        want = None
    try:
        got: bytes | None = layout.reading_bytes(1, 1, "good", [values[n] for n in layout.names], p.GENESIS)  # type: ignore[misc]
    except (p.ProvenanceError, OverflowError, TypeError, ValueError):
        got = None
    assert got == want
