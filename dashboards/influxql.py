"""InfluxQL panel targets and Grafana's macro expansion for them.

grafana-foundation-sdk has builders for dashboards, panels and variables but no InfluxDB query
model, so :class:`InfluxQLQuery` is the small dataquery of our own that serialises the way
Grafana's InfluxDB data source stores a raw InfluxQL target (``rawQuery: true``).

:func:`expand` reproduces what Grafana does to such a query before sending it to InfluxDB
(``$timeFilter``, ``$__interval``, ``$__interval_ms``, ``${__from}``/``${__to}`` and template
variables with the InfluxQL data source's regex formatting of multi-value variables), so tests
and ``epcwatch stats`` run exactly the query a panel runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dm

from epcwatch.dashboards.errors import DashboardsError

#: the data source plugin id and the dashboards' data source variable
DATASOURCE_TYPE: Final = "influxdb"
DATASOURCE_VAR: Final = "${datasource}"


def datasource_ref() -> dm.DataSourceRef:
    return dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=DATASOURCE_VAR)


class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target as Grafana's InfluxDB data source saves it."""

    def __init__(self, ref_id: str, query: str, result_format: str = "time_series", alias: str = "") -> None:
        self.ref_id = ref_id
        self.query = query
        self.result_format = result_format
        self.alias = alias

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "datasource": {"type": DATASOURCE_TYPE, "uid": DATASOURCE_VAR},
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias:
            doc["alias"] = self.alias
        return doc


class InfluxQLTarget(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder form of :class:`InfluxQLQuery`, for ``Panel.with_target``."""

    def __init__(
        self, query: str, ref_id: str = "A", result_format: str = "time_series", alias: str = ""
    ) -> None:
        self._query = InfluxQLQuery(ref_id, query, result_format, alias)

    def build(self) -> InfluxQLQuery:
        return self._query


# -- macro expansion ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable's current selection, as the query sees it.

    ``multi``/``include_all`` switch Grafana's InfluxQL formatting to regex alternation;
    ``text`` is what ``${name:text}`` gives (the option's label; defaults to the value).
    """

    values: tuple[str, ...]
    multi: bool = False
    include_all: bool = False
    text: str | None = None

    @classmethod
    def single(cls, value: str, text: str | None = None) -> Variable:
        return cls((value,), text=text)

    @classmethod
    def many(cls, values: Sequence[str]) -> Variable:
        return cls(tuple(values), multi=True, include_all=True)


_REGEX_SPECIAL = re.compile(r"([\\/^$*+?.()|\[\]{}])")


def regex_escape(value: str) -> str:
    """Grafana's ``influxSpecialRegexEscape``: escape what a ``/…/`` regex literal treats specially."""
    return _REGEX_SPECIAL.sub(r"\\\1", value)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def format_value(var: Variable) -> str:
    """Grafana's InfluxQL ``interpolateQueryExpr``: plain value, or ``(a|b)`` regex alternation."""
    if len(var.values) == 1 and _is_number(var.values[0]):
        return var.values[0]  # Grafana passes numbers through unescaped
    if not var.multi and not var.include_all:
        return var.values[0] if var.values else ""
    escaped = [regex_escape(v) for v in var.values]
    if len(escaped) == 1:
        return escaped[0]
    return "(" + "|".join(escaped) + ")"


#: Grafana's ``kbn.roundInterval`` table: (upper bound ms, rounded interval ms)
_ROUND: Final = (
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)


def interval_ms(from_ms: int, to_ms: int, max_data_points: int = 1000, min_interval_ms: int = 10_000) -> int:
    """The ``$__interval`` Grafana picks: range / max data points, rounded to a "nice" value."""
    raw = max((to_ms - from_ms) / max(1, max_data_points), min_interval_ms)
    for bound, rounded in _ROUND:
        if raw < bound:
            return max(rounded, min_interval_ms)
    return 31_536_000_000


_UNITS_MS: Final = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def duration_ms(text: str) -> int:
    """``15m`` → 900000 (Grafana interval syntax; ``>`` prefixes are accepted and ignored)."""
    m = re.fullmatch(r">?(\d+)(ms|s|m|h|d|w)", text.strip())
    if m is None:
        raise ValueError(f"not a duration: {text!r}")
    return int(m.group(1)) * _UNITS_MS[m.group(2)]


def interval_text(ms: int) -> str:
    """An InfluxQL duration literal for ``ms`` (``1h``, ``30s``, ``500ms``)."""
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)\]\]|\$(\w+)")


class UnknownVariableError(DashboardsError, KeyError):
    """A query references a template variable the caller did not give."""


def expand(
    query: str,
    from_ms: int,
    to_ms: int,
    variables: Mapping[str, Variable] | None = None,
    *,
    max_data_points: int = 1000,
    min_interval: str | None = None,
) -> str:
    """Expand a panel query the way Grafana does before it reaches InfluxDB.

    ``min_interval`` is the panel's "Min interval" (``interval`` in the JSON), a lower limit of
    ``$__interval``.
    """
    floor = duration_ms(min_interval) if min_interval else 10_000
    step = interval_ms(from_ms, to_ms, max_data_points, floor)
    builtins = {
        "timeFilter": f"time >= {from_ms}ms and time <= {to_ms}ms",
        "__interval": interval_text(step),
        "interval": interval_text(step),
        "__interval_ms": str(step),
        "__from": str(from_ms),
        "__to": str(to_ms),
        # Grafana rounds the range to whole seconds
        "__range_ms": str(to_ms - from_ms),
        "__range_s": str(round((to_ms - from_ms) / 1000)),
    }
    given = dict(variables or {})

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3) or m.group(4)
        fmt = m.group(2)
        if name in builtins and name not in given:
            return builtins[name]
        if name not in given:
            raise UnknownVariableError(f"query uses ${name}, which has no value: {query[:120]}")
        var = given[name]
        if fmt == "text":
            return var.text if var.text is not None else ",".join(var.values)
        if fmt == "raw":
            return ",".join(var.values)
        if fmt == "regex":
            return format_value(Variable(var.values, multi=True, include_all=True))
        return format_value(var)

    return _VAR.sub(sub, query)


def referenced_variables(query: str) -> set[str]:
    """Names of the template variables (not Grafana's built-ins) a query uses."""
    names = {m.group(1) or m.group(3) or m.group(4) for m in _VAR.finditer(query)}
    return names - {
        "timeFilter",
        "__interval",
        "interval",
        "__interval_ms",
        "__from",
        "__to",
        "__range_ms",
        "__range_s",
    }
