"""The verification procedure of docs/provenance.md over plain data: what InfluxDB holds for one
device (its readings and its signed message records) checked against a keyring. Pure: the caller
queries the database and prints the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from epcwatch.provenance import (
    ChainReading,
    Keyring,
    KeyStatus,
    ProvenanceError,
    SignedRange,
    chain,
    verify,
)


@dataclass(frozen=True, slots=True)
class StoredReading:
    seq: int
    ts: int
    values: Mapping[str, bool | int | float]
    quality: str = "good"


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One stored ``provenance`` point: a signed range of the device's readings."""

    signed: SignedRange
    signature: bytes
    key_id: str
    ts: int  # the timestamp of the range's last reading (the key must be valid then)


@dataclass
class DeviceReport:
    site: str
    device: str
    verified: list[int] = field(default_factory=list)
    altered: list[int] = field(default_factory=list)
    missing: list[tuple[int, int]] = field(default_factory=list)  # inclusive seq ranges
    unsigned: list[int] = field(default_factory=list)
    invalid: dict[int, str] = field(default_factory=dict)
    replayed: list[tuple[int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.altered or self.missing or self.invalid or self.replayed)

    def counts(self) -> dict[str, int]:
        return {
            "verified": len(self.verified),
            "altered": len(self.altered),
            "missing": sum(b - a + 1 for a, b in self.missing),
            "unsigned": len(self.unsigned),
            "invalid": len(self.invalid),
            "replayed": len(self.replayed),
        }


def _ranges(seqs: Sequence[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def audit_device(
    site: str,
    device: str,
    readings: Sequence[StoredReading],
    records: Sequence[MessageRecord],
    keyring: Keyring,
    *,
    expected_first_seq: int | None = None,
) -> DeviceReport:
    """Check one device's stored readings against its signed records (docs/provenance.md,
    "Verification procedure").

    ``expected_first_seq``: the seq the period should start at, so that readings missing at the
    start of the period are reported too (the chain continues across periods)."""
    rep = DeviceReport(site, device)
    by_seq = {r.seq: r for r in readings}
    status: dict[int, str] = {}  # seq -> "ok", "altered" or why it cannot be verified
    missing: list[int] = []
    seen: set[tuple[int, int]] = set()
    for m in sorted(records, key=lambda m: (m.signed.first_seq, m.signed.last_seq)):
        sr = m.signed
        if (sr.first_seq, sr.last_seq) in seen:
            rep.replayed.append((sr.first_seq, sr.last_seq))
            continue
        seen.add((sr.first_seq, sr.last_seq))
        seqs = range(sr.first_seq, sr.last_seq + 1)
        key_status, key = keyring.check(m.key_id, site, m.ts)
        try:
            good = key_status == KeyStatus.OK and key is not None and verify(key.public, m.signature, sr)
        except ProvenanceError:
            good = False
        if not good:
            reason = key_status if key_status != KeyStatus.OK else "signature does not verify"
            for s in seqs:
                if s in by_seq and status.get(s) != "ok":
                    status[s] = reason
            continue
        for i, s in enumerate(seqs):
            r = by_seq.get(s)
            if r is None:
                missing.append(s)
                continue
            prev = sr.first_prev if i == 0 else sr.digests[i - 1]
            try:
                # chain() of one reading: reading_digest's bytes from a cached layout, faster
                d = chain(site, device, (ChainReading(r.seq, r.ts, r.values, r.quality),), prev)[0]
            except ProvenanceError as exc:
                status[s] = f"no canonical form: {exc}"
                continue
            status[s] = "ok" if d == sr.digests[i] else "altered"
    # seq gaps among stored readings and signed ranges (e.g. an outage that lost readings)
    known = sorted(set(by_seq) | set(missing))
    start = expected_first_seq if expected_first_seq is not None else (known[0] if known else 0)
    if known:
        missing += [s for s in range(start, known[-1] + 1) if s not in by_seq]
    rep.missing = _ranges(missing)
    for s in sorted(by_seq):
        st = status.get(s)
        if st is None:
            rep.unsigned.append(s)
        elif st == "ok":
            rep.verified.append(s)
        elif st == "altered":
            rep.altered.append(s)
        else:
            rep.invalid[s] = st
    return rep
