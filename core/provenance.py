"""Provenance of readings: a per-device hash chain, signed at the edge, checkable by anyone.

Pure functions over plain data; the specification a third party needs to write an independent
verifier is docs/provenance.md, and the example vector there is checked by a test.

* Each reading's **digest** is SHA-256 over its canonical bytes (:func:`reading_bytes`): a domain
  tag, the site, the device, seq, timestamp, quality, the values in a canonical binary form
  fixed by the measurement vocabulary (so a JSON ``5`` and ``5.0`` of a float measurement are the
  same value), and the previous reading's digest. The first reading of a chain links to
  :data:`GENESIS`.
* A message's **signature** is Ed25519 over :func:`message_bytes`: the site, the device, the first
  and last seq of the message, the digest its first reading links to, and the digest of every
  reading of the message, the last of which is the chain head. The collector stores that record,
  so each reading is checked on its own: an edit or a deletion is found at its seq exactly.
* A **key id** is the first 16 hex digits of SHA-256 over the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

# cryptography loads when something is signed or verified: an edge that signs nothing never
# pays for it (the chain's hashing needs only hashlib)
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from epcwatch.errors import EpcwatchError
from epcwatch.measurements import VOCABULARY, FieldType

DOMAIN_READING: Final = b"epcwatch/reading/v1"
DOMAIN_MESSAGE: Final = b"epcwatch/message/v1"
#: the previous digest of a chain's first reading
GENESIS: Final = bytes(32)
QUALITY_CODES: Final = {"good": 0, "partial": 1}
_NUMBER_TYPES: Final = frozenset({float, int})


class ProvenanceError(EpcwatchError):
    """A reading that has no canonical form (unknown measurement, wrong type, non-finite)."""


def _text(s: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 0xFFFF:
        raise ProvenanceError(f"text of {len(b)} bytes is too long for the canonical form")
    return struct.pack(">H", len(b)) + b


def value_bytes(name: str, value: bool | int | float) -> bytes:
    """One value in canonical form: its name, a type byte and the value as the vocabulary types it.

    ``f`` + IEEE 754 binary64 big-endian (``-0.0`` is written as ``0.0``), ``i`` + int64
    big-endian, ``b`` + one byte 0 or 1.
    """
    m = VOCABULARY.get(name)
    if m is None:
        raise ProvenanceError(f"unknown measurement {name!r}")
    if m.field_type is FieldType.BOOL:
        if not isinstance(value, bool):
            raise ProvenanceError(f"{name}: expected a boolean, got {value!r}")
        return _text(name) + b"b" + (b"\x01" if value else b"\x00")
    if isinstance(value, bool):
        raise ProvenanceError(f"{name}: expected a number, got a boolean")
    if m.field_type is FieldType.INT:
        if isinstance(value, float) and not value.is_integer():
            raise ProvenanceError(f"{name}: expected an integer, got {value!r}")
        return _text(name) + b"i" + struct.pack(">q", int(value))
    f = float(value)
    if not math.isfinite(f):
        raise ProvenanceError(f"{name}: value must be finite")
    return _text(name) + b"f" + struct.pack(">d", f + 0.0)  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True, slots=True)
class ChainReading:
    """The part of a reading the chain covers."""

    seq: int
    ts: int
    values: Mapping[str, bool | int | float]
    quality: str = "good"


def reading_bytes(site: str, device: str, r: ChainReading, prev: bytes) -> bytes:
    """The canonical bytes of one reading (what its digest hashes)."""
    if len(prev) != 32:
        raise ProvenanceError(f"previous digest must be 32 bytes, got {len(prev)}")
    if r.quality not in QUALITY_CODES:
        raise ProvenanceError(f"unknown quality {r.quality!r}")
    names = sorted(r.values, key=lambda n: n.encode("utf-8"))
    parts = [
        _text(DOMAIN_READING.decode()),
        _text(site),
        _text(device),
        struct.pack(">QqB", r.seq, r.ts, QUALITY_CODES[r.quality]),
        struct.pack(">H", len(names)),
        *(value_bytes(n, r.values[n]) for n in names),
        prev,
    ]
    return b"".join(parts)


def reading_digest(site: str, device: str, r: ChainReading, prev: bytes) -> bytes:
    return hashlib.sha256(reading_bytes(site, device, r, prev)).digest()


class FixedLayout:
    """The canonical bytes of one device's readings that all carry the same measurements, built
    with one precompiled :class:`struct.Struct` per reading: what :func:`reading_bytes` gives,
    several times faster, for producers of long chains (the simulator's signed history).

    ``values`` passed to :meth:`digest` are in :attr:`names` order (the canonical order) and must
    be valid for the vocabulary (as the wire model checks): a float measurement's value is any
    finite number, an int one's an integer, a bool one's a boolean."""

    def __init__(self, site: str, device: str, names: Iterable[str]) -> None:
        self.names = tuple(sorted(set(names), key=lambda n: n.encode("utf-8")))
        if not self.names:
            raise ProvenanceError("a reading has at least one value")
        self._head = _text(DOMAIN_READING.decode()) + _text(site) + _text(device)
        fmt = ">QqBH"
        self._consts: list[bytes] = []
        self._kinds: list[FieldType] = []
        for n in self.names:
            m = VOCABULARY.get(n)
            if m is None:
                raise ProvenanceError(f"unknown measurement {n!r}")
            tag = {FieldType.FLOAT: b"f", FieldType.INT: b"i", FieldType.BOOL: b"b"}[m.field_type]
            const = _text(n) + tag
            fmt += (
                f"{len(const)}s"
                + {FieldType.FLOAT: "d", FieldType.INT: "q", FieldType.BOOL: "B"}[m.field_type]
            )
            self._consts.append(const)
            self._kinds.append(m.field_type)
        self._struct = struct.Struct(fmt + "32s")
        self._all_float = all(k is FieldType.FLOAT for k in self._kinds)

    def _typed(self, values: Sequence[bool | int | float]) -> list[object]:
        """The struct's arguments for ``values``, each checked as :func:`value_bytes` checks it."""
        if self._all_float and len(values) == len(self._consts):
            # the common case (meters): every value a float measurement, checked and converted
            # by C-level passes over the list; anything unusual takes the per-value way below
            vals = values if type(values) is list else list(values)
            if _NUMBER_TYPES.issuperset(map(type, vals)):
                fs = list(map(float, vals))
                if math.isfinite(sum(fs)):
                    if 0.0 in fs:  # -0.0 is written as 0.0
                        fs = [f + 0.0 for f in fs]
                    args: list[object] = [None] * (2 * len(fs))
                    args[0::2] = self._consts
                    args[1::2] = fs
                    return args
        out: list[object] = []
        for const, kind, v in zip(self._consts, self._kinds, values, strict=True):
            out.append(const)
            tv = type(v)
            if kind is FieldType.FLOAT:
                if (tv is not float and tv is not int) or not math.isfinite(v):
                    raise ProvenanceError(f"{const[2:-1].decode()}: expected a finite number, got {v!r}")
                out.append(float(v) + 0.0)  # + 0.0 turns -0.0 into 0.0
            elif kind is FieldType.INT:
                if tv is not int and not (tv is float and float(v).is_integer()):
                    raise ProvenanceError(f"{const[2:-1].decode()}: expected an integer, got {v!r}")
                out.append(int(v))
            else:
                if tv is not bool:
                    raise ProvenanceError(f"{const[2:-1].decode()}: expected a boolean, got {v!r}")
                out.append(1 if v else 0)
        return out

    def reading_bytes(
        self, seq: int, ts: int, quality: str, values: Sequence[bool | int | float], prev: bytes
    ) -> bytes:
        if len(prev) != 32:
            raise ProvenanceError(f"previous digest must be 32 bytes, got {len(prev)}")
        if quality not in QUALITY_CODES:
            raise ProvenanceError(f"unknown quality {quality!r}")
        args = self._typed(values)
        return self._head + self._struct.pack(seq, ts, QUALITY_CODES[quality], len(self.names), *args, prev)

    def chain(
        self,
        seqs: Sequence[int],
        tss: Sequence[int],
        rows: Iterable[Sequence[bool | int | float]],
        prev: bytes = GENESIS,
        quality: str = "good",
    ) -> list[bytes]:
        """The digests of consecutive readings (``rows``: each reading's values in :attr:`names`
        order), the first linked to ``prev``."""
        out: list[bytes] = []
        sha = hashlib.sha256
        for seq, ts, values in zip(seqs, tss, rows, strict=True):
            prev = sha(self.reading_bytes(seq, ts, quality, values, prev)).digest()
            out.append(prev)
        return out


_LAYOUTS: dict[tuple[str, str, tuple[str, ...]], FixedLayout] = {}
_MAX_LAYOUTS: Final = 10_000


def chain(site: str, device: str, readings: Iterable[ChainReading], prev: bytes = GENESIS) -> list[bytes]:
    """The digests of consecutive readings, the first linked to ``prev``. (Each reading's bytes
    come from a cached :class:`FixedLayout` of its measurements: the same bytes as
    :func:`reading_bytes`, a property test checks it, several times faster.)"""
    out: list[bytes] = []
    sha = hashlib.sha256
    for r in readings:
        names = tuple(r.values)
        layout = _LAYOUTS.get((site, device, names))
        if layout is None:
            if len(_LAYOUTS) >= _MAX_LAYOUTS:
                _LAYOUTS.clear()
            layout = _LAYOUTS[(site, device, names)] = FixedLayout(site, device, names)
            if len(layout.names) != len(names):  # pragma: no cover - dict keys are unique
                raise ProvenanceError("duplicate measurement")
        values = r.values
        prev = sha(
            layout.reading_bytes(r.seq, r.ts, r.quality, [values[n] for n in layout.names], prev)
        ).digest()
        out.append(prev)
    return out


@dataclass(frozen=True, slots=True)
class SignedRange:
    """What one message's signature vouches for: the digests of a device's readings
    ``first_seq..last_seq`` in seq order, and the digest the first of them links to."""

    site: str
    device: str
    first_seq: int
    last_seq: int
    first_prev: bytes
    digests: tuple[bytes, ...]

    @property
    def head(self) -> bytes:
        """The chain head: the digest of the message's last reading."""
        return self.digests[-1]


def message_bytes(m: SignedRange) -> bytes:
    """What a message's signature signs (docs/provenance.md, "Canonical byte form")."""
    if m.last_seq < m.first_seq or len(m.digests) != m.last_seq - m.first_seq + 1:
        raise ProvenanceError(
            f"{len(m.digests)} digests for seq {m.first_seq}..{m.last_seq}: one per reading expected"
        )
    if any(len(d) != 32 for d in (m.first_prev, *m.digests)):
        raise ProvenanceError("digests must be 32 bytes")
    return b"".join(
        [
            _text(DOMAIN_MESSAGE.decode()),
            _text(m.site),
            _text(m.device),
            struct.pack(">QQ", m.first_seq, m.last_seq),
            m.first_prev,
            *m.digests,
        ]
    )


def signed_range(site: str, device: str, readings: Sequence[ChainReading], prev: bytes) -> SignedRange:
    """The signed range of consecutive readings (seq ``r[0].seq`` onwards) linked to ``prev``."""
    if not readings:
        raise ProvenanceError("a message has at least one reading")
    return SignedRange(
        site, device, readings[0].seq, readings[-1].seq, prev, tuple(chain(site, device, readings, prev))
    )


def key_id(public: Ed25519PublicKey | bytes) -> str:
    raw = public if isinstance(public, bytes) else public_bytes(public)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_bytes(public: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class Signer(Protocol):
    """What signing needs of a private key: ``cryptography``'s ``Ed25519PrivateKey``, or the
    edge agent's ``OpenSslSigner`` (the same signatures without loading ``cryptography``)."""

    def sign(self, data: bytes, /) -> bytes: ...

    def public_key(self) -> Ed25519PublicKey | bytes: ...


def sign(key: Signer | Ed25519PrivateKey, m: SignedRange) -> bytes:
    return key.sign(message_bytes(m))


def verify(public: Ed25519PublicKey | bytes, signature: bytes, m: SignedRange) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pub = Ed25519PublicKey.from_public_bytes(public) if isinstance(public, bytes) else public
    try:
        pub.verify(signature, message_bytes(m))
    except InvalidSignature:
        return False
    return True


# -- keyring --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """A site's public key and when it may have signed: ``[valid_from, valid_until)`` in ms.

    A rotated-out key gets a ``valid_until``: what it signed before then still verifies. A revoked
    key (``revoked``) verifies nothing, whenever it was signed."""

    site: str
    public: bytes
    valid_from: int = 0
    valid_until: int | None = None
    revoked: bool = False

    @property
    def key_id(self) -> str:
        return key_id(self.public)


class KeyStatus:
    OK: Final = "ok"
    UNKNOWN: Final = "unknown key"
    WRONG_SITE: Final = "key of another site"
    REVOKED: Final = "revoked key"
    OUT_OF_VALIDITY: Final = "signed outside the key's validity"


@dataclass(frozen=True)
class Keyring:
    keys: Sequence[TrustedKey]

    def find(self, kid: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.key_id == kid), None)

    def check(self, kid: str, site: str, ts: int) -> tuple[str, TrustedKey | None]:
        """Whether key ``kid`` may vouch for ``site``'s readings at ``ts`` (ms)."""
        k = self.find(kid)
        if k is None:
            return KeyStatus.UNKNOWN, None
        if k.site != site:
            return KeyStatus.WRONG_SITE, k
        if k.revoked:
            return KeyStatus.REVOKED, k
        if ts < k.valid_from or (k.valid_until is not None and ts >= k.valid_until):
            return KeyStatus.OUT_OF_VALIDITY, k
        return KeyStatus.OK, k
