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
import re
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
from epcwatch.topics import ID_RE, MAX_ID_LEN
from epcwatch.wire import (
    INT64_MAX,
    MAX_ABS_VALUE,
    MAX_READINGS_PER_MESSAGE,
    MAX_TS_MS,
    MIN_TS_MS,
)

_TOP_KEYS: Final = frozenset({"v", "site", "device", "kind", "tags", "readings", "proof"})
_SITE_KEYS: Final = frozenset({"v", "site", "devices"})
_BLOCK_KEYS: Final = frozenset({"device", "kind", "tags", "readings", "proof"})
_PROOF_KEYS: Final = frozenset({"kid", "first_prev", "sig"})
#: the shapes of a proof's fields (epcwatch.wire.Proof)
_KID: Final = re.compile(r"[0-9a-f]{16}")
_B64_32: Final = re.compile(r"[A-Za-z0-9+/]{43}=")
_B64_64: Final = re.compile(r"[A-Za-z0-9+/]{86}==")
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
#: checked device headers (site, device, kind, tags) → series key, kind, tags: a device sends the
#: same header with every reading, so it is checked and formatted once (bounded memo)
_HEADERS: dict[tuple[object, ...], tuple[str, str, dict[str, str | None]]] = {}
_MAX_HEADERS: Final = 200_000
_FLOAT: Final = FieldType.FLOAT
_INT: Final = FieldType.INT
_BOOL: Final = FieldType.BOOL
_isfinite = math.isfinite
#: value names → their field types and the positions of the integer fields (bounded memo)
_PLANS: dict[tuple[str, ...], tuple[tuple[FieldType, ...], tuple[int, ...]]] = {}
_MAX_PLANS: Final = 10_000
#: JSON object text → line-protocol fields: ':' becomes '=' (and '"' is deleted)
_JSON_TO_FIELDS: Final = bytes.maketrans(b":", b"=")
_FLOAT_NAMES: Final = frozenset(n for n, (_, ft) in FIELD_FORMAT.items() if ft is FieldType.FLOAT)


#: one device's readings as parsed: kind, tags (as written), the reading documents, whether they
#: are signed (stored with their seq), and the series' line-protocol key when at hand
Block = tuple[str, dict[str, str | None], list[dict[str, Any]], bool, str | None]
#: a signed device's readings as parsed: device, reading documents (consecutive seqs), the proof
#: (kid, first_prev, sig as sent); the pipeline checks it against the keyring and the chain
Signed = tuple[str, list[dict[str, Any]], tuple[str, str, str]]


@dataclass(frozen=True, slots=True)
class FastResult:
    lines: list[str]
    #: the newest reading's timestamp (ms), for the lag statistic
    max_ts: int
    #: the readings' seqs as inclusive ranges (for the end-to-end acknowledgement)
    seq_ranges: list[tuple[int, int]]
    #: the checked readings, for interval energy at ingest
    blocks: list[Block]
    #: every device's seqs as inclusive ranges (schema 2 carries several devices)
    device_ranges: list[tuple[str, list[tuple[int, int]]]]
    #: the signed devices' readings and proofs, in document order (their proofs not yet checked)
    signed: list[Signed]


def device_id_ok(device: str) -> bool:
    return len(device) <= MAX_ID_LEN and ID_RE.match(device) is not None


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
        # its JSON text becomes line protocol in one byte translation (quotes dropped, colons
        # made equals signs), since the keys are vocabulary names ([a-z0-9_]) and the values
        # plain numbers: '{"a":1.5,"b":2}' → 'a=1.5,b=2'.
        # An integer literal is a float in line protocol (only a trailing "i" makes an integer);
        # orjson.loads never yields NaN or infinity, so the magnitude check covers finiteness.
        xs = values.values()
        for x in xs:
            if type(x) is not float and type(x) is not int:
                return None
        if not max(map(abs, xs)) <= MAX_ABS_VALUE:
            return None
        return orjson.dumps(values)[1:-1].translate(_JSON_TO_FIELDS, b'"').decode()
    text = _typed_text(values)
    if text is not None:
        return text
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


def _typed_text(values: dict[str, Any]) -> str | None:
    """The same for devices with integer and boolean fields besides floats (AHUs, chiller plants,
    lighting controllers): orjson prints the values, and the integer fields get their "i". Values
    of exactly their field's JSON type only (a float field may hold an integer literal, as
    above); anything else is left to the field-by-field loop."""
    keys = tuple(values)
    plan = _PLANS.get(keys)
    if plan is None:
        if not all(n in FIELD_FORMAT for n in keys):
            return None
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        types = tuple(FIELD_FORMAT[n][1] for n in keys)
        plan = _PLANS[keys] = (types, tuple(i for i, ft in enumerate(types) if ft is _INT))
    types, ints = plan
    xs = values.values()
    for ft, v in zip(types, xs, strict=True):
        tv = type(v)
        if ft is _FLOAT:
            if tv is not float and tv is not int:
                return None
        elif ft is _INT:
            if tv is not int:
                return None
        elif tv is not bool:
            return None
    if not max(map(abs, xs)) <= MAX_ABS_VALUE:
        return None
    parts = orjson.dumps(values)[1:-1].translate(_JSON_TO_FIELDS, b'"').decode().split(",")
    for i in ints:
        parts[i] += "i"
    return ",".join(parts)


