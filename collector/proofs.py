"""Provenance on the way in (docs/provenance.md): a signed message's digests are recomputed from
the readings it carries, its key looked up in the keyring, its signature checked; what the
verifier needs later is stored beside the readings.

Pure: the pipeline calls :func:`signed_lines` for every telemetry message that carries a proof.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

from epcwatch.collector.lineprotocol import device_tags, fields_text, series_key
from epcwatch.influx import lineprotocol as lp
from epcwatch.influx import schema
from epcwatch.provenance import (
    ChainReading,
    Keyring,
    KeyStatus,
    ProvenanceError,
    SignedRange,
    signed_range,
    verify,
)
from epcwatch.wire import TelemetryMessage


class ProofError(Exception):
    """Why a signed message is refused (the dead letter's detail)."""


def check(msg: TelemetryMessage, keyring: Keyring | None) -> tuple[SignedRange, bytes]:
    """The message's signed range and signature; with a keyring, only if the key may vouch for
    the site at the last reading's time and the signature verifies. Raises :class:`ProofError`."""
    proof = msg.proof
    if proof is None:
        raise ProofError("message carries no proof")
    readings = [ChainReading(r.seq, r.ts, r.values, r.quality) for r in msg.readings]
    try:
        sr = signed_range(msg.site, msg.device, readings, base64.b64decode(proof.first_prev))
    except ProvenanceError as exc:
        raise ProofError(str(exc)) from None
    sig = base64.b64decode(proof.sig)
    if keyring is not None:
        status, key = keyring.check(proof.kid, msg.site, msg.readings[-1].ts)
        if status != KeyStatus.OK or key is None:
            raise ProofError(f"{status} {proof.kid} (seq {sr.first_seq}..{sr.last_seq})")
        if not verify(key.public, sig, sr):
            raise ProofError(
                f"signature does not verify (key {proof.kid}, seq {sr.first_seq}..{sr.last_seq})"
            )
    return sr, sig


def provenance_fields(sr: SignedRange, sig: bytes, kid: str, last_ts: int) -> Mapping[str, int | str]:
    """The fields of a ``provenance`` point (docs/provenance.md, "What is stored")."""
    return {
        "first_seq": sr.first_seq,
        "last_seq": sr.last_seq,
        "last_ts": last_ts,
        "first_prev": base64.b64encode(sr.first_prev).decode(),
        "digests": base64.b64encode(b"".join(sr.digests)).decode(),
        "sig": base64.b64encode(sig).decode(),
        "kid": kid,
    }


def signed_lines(msg: TelemetryMessage, sr: SignedRange, sig: bytes, point_ms: int) -> list[str]:
    """The readings, each with its ``seq`` (and ``quality`` unless good), and one ``provenance``
    point at ``point_ms`` (the receive time, so a replayed message is a second point)."""
    assert msg.proof is not None
    key = series_key(msg.kind, device_tags(msg))
    lines = []
    for r in msg.readings:
        extra = f",{schema.SEQ}={r.seq}i"
        if r.quality != "good":
            extra += f",{schema.QUALITY}={lp.escape_string(r.quality)}"
        lines.append(f"{key} {fields_text(r.values)}{extra} {r.ts}")
    line = lp.point(
        schema.PROVENANCE,
        {schema.SITE: msg.site, schema.DEVICE: msg.device},
        provenance_fields(sr, sig, msg.proof.kid, msg.readings[-1].ts),
        point_ms,
    )
    assert line is not None
    lines.append(line)
    return lines
