"""The InfluxQL the dashboards and ``epcwatch stats`` run, in one place.

Both read the schema of docs/data-model.md. Which meters count where (so nothing is counted
twice) follows the metering roles documented there:

- category sub-meters (分项) carry ``category`` A–D and no ``tenant``; a building's and a
  site's electricity is the sum of its category sub-meters, so category shares add up to 100 %;
- tenant meters (分户) carry ``tenant``;
- main (incoming) meters carry neither; they give building power and peak demand.

Daily energy comes from ``energy_interval`` with ``interval = '1d'`` (one point per device and
site-local day, at local midnight), so a period is a set of whole local days.
"""

from __future__ import annotations

from typing import Final

from epcwatch import energy, itemcodes
from epcwatch.influx import schema

#: the factors of the shipped GB/T 2589-2020 table (epcwatch.energy), as numbers in InfluxQL
_F: Final = energy.default_factors()
#: kgce per kWh of electricity, calorific equivalent, and the same in tce
KGCE_PER_KWH: Final = _F.kgce_per_unit("electricity")
TCE_PER_KWH: Final = KGCE_PER_KWH / 1000
#: heat: 34.12 kgce/GJ = 0.03412 kgce/MJ × 3.6 MJ/kWh
KGCE_PER_KWH_HEAT: Final = _F.kgce_per_unit("heat") * energy.to_base("heat", 1, "kWh")
#: natural gas (configurable in ``epcwatch stats``)
KGCE_PER_M3_GAS: Final = _F.kgce_per_unit("natural_gas")

SITE: Final = '"site" =~ /^$site$/ AND "building" =~ /^$building$/'
DAILY: Final = "\"interval\" = '1d'"
CATEGORY_METERS: Final = "\"category\" != '' AND \"tenant\" = ''"
SELECTED_CATEGORY_METERS: Final = '"category" =~ /^$category$/ AND "tenant" = \'\''
TENANT_METERS: Final = '"tenant" =~ /^$tenant$/'
MAIN_METERS: Final = "\"category\" = '' AND \"tenant\" = ''"
#: other energy types are building-level meters; tenant sub-meters are left out
TYPE_METERS: Final = "\"tenant\" = ''"

#: fields of ``energy_interval`` that are energy types (分类): energy carrier (epcwatch.energy),
#: unit and the national energy class (分类能耗编码)
CARRIER_FIELDS: Final = {
    "energy_import": ("electricity", "kWh", "01000"),
    "water_volume": ("water", "m3", "02000"),
    "gas_volume": ("natural_gas", "m3", "03000"),
    "heat_energy": ("heat", "kWh", "04000"),
    "cooling_energy": ("cooling", "kWh", "05000"),
}
ENERGY_TYPES: Final = {f: unit for f, (_, unit, _) in CARRIER_FIELDS.items()}
CATEGORIES: Final = {"A": "lighting & sockets", "B": "HVAC", "C": "power", "D": "special"}
#: bilingual labels of the two item-code levels: the category letters (level 1, A = 01A00) and
#: the codes (level 2, or level 1 for a meter of a whole item), e.g. "01A00 照明插座用电 Lighting and sockets"
ITEM_LABELS: Final = {
    **{c.alias: c.label for c in itemcodes.level(1) if c.alias},
    **{c.code: c.label for lv in (1, 2) for c in itemcodes.level(lv)},
}

#: the selected year (``$year`` option "2025 : 2024": text = year, value = previous year).
#: Daily points sit at site-local midnight; shifting the UTC calendar bounds by 12 h takes
#: exactly the local days of the year for every timezone from UTC-11:59 to UTC+12.
YEAR: Final = "time >= '${year:text}-01-01T00:00:00Z' - 12h AND time < '${year:text}-12-31T12:00:00Z'"
PREVIOUS_YEAR: Final = "time >= '${year}-01-01T00:00:00Z' - 12h AND time < '${year}-12-31T12:00:00Z'"
TIME_FILTER: Final = "$timeFilter"


def _group(by: tuple[str, ...]) -> str:
    return " GROUP BY " + ", ".join(f'"{t}"' for t in by) if by else ""


def electricity(by: tuple[str, ...], when: str = TIME_FILTER, meters: str = CATEGORY_METERS) -> str:
    """Electricity (kWh) over whole days, summed per ``by`` tags."""
    return (
        f'SELECT sum("energy_import") AS "electricity_kwh" FROM "{schema.ENERGY_INTERVAL}" '
        f"WHERE {DAILY} AND {meters} AND {SITE} AND {when}{_group(by)}"
    )


def electricity_tce(by: tuple[str, ...], when: str = TIME_FILTER) -> str:
    """Electricity in tonnes of standard coal (0.1229 kgce/kWh)."""
    return (
        f'SELECT sum("energy_import") * {TCE_PER_KWH!r} AS "tce" FROM "{schema.ENERGY_INTERVAL}" '
        f"WHERE {DAILY} AND {CATEGORY_METERS} AND {SITE} AND {when}{_group(by)}"
    )