def _proof(raw: object) -> tuple[str, str, str] | None:
    """A proof's (kid, first_prev, sig) when its shape is the wire model's, else ``None``."""
    if type(raw) is not dict or raw.keys() != _PROOF_KEYS:
        return None
    kid, prev, sig = raw["kid"], raw["first_prev"], raw["sig"]
    if type(kid) is not str or type(prev) is not str or type(sig) is not str:
        return None
    if _KID.fullmatch(kid) is None or _B64_32.fullmatch(prev) is None or _B64_64.fullmatch(sig) is None:
        return None
    return kid, prev, sig


def _device_lines(  # noqa: PLR0917
    site: str,
    device: object,
    doc: dict[str, Any],
    lines: list[str],
    blocks: list[Block],
    dev_ranges: list[tuple[str, list[tuple[int, int]]]],
    signed: list[Signed],
) -> int | None:
    """Append the lines of one device's readings (``doc`` holds kind, tags, readings and maybe a
    proof); returns the newest timestamp, or ``None`` when the slow path must decide. A signed
    device's readings are written with their ``seq`` (and ``quality`` unless good), as
    :func:`epcwatch.collector.proofs.reading_lines` writes them."""
    kind = doc.get("kind")
    raw_tags = doc.get("tags", {})
    if type(raw_tags) is not dict:
        return None
    try:
        header = (site, device, kind, *raw_tags.items())
        known = _HEADERS.get(header)
    except TypeError:  # an unhashable value: not a valid document
        return None
    if known is None:
        if type(kind) is not str or kind not in _KINDS:
            return None
        tags: dict[str, str | None] = dict.fromkeys(DEVICE_TAG_KEYS)
        if not _TAG_KEYS.issuperset(raw_tags):
            return None
        for name, value in raw_tags.items():
            if value is None:
                continue
            if not _tag_ok(name, value):
                return None
            tags[name] = value
        code = tags["item_code"]
        if code is not None:
            # the category tag is derived from the item code; a contradicting one goes the slow way
            derived = _ITEM_CATEGORY[code]
            if tags["category"] is not None and tags["category"] != derived:
                return None
            tags["category"] = derived
        elif tags["category"] is not None:
            tags["item_code"] = _ALIAS_CODE[tags["category"]]
        if type(device) is not str or not device_id_ok(device):
            return None
        tags["site"] = site
        tags["device"] = device
        if len(_HEADERS) >= _MAX_HEADERS:
            _HEADERS.clear()
        known = _HEADERS[header] = (series_key(kind, tags), kind, tags)
    key, kind, tags = known
    readings = doc.get("readings")
    if type(readings) is not list or not 1 <= len(readings) <= MAX_READINGS_PER_MESSAGE:
        return None
    raw_proof = doc.get("proof")
    proof = None
    if raw_proof is not None:
        proof = _proof(raw_proof)
        if proof is None:
            return None
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
        if proof is None:
            lines.append(f"{key} {fields} {ts}")
        elif quality == "good":
            lines.append(f"{key} {fields},seq={seq}i {ts}")
        else:
            lines.append(f'{key} {fields},seq={seq}i,quality="{quality}" {ts}')
        if ts > max_ts:  # noqa: PLR1730 - a comparison, not a call: this runs per reading
            max_ts = ts
    ranges.append((run_first, last_seq))
    if proof is not None:
        if len(ranges) != 1:  # a signed block holds consecutive seqs
            return None
        signed.append((device, readings, proof))  # type: ignore[arg-type]  # device checked: a str
    dev_ranges.append((device, ranges))  # type: ignore[arg-type]  # device checked: a str
    blocks.append((kind, tags, readings, proof is not None, key))
    return max_ts


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
    lines: list[str] = []
    blocks: list[Block] = []
    dev_ranges: list[tuple[str, list[tuple[int, int]]]] = []
    signed: list[Signed] = []
    max_ts = _device_lines(site, device, doc, lines, blocks, dev_ranges, signed)
    if max_ts is None:
        return None
    return FastResult(lines, max_ts, dev_ranges[0][1], blocks, dev_ranges, signed)


def site_telemetry(site: str, payload: bytes) -> FastResult | None:
    """Line protocol for a schema-2 ``payload`` (several devices of ``site``) received on the
    site telemetry topic, or ``None`` when the slow path must decide. The document is parsed
    once and checked block by block, so the per-message cost is spread over its devices."""
    try:
        doc: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or not _SITE_KEYS.issuperset(doc):
        return None
    v = doc.get("v")
    if type(v) is not int or v != 2 or doc.get("site") != site:
        return None
    blocks = doc.get("devices")
    if type(blocks) is not list or not blocks:
        return None
    lines: list[str] = []
    out_blocks: list[Block] = []
    dev_ranges: list[tuple[str, list[tuple[int, int]]]] = []
    signed: list[Signed] = []
    max_ts = 0
    seen = set()
    for block in blocks:
        if type(block) is not dict or not _BLOCK_KEYS.issuperset(block):
            return None
        device = block.get("device")
        if type(device) is not str or device in seen:
            return None
        seen.add(device)
        ts = _device_lines(site, device, block, lines, out_blocks, dev_ranges, signed)
        if ts is None:
            return None
        max_ts = max(max_ts, ts)
    if len(lines) > MAX_READINGS_PER_MESSAGE:
        return None
    return FastResult(lines, max_ts, [], out_blocks, dev_ranges, signed)
