"""InfluxDB line protocol: the one set of escaping rules every writer uses (pure).

The rules are those of the InfluxDB 1.x line-protocol reference, checked against InfluxDB 1.6:

- measurement names: a backslash before each comma and space;
- tag keys, tag values and field keys: a backslash before each comma, equals sign and space;
- string field values: a backslash before each double quote and each backslash;
- nothing else is escaped. In particular a backslash in a tag key, tag value or field key is
  written as it is: InfluxDB 1.x only unescapes ``\\,``, ``\\=`` and ``\\ `` there, so a doubled
  backslash would be stored doubled (a second series for the same building).

A name that ends in a backslash cannot be written (the backslash would escape the separator
after it); nor can an empty one or one with control characters. :func:`tag_value_writable`
tells which; :func:`point` and :func:`series_key` raise :class:`LineProtocolError` on them, so
nothing is ever stored under a different name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import isfinite
from typing import Final

from epcwatch.errors import EpcwatchError

FieldValue = bool | int | float | str

_MEASUREMENT_ESC: Final = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESC: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STR_ESC: Final = str.maketrans({'"': r"\"", "\\": r"\\"})
_SPECIAL_KEY_CHARS: Final = frozenset(", =")


class LineProtocolError(EpcwatchError, ValueError):
    """A name or value that line protocol cannot carry.

    Also a ``ValueError`` (what it was before the project's error tree), so existing callers
    that catch ``ValueError`` around point formatting keep working.
    """


def tag_value_writable(value: str) -> bool:
    """False for names line protocol cannot carry: empty, control characters, trailing backslash."""
    return bool(value) and not value.endswith("\\") and all(c >= " " and c != "\x7f" for c in value)


def escape_measurement(name: str) -> str:
    """A measurement name as written in a line (commas and spaces escaped)."""
    return name.translate(_MEASUREMENT_ESC)


def escape_key(text: str) -> str:
    """A tag key, tag value or field key as written in a line (commas, ``=`` and spaces escaped)."""
    if _SPECIAL_KEY_CHARS.isdisjoint(text):
        return text
    return text.translate(_KEY_ESC)


def escape_string(text: str) -> str:
    """A string field value, quoted (double quotes and backslashes escaped)."""
    return '"' + text.translate(_STR_ESC) + '"'


def format_float(v: float) -> str:
    if not isfinite(v):
        raise LineProtocolError(f"non-finite float {v!r}")
    return repr(float(v))


def format_value(value: FieldValue) -> str:
    """A field value typed by its Python type: ``true``, ``5i``, ``5.0``, ``"text"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        return format_float(value)
    return escape_string(value)


def _checked(kind: str, name: str) -> str:
    if not tag_value_writable(name):
        raise LineProtocolError(f"{kind} {name!r} cannot be written in line protocol")
    return name


def series_key(measurement: str, tags: Mapping[str, str | None], *, checked: bool = True) -> str:
    """``measurement,k=v,…`` with tags sorted by key and empty/absent values omitted.

    Raises :class:`LineProtocolError` for a name :func:`tag_value_writable` refuses, unless
    ``checked`` is false (for names already validated, as the collector's hot path does).
    """
    if not checked:
        return ",".join(
            [escape_measurement(measurement)]
            + [f"{escape_key(k)}={escape_key(v)}" for k in sorted(tags) if (v := tags[k])]
        )
    parts = [escape_measurement(_checked("measurement", measurement))]
    for k in sorted(tags):
        v = tags[k]
        if v:
            parts.append(f"{escape_key(_checked('tag key', k))}={escape_key(_checked('tag value', v))}")
    return ",".join(parts)


def fields_text(fields: Mapping[str, FieldValue | None]) -> str:
    """``k=v,…`` for the fields whose value is not ``None`` (empty when none remain)."""
    return ",".join(
        f"{escape_key(_checked('field key', k))}={format_value(v)}"
        for k, v in fields.items()
        if v is not None
    )


def point(
    measurement: str,
    tags: Mapping[str, str | None],
    fields: Mapping[str, FieldValue | None],
    ts: int,
) -> str | None:
    """One line; fields whose value is ``None`` are left out (``None`` if none remain).

    ``ts`` is an integer in the write's precision (the caller's choice: ms, s, …).
    """
    fs = fields_text(fields)
    if not fs:
        return None
    return f"{series_key(measurement, tags)} {fs} {int(ts)}"


def points(
    measurement: str,
    tags: Mapping[str, str | None],
    rows: Iterable[tuple[int, Mapping[str, FieldValue | None]]],
) -> list[str]:
    """One line per ``(ts, fields)`` row of one series (the key is built once)."""
    key = series_key(measurement, tags)
    out = []
    for ts, fields in rows:
        fs = fields_text(fields)
        if fs:
            out.append(f"{key} {fs} {int(ts)}")
    return out


def body(lines: Iterable[str]) -> bytes:
    """The request body of a write: lines joined by newlines, UTF-8."""
    return "\n".join(lines).encode("utf-8")