def energy_types(by: tuple[str, ...], when: str = TIME_FILTER) -> str:
    """Water, gas, heat and cooling over whole days (building-level meters)."""
    fields = ", ".join(f'sum("{f}") AS "{f}"' for f in ENERGY_TYPES if f != "energy_import")
    return (
        f'SELECT {fields} FROM "{schema.ENERGY_INTERVAL}" '
        f"WHERE {DAILY} AND {TYPE_METERS} AND \"category\" = '' AND {SITE} AND {when}{_group(by)}"
    )


def other_tce(by: tuple[str, ...], when: str = TIME_FILTER) -> str:
    """Gas and heat in tonnes of standard coal (GB/T 2589-2020 factors), one column each."""
    return (
        f'SELECT sum("gas_volume") * {KGCE_PER_M3_GAS / 1000!r} AS "tce_gas", '
        f'sum("heat_energy") * {KGCE_PER_KWH_HEAT / 1000!r} AS "tce_heat" FROM "{schema.ENERGY_INTERVAL}" '
        f"WHERE {DAILY} AND {TYPE_METERS} AND \"category\" = '' AND {SITE} AND {when}{_group(by)}"
    )


def completeness(when: str = TIME_FILTER) -> str:
    """Per category sub-meter: the share (%) of the range's days its daily points cover.

    ``coverage`` is the share of a day the meter's readings covered; a day without a point
    counts as 0. ``$__range_s / 86400`` is the number of days of the (whole-day) range.
    """
    return (
        'SELECT sum("coverage") * 100 / ($__range_s / 86400) AS "completeness_pct" '
        f'FROM "{schema.ENERGY_INTERVAL}" '
        f'WHERE {DAILY} AND {CATEGORY_METERS} AND {SITE} AND {when} GROUP BY "site", "building", "device"'
    )


def building_info(by: tuple[str, ...]) -> str:
    """Floor area and occupants (one point per building at time 0), summed per ``by`` tags."""
    return (
        'SELECT sum("floor_area_m2") AS "floor_area_m2", sum("occupants") AS "occupants" '
        f'FROM "{schema.BUILDING_INFO}" WHERE {SITE}{_group(by)}'
    )


def daily(field: str, meters: str, by: str) -> str:
    """Daily sums of an ``energy_interval`` field per ``by`` tag, days in the dashboard timezone."""
    return (
        f'SELECT sum("{field}") AS "{field}" FROM "{schema.ENERGY_INTERVAL}" '
        f"WHERE {DAILY} AND {meters} AND {SITE} AND $timeFilter "
        f"GROUP BY time(1d), \"{by}\" fill(none) tz('$timezone')"
    )


def main_power() -> str:
    return (
        'SELECT mean("active_power") AS "active_power" FROM "meter" '
        f'WHERE {MAIN_METERS} AND {SITE} AND $timeFilter GROUP BY time($__interval), "building" fill(null)'
    )


#: the demand interval: 15-minute rollups, as utilities bill peak demand
DEMAND: Final = "\"interval\" = '15m'"
#: kWh in a bucket of $__interval_ms → mean W over it
KWH_TO_MEAN_W: Final = "* 3600000000 / $__interval_ms"


def power_by(tag: str, meters: str) -> str:
    """Mean power (W) per ``tag`` value from the 15-minute energy rollups: exact averages that add
    up across devices (no per-device subquery). Panels using it set a 15 m minimum interval."""
    return (
        f'SELECT sum("energy_import") {KWH_TO_MEAN_W} AS "active_power" FROM "{schema.ENERGY_INTERVAL}" '
        f"WHERE {DEMAND} AND {meters} AND {SITE} AND $timeFilter "
        f'GROUP BY time($__interval), "{tag}" fill(none)'
    )


def load_profile() -> str:
    return (
        'SELECT mean("active_power") AS "active_power" FROM "meter" '
        f"WHERE {MAIN_METERS} AND {SITE} AND $timeFilter GROUP BY time(1h) fill(none)"
    )


def peak_demand(by: str, step: str = "") -> str:
    """Peak 15-minute demand (W) of the main meters per ``by`` tag (per ``step`` if given)."""
    group = f"time({step}), \"{by}\" fill(none) tz('$timezone')" if step else f'"{by}"'
    return (
        'SELECT max("demand") AS "peak_demand" FROM (SELECT sum("energy_import") * 4000 AS "demand" '
        f'FROM "{schema.ENERGY_INTERVAL}" WHERE {DEMAND} AND {MAIN_METERS} AND {SITE} AND $timeFilter '
        f'GROUP BY time(15m), "{by}") WHERE $timeFilter GROUP BY {group}'
    )
