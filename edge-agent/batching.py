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
    """The JSON document up to the readings array (ids are validated, so no escaping needed):
    the site, then the fields of a device block (:func:`block_prefix`)."""
    return b'{"v":1,"site":"' + site.encode() + b'",' + block_prefix(device, kind, tags_json)[1:]


def message_body(prefix: bytes, rows: list[Row], proof: bytes = b"") -> bytes:
    """A complete ``TelemetryMessage`` JSON document from a prefix and stored reading bodies,
    and a signing site's ``proof`` object (JSON)."""
    if proof:
        return prefix + b",".join(r.body for r in rows) + b'],"proof":' + proof + b"}"
    return prefix + b",".join(r.body for r in rows) + b"]}"


@dataclass(slots=True)
class SiteBatch:
    """A schema-2 message: consecutive outbox rows, grouped by device in order of first row."""

    blocks: list[Batch] = field(default_factory=list)
    size: int = 0
    count: int = 0

    @property
    def ids(self) -> list[int]:
        return [r.id for b in self.blocks for r in b.rows]


def batch_site_rows(rows: list[Row], max_readings: int, max_bytes: int) -> list[SiteBatch]:
    """Cut rows (outbox order) into consecutive runs of at most ``max_readings`` rows and about
    ``max_bytes`` bytes; inside a run, each device's rows form one block, in order. Since runs
    are consecutive and sent one after the other, every device's readings stay in order. Rows of
    a signing site (with a chain link) end a run at a seq gap of their device, since a signed
    block holds consecutive seqs."""
    if max_readings < 1:
        raise ValueError("max_readings must be >= 1")
    out: list[SiteBatch] = []
    cur: SiteBatch | None = None
    by_device: dict[str, Batch] = {}
    for row in rows:
        cost = len(row.body) + 1
        fresh_block = row.device not in by_device
        extra = cost + (ENVELOPE_BYTES if fresh_block else 0)
        if cur is not None and (cur.count >= max_readings or cur.size + extra > max_bytes):
            cur = None
        # a signed block holds consecutive seqs: a gap in a device's seqs starts a new message
        if (
            cur is not None
            and row.chain is not None
            and not fresh_block
            and row.seq != by_device[row.device].rows[-1].seq + 1
        ):
            cur = None
        if cur is None:
            cur = SiteBatch(size=ENVELOPE_BYTES)
            by_device = {}
            out.append(cur)
            extra = cost + ENVELOPE_BYTES
        b = by_device.get(row.device)
        if b is None:
            b = Batch(row.device)
            by_device[row.device] = b
            cur.blocks.append(b)
        b.rows.append(row)
        cur.size += extra
        cur.count += 1
    return out


def block_prefix(device: str, kind: str, tags_json: bytes) -> bytes:
    """A device block of a schema-2 document up to its readings array."""
    return (
        b'{"device":"'
        + device.encode()
        + b'","kind":"'
        + kind.encode()
        + b'","tags":'
        + tags_json
        + b',"readings":['
    )


def site_message_body(
    site: str, prefixes: dict[str, bytes], batch: SiteBatch, proofs: list[bytes] | None = None
) -> bytes:
    """A complete ``SiteTelemetryMessage`` JSON document (``prefixes``: device → block prefix;
    ``proofs``: a signing site's ``proof`` object (JSON) per block, b"" for an unsigned one)."""
    blocks = [
        prefixes[b.device]
        + b",".join(r.body for r in b.rows)
        + (b'],"proof":' + proofs[i] + b"}" if proofs and proofs[i] else b"]}")
        for i, b in enumerate(batch.blocks)
    ]
    return b'{"v":2,"site":"' + site.encode() + b'","devices":[' + b",".join(blocks) + b"]}"
