"""Fast path for well-formed telemetry: JSON → checked → line protocol in one pass (pure).

Pydantic validation of the wire model costs ~7 µs per reading of 14 values (its value checks
run in Python) and building line protocol from the model another few; together they would cap a
collector far below what InfluxDB ingests. Nearly every message is well formed, so this module
checks the common, unambiguous shape directly on orjson's output and formats line protocol in
the same loop.

It is deliberately conservative: it only says "accepted" for documents it can prove the wire
model accepts with the same values (exact JSON types, no coercions), and returns ``None`` for
anything else — then :mod:`epcwatch.collector.validate` (pydantic, the authority) decides and
explains. A differential property test (tests/collector/unit/test_fastpath.py) checks that whatever
this accepts, the wire model accepts too, with identical line protocol.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import orjson

from epcwatch import itemcodes
from epcwatch.collector.lineprotocol import (
    DEVICE_TAG_KEYS,
    FIELD_FORMAT,
    series_key,
    tag_value_writable,
)
from epcwatch.influx.schema import DEVICE_KINDS
from epcwatch.measurements import FieldType
from epcwatch.wire import (
    INT64_MAX,
    MAX_ABS_VALUE,
    MAX_READINGS_PER_MESSAGE,
    MAX_TS_MS,
    MIN_TS_MS,
)

_TOP_KEYS: Final = frozenset({"v", "site", "device", "kind", "tags", "readings"})
_TAG_KEYS: Final = frozenset({"building", "floor", "category", "tenant", "profile", "item_code"})
_READING_KEYS: Final = frozenset({"seq", "ts", "values", "quality"})
_KINDS: Final = frozenset(DEVICE_KINDS)
_CATEGORIES: Final = frozenset({"A", "B", "C", "D"})
#: known item code → the category it stands for (None outside electricity items)
_ITEM_CATEGORY: Final = {c: itemcodes.category_of(c) for c in itemcodes.known_codes()}
#: category letter → its level-1 item code (A → 01A00)
_ALIAS_CODE: Final = {c: itemcodes.resolve(c) for c in _CATEGORIES}
_QUALITIES: Final = frozenset({"good", "partial"})
_MAX_TAG_LEN: Final = 128
_FLOAT: Final = FieldType.FLOAT
_INT: Final = FieldType.INT
_BOOL: Final = FieldType.BOOL
_isfinite = math.isfinite
_FLOAT_NAMES: Final = frozenset(n for n, (_, ft) in FIELD_FORMAT.items() if ft is FieldType.FLOAT)


@dataclass(frozen=True, slots=True)
class FastResult:
    lines: list[str]
    #: the newest reading's timestamp (ms), for the lag statistic
    max_ts: int
    #: the readings' seqs as inclusive ranges (for the end-to-end acknowledgement)
    seq_ranges: list[tuple[int, int]]


def _tag_ok(key: str, value: object) -> bool:
    if key == "category":
        return type(value) is str and value in _CATEGORIES
    if key == "item_code":
        return type(value) is str and value in _ITEM_CATEGORY
    return type(value) is str and len(value) <= _MAX_TAG_LEN and tag_value_writable(value)


def _values_text(values: object) -> str | None:
    if type(values) is not dict or not values:
        return None
    if _FLOAT_NAMES.issuperset(values):
        # the common case (meters): every field is a float. orjson (Rust) prints the numbers;
        # its JSON text becomes line protocol by two replacements, since the keys are vocabulary
        # names ([a-z0-9_]) and the values are plain numbers: '{"a":1.5,"b":2}' → 'a=1.5,b=2'.
        # An integer literal is a float in line protocol (only a trailing "i" makes an integer);
        # orjson.loads never yields NaN or infinity, so the magnitude check covers finiteness.
        xs = values.values()
        for x in xs:
            if type(x) is not float and type(x) is not int:
                return None
        if not max(map(abs, xs)) <= MAX_ABS_VALUE:
            return None
        return orjson.dumps(values).decode()[2:-1].replace('":', "=").replace(',"', ",")
    parts = []
    for name, v in values.items():
        spec = FIELD_FORMAT.get(name)
        if spec is None:
            return None
        prefix, ft = spec
        tv = type(v)
        if ft is _FLOAT:
            if tv is float:
                if not _isfinite(v) or abs(v) > MAX_ABS_VALUE:
                    return None
                parts.append(prefix + repr(v))
            elif tv is int:
                if abs(v) > MAX_ABS_VALUE:
                    return None
                parts.append(prefix + repr(float(v)))
            else:
                return None
        elif ft is _INT:
            if tv is int or (tv is float and v.is_integer()):
                if abs(v) > MAX_ABS_VALUE:
                    return None
                parts.append(f"{prefix}{int(v)}i")
            else:
                return None
        elif ft is _BOOL:
            if tv is not bool:
                return None
            parts.append(prefix + ("true" if v else "false"))
        else:  # pragma: no cover - the vocabulary has three types
            return None
    return ",".join(parts)


def telemetry(site: str, device: str, payload: bytes) -> FastResult | None:
    """Line protocol for ``payload`` received on the telemetry topic of ``site``/``device``,
    or ``None`` when the slow path must decide (invalid, unusual or ambiguous documents)."""
    try:
        doc: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or not _TOP_KEYS.issuperset(doc):
        return None
    v = doc.get("v", 1)
    if type(v) is not int or v != 1:
        return None
    if doc.get("site") != site or doc.get("device") != device:
        return None
    kind = doc.get("kind")
    if type(kind) is not str or kind not in _KINDS:
        return None
    tags: dict[str, str | None] = dict.fromkeys(DEVICE_TAG_KEYS)
    raw_tags = doc.get("tags", {})
    if type(raw_tags) is not dict or not _TAG_KEYS.issuperset(raw_tags):
        return None
    for key, value in raw_tags.items():
        if value is None:
            continue
        if not _tag_ok(key, value):
            return None
        tags[key] = value
    code = tags["item_code"]
    if code is not None:
        # the category tag is derived from the item code; a contradicting one goes the slow way
        derived = _ITEM_CATEGORY[code]
        if tags["category"] is not None and tags["category"] != derived:
            return None
        tags["category"] = derived
    elif tags["category"] is not None:
        tags["item_code"] = _ALIAS_CODE[tags["category"]]
    tags["site"] = site
    tags["device"] = device
    readings = doc.get("readings")
    if type(readings) is not list or not 1 <= len(readings) <= MAX_READINGS_PER_MESSAGE:
        return None
    key = series_key(kind, tags)
    lines = []
    last_seq = -1
    max_ts = 0
    ranges: list[tuple[int, int]] = []
    run_first = -1
    for r in readings:
        if type(r) is not dict or not _READING_KEYS.issuperset(r):
            return None
        seq = r.get("seq")
        ts = r.get("ts")
        if type(seq) is not int or type(ts) is not int:
            return None
        if not (last_seq < seq <= INT64_MAX) or not (MIN_TS_MS <= ts < MAX_TS_MS):
            return None
        if seq != last_seq + 1 or run_first < 0:
            if run_first >= 0:
                ranges.append((run_first, last_seq))
            run_first = seq
        last_seq = seq
        quality = r.get("quality", "good")
        if type(quality) is not str or quality not in _QUALITIES:
            return None
        fields = _values_text(r.get("values"))
        if fields is None:
            return None
        lines.append(f"{key} {fields} {ts}")
        max_ts = max(max_ts, ts)
    ranges.append((run_first, last_seq))
    return FastResult(lines, max_ts, ranges)
