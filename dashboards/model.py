"""Building blocks of the dashboards: variables, panels with InfluxQL targets, units and titles
from the measurement vocabulary, and deterministic rendering to JSON.

Pure: no I/O, no clock. :func:`render` gives identical bytes for identical inputs (sorted keys,
fixed indentation, panel ids assigned in layout order), which is what makes ``dashboards build``
reproducible and the committed JSON reviewable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

from epcwatch import measurements
from epcwatch.dashboards.influxql import DATASOURCE_TYPE, InfluxQLTarget, datasource_ref
from epcwatch.influx import schema

#: the name of the data source deploy/grafana/provisioning/datasources/epcwatch.yaml creates
DATASOURCE_NAME: Final = "epcwatch-influxdb"
#: the Grafana folder dashboards are provisioned and published into
FOLDER: Final = "epcwatch"
TAG: Final = "epcwatch"

#: vocabulary unit → Grafana unit id (anything else becomes a "suffix:" unit)
GRAFANA_UNITS: Final = {
    "W": "watt",
    "kWh": "kwatth",
    "V": "volt",
    "A": "amp",
    "Hz": "hertz",
    "°C": "celsius",
    "%": "percent",
    "var": "voltampreact",
    "VA": "voltamp",
    "kvarh": "kvoltampreacth",
    "ppm": "ppm",
    "h": "h",
    "m3": "m3",
    "1": "none",
    "ms": "ms",
}


def grafana_unit(unit: str) -> str:
    return GRAFANA_UNITS.get(unit, f"suffix: {unit}")


def unit_of(name: str) -> str:
    """Grafana unit of a vocabulary measurement."""
    return grafana_unit(measurements.get(name).unit)


def title_of(name: str) -> str:
    """Panel title of a vocabulary measurement: its description, capitalised, with the unit."""
    m = measurements.get(name)
    unit = "" if m.unit == "1" else f" ({m.unit})"
    return m.description[:1].upper() + m.description[1:] + unit


@dataclass(frozen=True, slots=True)
class Target:
    query: str
    ref_id: str = "A"
    result_format: str = "time_series"
    alias: str = ""


class _PanelBuilder(Protocol):
    """What every SDK panel builder offers; lets one helper configure them all."""

    def title(self, title: str) -> Self: ...
    def description(self, description: str) -> Self: ...
    def datasource(self, datasource: dm.DataSourceRef) -> Self: ...
    def with_target(self, target: cogbuilder.Builder[cogvariants.Dataquery]) -> Self: ...
    def unit(self, unit: str) -> Self: ...
    def height(self, h: int) -> Self: ...
    def span(self, w: int) -> Self: ...
    def build(self) -> dm.Panel: ...


P = TypeVar("P", bound=_PanelBuilder)


def panel(
    builder: P,
    title: str,
    targets: Sequence[Target],
    *,
    unit: str = "none",
    w: int = 12,
    h: int = 8,
    description: str = "",
) -> P:
    """Common settings of a panel: title, InfluxDB data source, InfluxQL targets, unit and size."""
    b = builder.title(title).datasource(datasource_ref()).unit(unit).height(h).span(w)
    if description:
        b = b.description(description)
    for t in targets:
        b = b.with_target(InfluxQLTarget(t.query, t.ref_id, t.result_format, t.alias))
    return b


def transformation(id_: str, options: dict[str, object]) -> dm.DataTransformerConfig:
    return dm.DataTransformerConfig(id_val=id_, options=options)


# -- variables ------------------------------------------------------------------------------------


def datasource_variable() -> db.DatasourceVariable:
    return (
        db.DatasourceVariable("datasource")
        .label("Data source")
        .type(DATASOURCE_TYPE)
        .current(dm.VariableOption(selected=True, text=DATASOURCE_NAME, value=DATASOURCE_NAME))
    )


def tag_variable(name: str, label: str, measurement: str, where: str = "") -> db.QueryVariable:
    """A multi-value variable over a tag's values, with "All" meaning every value."""
    cond = f" WHERE {where}" if where else ""
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(datasource_ref())
        .query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "{name}"{cond}')
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .current(dm.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def site_building_variables(measurement: str = schema.ENERGY_INTERVAL) -> list[db.QueryVariable]:
    return [
        tag_variable("site", "Site", measurement),
        tag_variable("building", "Building", measurement, '"site" =~ /^$site$/'),
    ]


def timezone_variable(timezone: str) -> db.ConstantVariable:
    """Hidden: the IANA zone ``tz()`` clauses use so daily bars start at local midnight."""
    return db.ConstantVariable("timezone").value(timezone)


def year_variable(first: int, last: int, current: int) -> db.CustomVariable:
    """Options "2025 : 2024": text is the year, value the previous year (see queries.YEAR)."""
    years = list(range(last, first - 1, -1))
    current = min(max(current, first), last)
    return (
        db.CustomVariable("year")
        .label("Year")
        .values(", ".join(f"{y} : {y - 1}" for y in years))
        .options([dm.VariableOption(selected=y == current, text=str(y), value=str(y - 1)) for y in years])
        .current(dm.VariableOption(selected=True, text=str(current), value=str(current - 1)))
    )


# -- dashboards ---------------------------------------------------------------------------------


@dataclass
class Layout:
    """Rows of panels, in order; turned into a dashboard by :func:`assemble`."""

    rows: list[tuple[str, list[cogbuilder.Builder[dm.Panel]]]] = field(default_factory=list)

    def row(self, title: str, *panels: cogbuilder.Builder[dm.Panel]) -> Layout:
        self.rows.append((title, list(panels)))
        return self


@dataclass(frozen=True, slots=True)
class BuildOptions:
    timezone: str = "Asia/Shanghai"
    first_year: int = 2020
    last_year: int = 2035
    year: int = 2025


def assemble(
    uid: str,
    title: str,
    description: str,
    layout: Layout,
    variables: Sequence[cogbuilder.Builder[dm.VariableModel]],
    *,
    time_from: str = "now-7d",
    time_to: str = "now",
    tags: Sequence[str] = (),
) -> dict[str, object]:
    """The dashboard as a plain JSON-ready dict, panel ids numbered in layout order."""
    d = (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG, *tags])
        .time(time_from, time_to)
        .timezone("browser")
        .refresh("5m")
        .editable()
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable())
    )
    for v in variables:
        d = d.with_variable(v)
    for row_title, panels in layout.rows:
        d = d.with_row(db.Row(row_title))
        for p in panels:
            d = d.with_panel(p)
    doc = to_plain(d.build())
    assert isinstance(doc, dict)
    for i, p in enumerate(doc.get("panels", []), start=1):
        p["id"] = i
    doc["id"] = None
    doc["version"] = 1
    return doc


def to_plain(obj: object) -> object:
    """SDK model objects → plain dicts and lists (what the encoder writes)."""
    return json.loads(json.dumps(obj, cls=JSONEncoder))


def render(doc: object) -> str:
    """Deterministic JSON text of a dashboard."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
