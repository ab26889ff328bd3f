"""Which lines of a batch did the server refuse? (pure)

InfluxDB 1.x answers a batch with some bad points with ``400`` and a message such as::

    partial write: unable to parse 'meter,site=a f=x 1': invalid boolean
    partial write: field type conflict: input field "f" on measurement "meter" is type integer,
        already exists as type float dropped=1

(the second on one line). The points it could store are stored. :func:`identify` maps such a
message to the positions of the refused lines; when it cannot (``points beyond retention
policy``, other servers' wordings) it returns an empty set and the pipeline bisects the batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

_UNPARSABLE: Final = re.compile(r"unable to parse '(.*)': [^\n]*")
_CONFLICT: Final = re.compile(
    r'field type conflict: input field "((?:[^"\\]|\\.)*)" on measurement "((?:[^"\\]|\\.)*)" is type (\w+)'
)
_UNESCAPED_SPACE: Final = re.compile(r"(?<!\\) ")
_UNESCAPED_COMMA: Final = re.compile(r"(?<!\\),")
_MEAS_ESC: Final = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESC: Final = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _value_type(text: str) -> str:
    if text.startswith('"'):
        return "string"
    if text in ("t", "T", "true", "True", "TRUE", "f", "F", "false", "False", "FALSE"):
        return "boolean"
    if text.endswith("i"):
        return "integer"
    if text.endswith("u"):
        return "unsigned"
    return "float"


def _fields(line: str) -> tuple[str, dict[str, str]]:
    """Escaped measurement and ``{escaped field key: value type}`` of a line without string
    fields containing spaces (the collector writes none)."""
    parts = _UNESCAPED_SPACE.split(line)
    if len(parts) < 2:
        return "", {}
    measurement = _UNESCAPED_COMMA.split(parts[0], maxsplit=1)[0]
    fields: dict[str, str] = {}
    for kv in _UNESCAPED_COMMA.split(parts[1]):
        key, sep, value = kv.partition("=")
        if sep:
            fields[key] = _value_type(value)
    return measurement, fields


def identify(message: str, lines: Sequence[str]) -> set[int]:
    """Positions in ``lines`` of the lines the server's ``message`` names as refused."""
    found: set[int] = set()
    unparsable = {m.group(1) for m in _UNPARSABLE.finditer(message)}
    if unparsable:
        found |= {i for i, line in enumerate(lines) if line in unparsable}
    for m in _CONFLICT.finditer(message):
        field = m.group(1).replace('\\"', '"').translate(_KEY_ESC)
        measurement = m.group(2).replace('\\"', '"').translate(_MEAS_ESC)
        wrong_type = m.group(3)
        for i, line in enumerate(lines):
            meas, fields = _fields(line)
            if meas == measurement and fields.get(field) == wrong_type:
                found.add(i)
    return found
