"""Provenance on the way in (docs/provenance.md): a signed message's digests are recomputed from
the readings it carries, its key looked up in the keyring, its signature checked; what the
verifier needs later is stored beside the readings.

Pure: the pipeline calls :func:`check_range` for every signed device of a message, then writes
:func:`reading_lines` and one :func:`provenance_line` per device.
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


def check_range(  # noqa: PLR0917
    site: str,
    device: str,
    readings: list[ChainReading],
    kid: str,
    first_prev_b64: str,
    sig_b64: str,
    keyring: Keyring | None,
) -> tuple[SignedRange, bytes]:
    """:func:`check` on plain data (the fast path's parsed documents): ``readings`` consecutive,
    the proof's fields as sent (their shape already checked)."""
    try:
        sr = signed_range(site, device, readings, base64.b64decode(first_prev_b64))
    except ProvenanceError as exc:
        raise ProofError(str(exc)) from None
    sig = base64.b64decode(sig_b64)
    if keyring is not None:
        status, key = keyring.check(kid, site, readings[-1].ts)
        if status != KeyStatus.OK or key is None:
            raise ProofError(f"{status} {kid} (seq {sr.first_seq}..{sr.last_seq})")
        if not verify(key.public, sig, sr):
            raise ProofError(f"signature does not verify (key {kid}, seq {sr.first_seq}..{sr.last_seq})")
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


def reading_lines(msg: TelemetryMessage) -> list[str]:
    """A signed message's readings, each with its ``seq`` (and ``quality`` unless good)."""
    key = series_key(msg.kind, device_tags(msg))
    lines = []
    for r in msg.readings:
        extra = f",{schema.SEQ}={r.seq}i"
        if r.quality != "good":
            extra += f",{schema.QUALITY}={lp.escape_string(r.quality)}"
        lines.append(f"{key} {fields_text(r.values)}{extra} {r.ts}")
    return lines


def provenance_line(sr: SignedRange, sig: bytes, kid: str, last_ts: int, point_ms: int) -> str:
    """The ``provenance`` point of one signed message (or device block) at ``point_ms`` (the
    receive time, so a replayed message is a second point)."""
    line = lp.point(
        schema.PROVENANCE,
        {schema.SITE: sr.site, schema.DEVICE: sr.device},
        provenance_fields(sr, sig, kid, last_ts),
        point_ms,
    )
    assert line is not None
    return line
