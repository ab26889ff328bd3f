"""Pure grouping of outbox rows into telemetry messages.

Rows arrive in outbox order (ascending row id, which is each device's seq order). A message
carries readings of one device only, in order, up to a number of readings and a byte budget.
Messages are returned in the order of their first row, so handing them to the broker one after
the other keeps every device's readings in order — the property the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

#: bytes of the JSON envelope around the readings (site, device, kind, tags), a generous bound
ENVELOPE_BYTES: Final = 512


@dataclass(frozen=True, slots=True)
class Row:
    """One stored reading: outbox row id, device id and its JSON body (a wire ``Reading``)."""

    id: int
    device: str
    body: bytes
    seq: int = -1
    #: a signing site's chain link: the previous digest and the reading's digest (64 bytes)
    chain: bytes | None = None


@dataclass(slots=True)
class Batch:
    device: str
    rows: list[Row] = field(default_factory=list)
    size: int = 0

    @property
    def ids(self) -> list[int]:
        return [r.id for r in self.rows]


def batch_rows(rows: list[Row], max_readings: int, max_bytes: int) -> list[Batch]:
    """Group rows into per-device batches of at most ``max_readings`` rows and about
    ``max_bytes`` bytes (a single oversize row still gets a batch of its own). Rows of a signing
    site (with a chain link) are split at seq gaps, since a signed message holds consecutive seqs."""
    if max_readings < 1:
        raise ValueError("max_readings must be >= 1")
    out: list[Batch] = []
    open_: dict[str, Batch] = {}
    for row in rows:
        b = open_.get(row.device)
        cost = len(row.body) + 1  # a comma between readings
        if b is not None and (len(b.rows) >= max_readings or b.size + cost > max_bytes):
            b = None
        if b is not None and row.chain is not None and row.seq != b.rows[-1].seq + 1:
            b = None
        if b is None:
            b = Batch(row.device, size=ENVELOPE_BYTES)
            open_[row.device] = b
            out.append(b)
        b.rows.append(row)
        b.size += cost
    return out


def envelope_prefix(site: str, device: str, kind: str, tags_json: bytes) -> bytes:
    """The JSON document up to the readings array (ids are validated, so no escaping needed)."""
    return (
        b'{"v":1,"site":"' + site.encode() + b'","device":"' + device.encode() + b'","kind":"'
        + kind.encode() + b'","tags":' + tags_json + b',"readings":['
    )


def message_body(prefix: bytes, rows: list[Row], proof: bytes = b"") -> bytes:
    """A complete ``TelemetryMessage`` JSON document from a prefix and stored reading bodies,
    and a signing site's ``proof`` object (JSON)."""
    if proof:
        return prefix + b",".join(r.body for r in rows) + b'],"proof":' + proof + b"}"
    return prefix + b",".join(r.body for r in rows) + b"]}"
