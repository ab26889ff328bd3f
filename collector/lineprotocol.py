"""Telemetry messages → InfluxDB line protocol (pure).

One line per reading: ``<kind>,<tags> <fields> <ts>`` with millisecond precision, the
timestamp being the reading's ``ts``. Tags are the device's site, device and descriptive tags
(absent ones omitted), sorted by key as InfluxDB prefers. Field types follow the closed
vocabulary, never the JSON value: a float field is always written as a float (``5.0``), an int
field with the ``i`` suffix, a bool field as ``true``/``false``, so a shard never sees a type
conflict whatever a sender's JSON encoder did with ``5`` vs ``5.0``.

Escaping is the project's one set of rules, :mod:`epcwatch.influx.lineprotocol` (re-exported
here); tag values are validated with :func:`tag_value_writable` before they get here, so the
series key of a message is built without checking them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from epcwatch.influx import lineprotocol as _lp
from epcwatch.influx.lineprotocol import (
    LineProtocolError,
    body,
    escape_key,
    escape_measurement,
    format_float,
    format_value,
    point,
    tag_value_writable,
)
from epcwatch.influx.schema import DEVICE_TAG_KEYS
from epcwatch.itemcodes import ItemCodeError, derive_tags
from epcwatch.measurements import VOCABULARY, FieldType
from epcwatch.wire import TelemetryMessage, Value

__all__ = [
    "DEVICE_TAG_KEYS",
    "FIELD_FORMAT",
    "LineProtocolError",
    "body",
    "device_tags",
    "escape_key",
    "escape_measurement",
    "fields_text",
    "format_typed",
    "format_value",
    "point",
    "series_key",
    "tag_value_writable",
    "telemetry_lines",
]

_FIELD_TYPES: Final = {name: m.field_type for name, m in VOCABULARY.items()}
#: per measurement name: the escaped ``name=`` prefix and the field type
FIELD_FORMAT: Final = {name: (escape_key(name) + "=", ft) for name, ft in _FIELD_TYPES.items()}
_float = format_float


def series_key(measurement: str, tags: Mapping[str, str | None]) -> str:
    """The series key of validated names (see :func:`epcwatch.influx.lineprotocol.series_key`)."""
    return _lp.series_key(measurement, tags, checked=False)


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
