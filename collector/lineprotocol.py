"""Telemetry messages → InfluxDB line protocol (pure).

One line per reading: ``<kind>,<tags> <fields> <ts>`` with millisecond precision, the
timestamp being the reading's ``ts``. Tags are the device's site, device and descriptive tags
(absent ones omitted), sorted by key as InfluxDB prefers. Field types follow the closed
vocabulary, never the JSON value: a float field is always written as a float (``5.0``), an int
field with the ``i`` suffix, a bool field as ``true``/``false``, so a shard never sees a type
conflict whatever a sender's JSON encoder did with ``5`` vs ``5.0``.

Escaping (line protocol): commas and spaces in measurement names; commas, equals signs and
spaces in tag keys, tag values and field keys; double quotes and backslashes in string field
values. A tag value ending in a backslash cannot be written unambiguously by InfluxDB 1.x, so
:func:`tag_value_writable` lets validation reject it instead of storing something else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import isfinite as _isfinite
from typing import Final

from epcwatch.itemcodes import ItemCodeError, derive_tags
from epcwatch.measurements import VOCABULARY, FieldType
from epcwatch.wire import TelemetryMessage, Value

#: the order tags are written in (sorted by key, as InfluxDB's index prefers)
DEVICE_TAG_KEYS: Final = ("building", "category", "device", "floor", "item_code", "profile", "site", "tenant")

_MEASUREMENT_ESC: Final = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESC: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STR_ESC: Final = str.maketrans({'"': r"\"", "\\": r"\\"})
_SPECIAL_KEY_CHARS: Final = frozenset(", =")
_FIELD_TYPES: Final = {name: m.field_type for name, m in VOCABULARY.items()}
#: per measurement name: the escaped ``name=`` prefix and the field type
FIELD_FORMAT: Final = {name: (name.translate(_KEY_ESC) + "=", ft) for name, ft in _FIELD_TYPES.items()}


class LineProtocolError(ValueError):
    """A value that cannot be represented in line protocol."""


def escape_measurement(name: str) -> str:
    return name.translate(_MEASUREMENT_ESC)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    if _SPECIAL_KEY_CHARS.isdisjoint(text):
        return text
    return text.translate(_KEY_ESC)


def tag_value_writable(value: str) -> bool:
    """False for values line protocol cannot carry: empty, control characters, trailing backslash."""
    return bool(value) and not value.endswith("\\") and all(c >= " " and c != "\x7f" for c in value)


def format_value(value: Value | str) -> str:
    """Format a field value by its Python type (used for health points, not telemetry)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return _float(value)
    return '"' + value.translate(_STR_ESC) + '"'


def _float(v: float) -> str:
    if not _isfinite(v):
        raise LineProtocolError(f"non-finite float {v!r}")
    return repr(v)


def format_typed(name: str, value: Value) -> str:
    """Format a telemetry value with the vocabulary's field type of ``name``."""
    ft = _FIELD_TYPES.get(name)
    if ft is FieldType.FLOAT:
        return _float(float(value))
    if ft is FieldType.INT:
        if isinstance(value, float) and not value.is_integer():
            raise LineProtocolError(f"{name}: {value!r} is not an integer")
        return f"{int(value)}i"
    if ft is FieldType.BOOL:
        if not isinstance(value, bool):
            raise LineProtocolError(f"{name}: {value!r} is not a boolean")
        return "true" if value else "false"
    raise LineProtocolError(f"unknown measurement {name!r}")


def series_key(measurement: str, tags: Mapping[str, str | None]) -> str:
    """``measurement,k=v,…`` with tags sorted by key and empty/absent values omitted."""
    parts = [escape_measurement(measurement)]
    for k in sorted(tags):
        v = tags[k]
        if v:
            parts.append(f"{escape_key(k)}={escape_key(v)}")
    return ",".join(parts)


def device_tags(msg: TelemetryMessage) -> dict[str, str | None]:
    """The InfluxDB tags of ``msg``'s device; ``category`` and ``item_code`` complete each other
    (``01A10`` → ``A``, ``A`` → ``01A00``, see :func:`epcwatch.itemcodes.derive_tags`)."""
    t = msg.tags
    try:
        category, item_code = derive_tags(t.category, t.item_code)
    except ItemCodeError as exc:
        raise LineProtocolError(str(exc)) from None
    return {
        "building": t.building,
        "category": category,
        "device": msg.device,
        "floor": t.floor,
        "item_code": item_code,
        "profile": t.profile,
        "site": msg.site,
        "tenant": t.tenant,
    }


def fields_text(values: Mapping[str, Value]) -> str:
    """``name=value,…`` typed by the vocabulary (the hot loop: one table lookup per value)."""
    parts = []
    for n, v in values.items():
        spec = FIELD_FORMAT.get(n)
        if spec is None:
            raise LineProtocolError(f"unknown measurement {n!r}")
        prefix, ft = spec
        if ft is FieldType.FLOAT:
            parts.append(prefix + _float(v if type(v) is float else float(v)))
        else:
            parts.append(prefix + format_typed(n, v))
    return ",".join(parts)


def telemetry_lines(msg: TelemetryMessage) -> list[str]:
    """One line per reading of ``msg`` (the series key is built once per message)."""
    key = series_key(msg.kind, device_tags(msg))
    return [f"{key} {fields_text(r.values)} {r.ts}" for r in msg.readings]


def point(
    measurement: str,
    tags: Mapping[str, str | None],
    fields: Mapping[str, Value | str | None],
    ts_ms: int,
) -> str | None:
    """A generic point; fields whose value is ``None`` are left out (``None`` if none remain)."""
    fs = [f"{escape_key(k)}={format_value(v)}" for k, v in fields.items() if v is not None]
    if not fs:
        return None
    return f"{series_key(measurement, tags)} {','.join(fs)} {int(ts_ms)}"


def body(lines: Iterable[str]) -> bytes:
    """The request body of a write: lines joined by newlines, UTF-8."""
    return "\n".join(lines).encode("utf-8")
