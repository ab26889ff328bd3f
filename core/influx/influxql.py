"""Quoting in InfluxQL statements (pure): identifiers in double quotes, strings in single quotes."""

from __future__ import annotations


def ident(name: str) -> str:
    """``"name"`` with backslashes and double quotes escaped."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(value: str) -> str:
    """``'value'`` with backslashes and single quotes escaped (a tag value in a WHERE clause)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
