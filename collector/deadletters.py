"""Durable dead letters (pure): a message the collector cannot store becomes a point of the
``dead_letter`` measurement, so that it is kept in InfluxDB next to the data it belongs to.

One point per dead letter, at the time the collector received the message:

- tags: ``site`` and ``device`` (from the topic, when it follows the contract), ``reason`` (the
  rejection's code: ``schema``, ``invalid_json``, ``rejected_by_database`` …), ``collector`` and
  ``sha`` (the first 16 hex digits of the payload's SHA-256, so two different messages received
  in the same millisecond never overwrite each other, and a redelivered one overwrites itself);
- fields: ``topic``, ``reason_text`` (the full explanation, up to 1,000 characters),
  ``excerpt`` (the first 200 bytes of the payload, undecodable bytes replaced), ``sha256`` and
  ``bytes`` (the payload's size).

The whole payload travels with the MQTT dead letter (``epc/deadletter/v1/{group}``, base64);
InfluxDB keeps what an operator needs to find and recognise it.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import orjson

from epcwatch import topics
from epcwatch.collector.lineprotocol import point, tag_value_writable
from epcwatch.influx import schema
from epcwatch.influx.client import Series
from epcwatch.wire import INT64_MAX, MAX_READINGS_PER_MESSAGE

MEASUREMENT: Final = schema.DEAD_LETTER
EXCERPT_BYTES: Final = 200
MAX_REASON_TEXT: Final = 1000


def _tag(value: str | None) -> str | None:
    return value if value and len(value) <= 128 and tag_value_writable(value) else None


def topic_ids(topic: str) -> tuple[str | None, str | None]:
    """(site, device) named by a telemetry topic of the contract, else as much as can be told."""
    try:
        t = topics.parse(topic)
    except topics.TopicError:
        return None, None
    return t.site, t.device


def excerpt(payload: bytes) -> str:
    text = payload[:EXCERPT_BYTES].decode("utf-8", "replace")
    return "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in text)


def dead_letter_line(*, topic: str, reason: str, payload: bytes, received_ms: int, collector: str) -> str:
    """The line protocol of one dead letter (see the module docstring)."""
    site, device = topic_ids(topic)
    digest = hashlib.sha256(payload).hexdigest()
    code = reason.split(":", 1)[0].strip() or "unknown"
    line = point(
        MEASUREMENT,
        {
            "site": _tag(site),
            "device": _tag(device),
            "reason": _tag(code[:64]) or "unknown",
            "collector": _tag(collector),
            "sha": digest[:16],
        },
        {
            "topic": topic[:256],
            "reason_text": reason[:MAX_REASON_TEXT],
            "excerpt": excerpt(payload),
            "sha256": digest,
            "bytes": len(payload),
        },
        received_ms,
    )
    assert line is not None  # the fields are never all None
    return line


def _claimed_ranges(readings: object) -> list[tuple[int, int]]:
    if not isinstance(readings, list) or len(readings) > MAX_READINGS_PER_MESSAGE:
        return []
    seqs = sorted(
        {
            r["seq"]
            for r in readings
            if isinstance(r, dict) and type(r.get("seq")) is int and 0 <= r["seq"] <= INT64_MAX
        }
    )
    ranges: list[tuple[int, int]] = []
    for s in seqs:
        if ranges and s == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], s)
        else:
            ranges.append((s, s))
    return ranges


def claimed_seqs(topic: str, payload: bytes) -> list[tuple[str, str, list[tuple[int, int]]]]:
    """Best effort for a message that is being dead-lettered: per device, the seqs its readings
    claim (one device for a schema-1 message, each device block of a schema-2 site message), so
    that the edge learns the message is durably handled and stops sending it. Empty when the
    topic or the payload names no seq at all."""
    try:
        t = topics.parse(topic)
    except topics.TopicError:
        return []
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(doc, dict):
        return []
    if t.channel == "telemetry" and t.device is not None:
        ranges = _claimed_ranges(doc.get("readings"))
        return [(t.site, t.device, ranges)] if ranges else []
    if t.channel != "site_telemetry":
        return []
    blocks = doc.get("devices")
    if not isinstance(blocks, list) or len(blocks) > MAX_READINGS_PER_MESSAGE:
        return []
    out: list[tuple[str, str, list[tuple[int, int]]]] = []
    for blk in blocks:
        device = blk.get("device") if isinstance(blk, dict) else None
        if not isinstance(device, str) or not topics.ID_RE.fullmatch(device):
            continue
        ranges = _claimed_ranges(blk.get("readings"))
        if ranges:
            out.append((t.site, device, ranges))
    return out


#: the columns ``epcwatch collector dead-letters`` shows, in order
COLUMNS: Final = ("time", "site", "device", "reason", "topic", "bytes", "sha256", "collector", "excerpt")


def list_query(*, since_ms: int, site: str | None = None, limit: int = 100) -> str:
    """InfluxQL for the newest dead letters since ``since_ms`` (optionally of one site)."""
    where = f"time >= {int(since_ms)}ms"
    if site is not None:
        where += ' AND "site" = \'' + topics.check_id(site, "site") + "'"
    return f'SELECT * FROM "{MEASUREMENT}" WHERE {where} ORDER BY time DESC LIMIT {int(limit)}'


def rows(series: list[Series]) -> list[dict[str, Any]]:
    """The rows of :func:`list_query`'s answer as dicts with the keys of :data:`COLUMNS`."""
    return [{c: {**s.tags, **r}.get(c) for c in COLUMNS} for s in series for r in s.rows]
