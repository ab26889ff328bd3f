"""What the verifier reads from InfluxDB: a site's signed readings and its ``provenance`` records
(docs/provenance.md, "What is stored"), turned into the plain data :mod:`epcwatch.verify.audit`
checks. The only I/O of the verifier besides the keyring file."""

from __future__ import annotations

import base64
from collections import defaultdict
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from epcwatch.influx import InfluxClient, schema
from epcwatch.influx.influxql import ident, literal
from epcwatch.measurements import VOCABULARY
from epcwatch.provenance import SignedRange
from epcwatch.verify.audit import MessageRecord, StoredReading


@dataclass
class DeviceData:
    readings: list[StoredReading] = field(default_factory=list)
    records: list[MessageRecord] = field(default_factory=list)
    #: readings stored without a seq (from an unsigned site): counted, not chained
    unsigned: int = 0


#: the span of readings asked for in one query
WINDOW_MS = 31 * 86_400_000
#: the measurements of device readings, for a FROM clause
_KINDS = ",".join(ident(k) for k in schema.DEVICE_KINDS)


def _record(site: str, device: str, row: dict[str, Any]) -> MessageRecord | None:
    try:
        d = base64.b64decode(row["digests"])
        sr = SignedRange(
            site,
            device,
            int(row["first_seq"]),
            int(row["last_seq"]),
            base64.b64decode(row["first_prev"]),
            tuple(d[i : i + 32] for i in range(0, len(d), 32)),
        )
        return MessageRecord(sr, base64.b64decode(row["sig"]), str(row["kid"]), int(row["last_ts"]))
    except (KeyError, TypeError, ValueError):
        return None  # a mangled record: its readings stay unsigned (or are flagged as missing)


def _reading(row: dict[str, Any]) -> StoredReading:
    values = {k: v for k, v in row.items() if k in VOCABULARY and v is not None}
    quality = row.get(schema.QUALITY) or "good"
    return StoredReading(int(row[schema.SEQ]), int(row["time"]), values, str(quality))


def site_devices(client: InfluxClient, site: str) -> list[str]:
    """Every device a site has readings or provenance records of (any time), sorted."""
    names = ",".join(ident(m) for m in (*schema.DEVICE_KINDS, schema.PROVENANCE))
    found: set[str] = set()
    where = f"{ident(schema.SITE)} = {literal(site)}"
    for s in client.query(f"SHOW TAG VALUES FROM {names} WITH KEY = {ident(schema.DEVICE)} WHERE {where}"):
        found.update(str(row["value"]) for row in s.rows)
    return sorted(found)


def device_data(
    client: InfluxClient, site: str, start_ms: int, end_ms: int, devices: Collection[str] | None = None
) -> Iterator[tuple[str, DeviceData]]:
    """Per device, one at a time (a long period of a whole site does not fit in memory): the
    readings of ``[start_ms, end_ms)`` and every record covering any of them. ``devices``: only
    those; by default every device of the site (:func:`site_devices`).

    Records are points at their receive time, which may be long after the readings (a backlog
    sent after an outage, a replay): they are selected by their ``last_ts`` field. The readings of
    records reaching outside the period are loaded too, so that whole signed ranges are checked."""
    # the fields only (not SELECT *: the tags of every row would be encoded and parsed again)
    fields: dict[str, list[str]] = defaultdict(list)
    for s in client.query(f"SHOW FIELD KEYS FROM {_KINDS}"):
        fields[s.name] += [str(row["fieldKey"]) for row in s.rows]
    for device in sorted(devices) if devices is not None else site_devices(client, site):
        yield from _load(client, site, start_ms, end_ms, device=device, fields=fields).items()


def _load(
    client: InfluxClient, site: str, start_ms: int, end_ms: int, *, device: str, fields: dict[str, list[str]]
) -> dict[str, DeviceData]:
    out: dict[str, DeviceData] = defaultdict(DeviceData)
    where = f"{schema.SITE} = {literal(site)} AND {schema.DEVICE} = {literal(device)}"
    seqs: dict[str, set[int]] = defaultdict(set)
    # a month per request: a long period in one answer takes longer than the client's timeout
    # and holds every row of it in memory at once
    windows = [(t, min(t + WINDOW_MS, end_ms)) for t in range(start_ms, end_ms, WINDOW_MS)]
    answers = (
        client.query_results(
            ";".join(
                f"SELECT {','.join(ident(f) for f in sorted(fs))} FROM {ident(m)} WHERE {where} "
                f"AND time >= {t0}ms AND time < {t1}ms GROUP BY {schema.DEVICE}"
                for m, fs in sorted(fields.items())
            )
        )
        for t0, t1 in (windows if fields else [])
    )
    for res in (r for answer in answers for r in answer):
        for s in res.get("series") or []:
            device = s["tags"][schema.DEVICE]
            dev = out[device]
            have = seqs[device]
            cols = s["columns"]
            i_seq = cols.index(schema.SEQ) if schema.SEQ in cols else None
            i_q = cols.index(schema.QUALITY) if schema.QUALITY in cols else None
            value_cols = [(i, c) for i, c in enumerate(cols) if c in VOCABULARY]
            for v in s.get("values") or []:
                seq = v[i_seq] if i_seq is not None else None
                if seq is None:
                    dev.unsigned += 1
                    continue
                quality = (v[i_q] if i_q is not None else None) or "good"
                values = {c: v[i] for i, c in value_cols if v[i] is not None}
                dev.readings.append(StoredReading(int(seq), int(v[0]), values, str(quality)))
                have.add(int(seq))
    for s in client.query(
        f'SELECT * FROM "{schema.PROVENANCE}" WHERE {where} AND last_ts >= {start_ms} '
        f"GROUP BY {schema.DEVICE}"
    ):
        dev_id = s.tags[schema.DEVICE]
        have = seqs.get(dev_id, set())
        lo, hi = (min(have), max(have)) if have else (None, None)
        for row in s.rows:
            rec = _record(site, dev_id, row)
            if rec is None:
                continue
            inside = (
                lo is not None and hi is not None and rec.signed.last_seq >= lo and rec.signed.first_seq <= hi
            )
            starts_in = start_ms <= rec.ts < end_ms
            if inside or starts_in:
                out[dev_id].records.append(rec)
    # readings of the records' ranges that lie outside the period
    for dev_id, data in out.items():
        if not data.records:
            continue
        have = {r.seq for r in data.readings}
        lo = min(r.signed.first_seq for r in data.records)
        hi = max(r.signed.last_seq for r in data.records)
        if have and lo >= min(have) and hi <= max(have):
            continue
        for s in client.query(
            f"SELECT * FROM {_KINDS} WHERE {schema.SITE} = {literal(site)} "
            f"AND {schema.DEVICE} = {literal(dev_id)} AND {schema.SEQ} >= {lo} AND {schema.SEQ} <= {hi}"
        ):
            for row in s.rows:
                if row.get(schema.SEQ) is not None and int(row[schema.SEQ]) not in have:
                    data.readings.append(_reading(row))
                    have.add(int(row[schema.SEQ]))
    return dict(out)
