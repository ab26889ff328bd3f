"""The five dashboards: Portfolio, Building energy, EPC savings, Device health, HVAC & lighting.

Each function returns the dashboard as a JSON-ready dict; :func:`build_all` maps file names to
them. Queries come from :mod:`epcwatch.dashboards.queries` (shared with ``epcwatch stats``)
or are written here against docs/data-model.md; titles and units come from the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

from grafana_foundation_sdk.builders import bargauge, heatmap, piechart, stat, table, timeseries
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import piechart as pm

from epcwatch.dashboards import queries as q
from epcwatch.dashboards.model import (
    BuildOptions,
    Layout,
    Target,
    assemble,
    panel,
    site_building_variables,
    tag_variable,
    timezone_variable,
    title_of,
    transformation,
    unit_of,
    year_variable,
)
from epcwatch.influx import schema

#: units of the vocabulary's energy and power measurements (kWh → kwatth, W → watt)
ENERGY_UNIT: Final = unit_of("energy_import")
POWER_UNIT: Final = unit_of("active_power")
SITE_TAGS: Final = ("site",)
BUILDING_TAGS: Final = ("site", "building")


def _sum() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["sum"]).values(False)


def _last() -> cb.ReduceDataOptions:
    return cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)


def _bars(b: timeseries.Panel) -> timeseries.Panel:
    return (
        b.draw_style(cm.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    )


_L = TypeVar("_L", piechart.Panel, timeseries.Panel, table.Panel)


def _item_labels(b: _L) -> _L:
    """Bilingual labels of item codes: series named by a category letter or an item code are
    shown as "01A00 照明插座用电 Lighting and sockets"; table cells holding one are mapped alike."""
    for key, label in q.ITEM_LABELS.items():
        b = b.override_by_name(key, [dm.DynamicConfigValue(id_val="displayName", value=label)])
    options = {key: dm.ValueMappingResult(text=label) for key, label in q.ITEM_LABELS.items()}
    return b.mappings([dm.ValueMap(options=options)])


def _join_on_tags() -> list[dm.DataTransformerConfig]:
    """Drop the time column (A's is the range start, B's the epoch) and merge rows on the tags."""
    return [
        transformation("organize", {"excludeByName": {"Time": True}}),
        transformation("merge", {}),
    ]


def _ratio(numerator: str, denominator: str, alias: str) -> list[dm.DataTransformerConfig]:
    """Join query A and B on their tag columns, then numerator / denominator."""
    return [
        *_join_on_tags(),
        transformation(
            "calculateField",
            {
                "mode": "binary",
                "alias": alias,
                "binary": {"left": numerator, "operator": "/", "right": denominator},
                "replaceFields": False,
            },
        ),
    ]


def portfolio(o: BuildOptions) -> dict[str, object]:
    e_site = Target(q.electricity(SITE_TAGS), result_format="table")
    e_site_bars = Target(q.electricity(SITE_TAGS), alias="$tag_site")  # one series (bar) per site
    layout = Layout()
    layout.row(
        "Today and this month",
        panel(bargauge.Panel(), "Electricity today by site (kWh)", [e_site_bars], unit=ENERGY_UNIT)
        .time_from("now/d")
        .reduce_options(_sum()),
        panel(bargauge.Panel(), "Electricity this month by site (kWh)", [e_site_bars], unit=ENERGY_UNIT)
        .time_from("now/M")
        .reduce_options(_sum()),
    )
    building_area = Target(q.building_info(BUILDING_TAGS), "B", "table")
    layout.row(
        "Selected period (dashboard time range)",
        panel(
            table.Panel(),
            "Electricity by site (kWh)",
            [e_site],
            unit=ENERGY_UNIT,
            w=8,
            description="Sum of the category sub-meters (分项) over whole local days.",
        ),
        panel(
            table.Panel(),
            "Electricity by site, same period last year (kWh)",
            [e_site],
            unit=ENERGY_UNIT,
            w=8,
        ).time_shift("1y"),
        panel(
            table.Panel(),
            "Electricity by site (tce)",
            [Target(q.electricity_tce(SITE_TAGS), result_format="table")],
            w=8,
            description="Tonnes of standard coal at 0.1229 kgce/kWh (GB/T 2589-2020, calorific equivalent).",
        ).decimals(3),
        panel(
            table.Panel(),
            "Energy by carrier and site (分类: kWh, m³)",
            [
                Target(q.electricity(SITE_TAGS), "A", "table"),
                Target(q.energy_types(SITE_TAGS), "B", "table"),
            ],
            w=12,
            description="Electricity 01000 (category sub-meters), water 02000, gas 03000 (m³), "
            "central heating 04000 and cooling 05000 (kWh) over whole local days.",
        ).transformations(_join_on_tags()),
        panel(
            table.Panel(),
            "Energy by site in standard coal (tce)",
            [
                Target(q.electricity_tce(SITE_TAGS), "A", "table"),
                Target(q.other_tce(SITE_TAGS), "B", "table"),
            ],
            w=12,
            description="GB/T 2589-2020: electricity 0.1229 kgce/kWh (calorific equivalent), natural gas "
            "1.2143 kgce/m³, heat 34.12 kgce/GJ; water is not converted. Total = the sum of the columns.",
        )
        .decimals(3)
        .transformations(
            [
                *_join_on_tags(),
                transformation(
                    "calculateField",
                    {"mode": "reduceRow", "alias": "tce_total", "reduce": {"reducer": "sum"}},
                ),
            ]
        ),
        panel(
            table.Panel(),
            "Energy intensity by building (kWh/m²)",
            [Target(q.electricity(BUILDING_TAGS), result_format="table"), building_area],
            w=12,
        ).transformations(_ratio("electricity_kwh", "floor_area_m2", "kWh/m²")),
        _item_labels(
            panel(
                piechart.Panel(),
                "Category shares (分项)",
                [Target(q.electricity(("category",), meters=q.SELECTED_CATEGORY_METERS), alias="$tag_category")],
                unit=ENERGY_UNIT,
                w=12,
                description="Level-1 items of the national code (01A00 … 01D00; A–D are their letters).",
            )
        )
        .pie_type(pm.PieChartType.DONUT)
        .reduce_options(_sum()),
        _item_labels(
            panel(
                table.Panel(),
                "Electricity by item code, level 2 (分项 01A10 …, kWh)",
                [
                    Target(
                        q.electricity(("category", "item_code"), meters=q.SELECTED_CATEGORY_METERS),
                        result_format="table",
                    )
                ],
                unit=ENERGY_UNIT,
                w=12,
                description="Sub-items of the national code; a meter of a whole level-1 item appears "
                "under its level-1 code (01D00).",
            )
        ),
        panel(
            table.Panel(),
            "Data completeness by category sub-meter (%)",
            [Target(q.completeness(), result_format="table")],
            unit="percent",
            w=12,
            description="Share of the range's days covered by each sub-meter's readings; "
            "below 100 % the energy figures miss consumption.",
        ).decimals(1),
    )
    year = Target(q.electricity(SITE_TAGS, q.YEAR), "A", "table")
    layout.row(
        "Year $year",
        panel(
            table.Panel(),
            "EUI by site, year $year (kWh/m²·a)",
            [year, Target(q.building_info(SITE_TAGS), "B", "table")],
            w=12,
        ).transformations(_ratio("electricity_kwh", "floor_area_m2", "EUI kWh/m²·a")),
        panel(
            table.Panel(),
            "Year-over-year change by site",
            [
                year,
                Target(
                    q.electricity(SITE_TAGS, q.PREVIOUS_YEAR).replace(
                        '"electricity_kwh"', '"electricity_kwh_previous_year"'
                    ),
                    "B",
                    "table",
                ),
            ],
            w=12,
            description="Electricity of year $year against the same calendar days of the previous year.",
        ).transformations(
            [
                *_join_on_tags(),
                transformation(
                    "calculateField",
                    {
                        "mode": "binary",
                        "alias": "ratio",
                        "binary": {
                            "left": "electricity_kwh",
                            "operator": "/",
                            "right": "electricity_kwh_previous_year",
                        },
                    },
                ),
            ]
        ),
    )
    return _assemble(
        "epcwatch-portfolio",
        "Portfolio",
        "Energy per site and building: today, this month, EUI, tce, year over year, category shares.",
        layout,
        [
            *site_building_variables(),
            tag_variable("category", "Category (分项)", schema.ENERGY_INTERVAL, '"site" =~ /^$site$/'),
            timezone_variable(o.timezone),
            year_variable(o.first_year, o.last_year, o.year),
        ],
        time_from="now/M",
        time_to="now/M",
    )


def building_energy(o: BuildOptions) -> dict[str, object]:
    layout = Layout()
    layout.row(
        "Power",
        panel(
            timeseries.Panel(),
            "Building power (main meters)",
            [Target(q.main_power(), alias="$tag_building")],
            unit=POWER_UNIT,
            w=24,
        ),
        _item_labels(
            panel(
                timeseries.Panel(),
                "Power by category (分项)",
                [Target(q.power_by("category", q.SELECTED_CATEGORY_METERS), alias="$tag_category")],
                unit=POWER_UNIT,
                description="Mean power over each interval from the 15-minute energy rollups.",
            )
        ).interval("15m"),
        panel(
            timeseries.Panel(),
            "Power by tenant (分户)",
            [Target(q.power_by("tenant", q.TENANT_METERS), alias="$tag_tenant")],
            unit=POWER_UNIT,
            description="Mean power over each interval from the 15-minute energy rollups.",
        ).interval("15m"),
    )
    layout.row(
        "Energy",
        _bars(
            _item_labels(
                panel(
                    timeseries.Panel(),
                    "Daily electricity by category (分项, kWh)",
                    [
                        Target(
                            q.daily("energy_import", q.SELECTED_CATEGORY_METERS, "category"),
                            alias="$tag_category",
                        )
                    ],
                    unit=ENERGY_UNIT,
                )
            )
        ),
        _bars(
            _item_labels(
                panel(
                    timeseries.Panel(),
                    "Daily electricity by item code, level 2 (分项, kWh)",
                    [
                        Target(
                            q.daily("energy_import", q.SELECTED_CATEGORY_METERS, "item_code"),
                            alias="$tag_item_code",
                        )
                    ],
                    unit=ENERGY_UNIT,
                )
            )
        ),
        _bars(
            panel(
                timeseries.Panel(),
                "Daily electricity by tenant (分户, kWh)",
                [Target(q.daily("energy_import", q.TENANT_METERS, "tenant"), alias="$tag_tenant")],
                unit=ENERGY_UNIT,
            )
        ),
        panel(
            heatmap.Panel(),
            "Daily load profile (hourly mean power, main meters)",
            [Target(q.load_profile())],
            unit=POWER_UNIT,
            w=12,
            description="Each column one day; the colour shows how many hours fell into each power band.",
        ).calculate(True),
        panel(
            timeseries.Panel(),
            "Daily peak 15-minute demand (W)",
            [Target(q.peak_demand("building", "1d"), alias="$tag_building")],
            unit=POWER_UNIT,
            w=8,
        ),
        panel(
            stat.Panel(),
            "Peak 15-minute demand in range",
            [Target(q.peak_demand("building"), alias="$tag_building")],
            unit=POWER_UNIT,
            w=4,
        ).reduce_options(cb.ReduceDataOptions().calcs(["max"]).values(False)),
    )
    variables = [
        *site_building_variables(),
        tag_variable("category", "Category (分项)", schema.ENERGY_INTERVAL, '"site" =~ /^$site$/'),
        tag_variable("tenant", "Tenant (分户)", schema.ENERGY_INTERVAL, '"site" =~ /^$site$/'),
        timezone_variable(o.timezone),
    ]
    return _assemble(
        "epcwatch-building-energy",
        "Building energy",
        "Power, energy by category (分项) and tenant (分户), load profile and peak demand of buildings.",
        layout,
        variables,
    )


SAVINGS: Final = '"contract" =~ /^$contract$/ AND "site" =~ /^$site$/'


def _savings_q(fields: str, by_time: bool = True) -> str:
    group = (
        " GROUP BY time(1d), \"contract\" fill(none) tz('$timezone')" if by_time else ' GROUP BY "contract"'
    )
    return f'SELECT {fields} FROM "savings" WHERE {SAVINGS} AND $timeFilter{group}'


def _model_q(fields: str) -> str:
    return f'SELECT {fields} FROM "{schema.SAVINGS_MODEL}" WHERE {SAVINGS} AND $timeFilter GROUP BY "contract"'


def epc_savings(o: BuildOptions) -> dict[str, object]:
    layout = Layout()
    layout.row(
        "Savings",
        panel(
            timeseries.Panel(),
            "Actual vs adjusted baseline (kWh/day)",
            [
                Target(
                    _savings_q('sum("actual") AS "actual", sum("adjusted_baseline") AS "adjusted_baseline"')
                )
            ],
            unit=ENERGY_UNIT,
        ),
        panel(
            timeseries.Panel(),
            "Cumulative savings vs guarantee (kWh)",
            [
                Target(
                    _savings_q(
                        'last("cumulative_savings") AS "cumulative_savings", '
                        'last("guaranteed_cumulative") AS "guaranteed_cumulative"'
                    )
                )
            ],
            unit=ENERGY_UNIT,
        ),
        _bars(
            panel(
                timeseries.Panel(),
                "Daily savings (kWh)",
                [Target(_savings_q('sum("savings") AS "savings"'))],
                unit=ENERGY_UNIT,
            )
        ),
        panel(
            timeseries.Panel(),
            title_of("outdoor_temp"),
            [Target(_savings_q('mean("temperature") AS "temperature"'))],
            unit="celsius",
        ),
        panel(
            stat.Panel(),
            "Savings in range (kWh)",
            [Target(_savings_q('sum("savings") AS "savings"', by_time=False))],
            unit=ENERGY_UNIT,
            w=6,
        ).reduce_options(_sum()),
        panel(
            stat.Panel(),
            "Ahead of guarantee (kWh)",
            [
                Target(
                    _savings_q(
                        'last("cumulative_savings") - last("guaranteed_cumulative") AS "ahead_of_guarantee"',
                        by_time=False,
                    )
                )
            ],
            unit=ENERGY_UNIT,
            w=6,
            description="Cumulative savings minus the guaranteed cumulative savings; negative = behind.",
        ).reduce_options(_last()),
    )
    g14 = (
        'last("cv_rmse") AS "cv_rmse", last("nmbe") AS "nmbe", last("r2") AS "r2", '
        'last("n_points") AS "n_points", last("n_params") AS "n_params"'
    )
    layout.row(
        "Baseline model (ASHRAE Guideline 14)",
        panel(
            table.Panel(),
            "G14 statistics of the baseline model",
            [Target(_model_q(g14), result_format="table")],
            w=12,
            description="Monthly models: CV(RMSE) ≤ 15 %, NMBE ± 5 %; hourly: ≤ 30 %, ± 10 %.",
        ),
        panel(
            stat.Panel(),
            "Savings uncertainty (68 % confidence)",
            [
                Target(
                    _model_q(
                        'last("fractional_uncertainty") AS "fractional_uncertainty", '
                        'last("savings_uncertainty") AS "savings_uncertainty"'
                    )
                )
            ],
            unit="percent",
            w=12,
            description="ΔE/E per ASHRAE Guideline 14; below 50 % of the savings is the usual requirement.",
        )
        .reduce_options(_last())
        .override_by_name("savings_uncertainty", [dm.DynamicConfigValue(id_val="unit", value=ENERGY_UNIT)]),
    )
    variables = [
        tag_variable("contract", "Contract", "savings"),
        tag_variable("site", "Site", "savings", '"contract" =~ /^$contract$/'),
        timezone_variable(o.timezone),
    ]
    return _assemble(
        "epcwatch-epc-savings",
        "EPC savings",
        "Measured savings against the adjusted baseline and the guarantee, with the baseline's G14 statistics.",
        layout,
        variables,
        time_from="now-1y/y",
        time_to="now",
    )


DEVICE: Final = '"site" =~ /^$site$/'


def device_health(o: BuildOptions) -> dict[str, object]:
    layout = Layout()
    layout.row(
        "Devices",
        panel(
            table.Panel(),
            "Devices: online, last seen, failures",
            [
                Target(
                    'SELECT last("online") AS "online", last("last_ok_ts") AS "last_seen", '
                    'last("consecutive_failures") AS "consecutive_failures", '
                    'last("last_latency_ms") AS "last_latency_ms" FROM "device_health" '
                    f'WHERE {DEVICE} AND $timeFilter GROUP BY "site", "device"',
                    result_format="table",
                )
            ],
            w=12,
            description="last seen = the device's last successful poll (last_ok_ts of the agent's health report).",
        )
        .override_by_name("last_seen", [dm.DynamicConfigValue(id_val="unit", value="dateTimeAsIso")])
        .override_by_name("Time", [dm.DynamicConfigValue(id_val="custom.hidden", value=True)]),
        panel(
            stat.Panel(),
            "Devices offline",
            [
                Target(
                    'SELECT count("online") AS "offline" FROM (SELECT last("online") AS "online" FROM "device_health" '
                    f'WHERE {DEVICE} AND $timeFilter GROUP BY "site", "device") WHERE "online" = false'
                )
            ],
            w=12,
        )
        .reduce_options(_last())
        .no_value("0"),
        panel(
            timeseries.Panel(),
            "Poll errors per interval",
            [
                Target(
                    'SELECT non_negative_difference(max("polls_failed")) AS "polls_failed" FROM "device_health" '
                    f'WHERE {DEVICE} AND $timeFilter GROUP BY time($__interval), "device" fill(none)',
                    alias="$tag_device",
                )
            ],
        ),
        panel(
            timeseries.Panel(),
            "Poll latency (ms)",
            [
                Target(
                    'SELECT mean("last_latency_ms") AS "last_latency_ms" FROM "device_health" '
                    f'WHERE {DEVICE} AND $timeFilter GROUP BY time($__interval), "device" fill(null)',
                    alias="$tag_device",
                )
            ],
            unit="ms",
        ),
    )
    layout.row(
        "Edge agents",
        panel(
            timeseries.Panel(),
            "Outbox depth (messages)",
            [
                Target(
                    'SELECT max("outbox_depth") AS "outbox_depth" FROM "agent_health" '
                    f'WHERE {DEVICE} AND $timeFilter GROUP BY time($__interval), "agent" fill(null)',
                    alias="$tag_agent",
                )
            ],
        ),
        panel(
            table.Panel(),
            "Agents: connected, uptime, dropped",
            [
                Target(
                    'SELECT last("connected") AS "connected", last("uptime_s") AS "uptime_s", '
                    'last("outbox_dropped") AS "outbox_dropped", last("published") AS "published" '
                    f'FROM "agent_health" WHERE {DEVICE} AND $timeFilter GROUP BY "site", "agent"',
                    result_format="table",
                )
            ],
        ),
        panel(
            timeseries.Panel(),
            "Unacknowledged readings 未确认读数",
            [
                Target(
                    'SELECT max("outbox_unacked") AS "outbox_unacked" FROM "agent_health" '
                    f'WHERE {DEVICE} AND $timeFilter GROUP BY time($__interval), "agent" fill(null)',
                    alias="$tag_agent",
                )
            ],
            description=(
                "Readings published but not yet acknowledged end to end by a collector (stored in "
                "InfluxDB). They stay in the edge outbox until then; a steady rise means no collector "
                "stores this site's data."
            ),
        ),
        panel(
            timeseries.Panel(),
            "Oldest reading in outbox 最旧读数 (s)",
            [
                Target(
                    'SELECT max("outbox_oldest_age_s") AS "outbox_oldest_age_s" FROM "agent_health" '
                    f'WHERE {DEVICE} AND $timeFilter GROUP BY time($__interval), "agent" fill(null)',
                    alias="$tag_agent",
                )
            ],
            unit="suffix: s",
            description=(
                "Age of the oldest reading the edge still holds: how far behind storage this site is. "
                "When it nears the outage the outbox cap covers, readings start being dropped (counted)."
            ),
        ),
    )
    layout.row(
        "Collectors",
        panel(
            timeseries.Panel(),
            "Collector lag (ms)",
            [
                Target(
                    'SELECT max("lag_ms") AS "lag_ms" FROM "collector_health" '
                    'WHERE $timeFilter GROUP BY time($__interval), "collector" fill(null)',
                    alias="$tag_collector",
                )
            ],
            unit="ms",
            w=8,
        ),
        panel(
            timeseries.Panel(),
            "Dead letters per interval",
            [
                Target(
                    'SELECT non_negative_difference(max("dead_letters")) AS "dead_letters" FROM "collector_health" '
                    'WHERE $timeFilter GROUP BY time($__interval), "collector" fill(none)',
                    alias="$tag_collector",
                )
            ],
            w=8,
        ),
        panel(
            timeseries.Panel(),
            "Throughput (points/s)",
            [
                Target(
                    'SELECT mean("points_per_s") AS "points_per_s" FROM "collector_health" '
                    'WHERE $timeFilter GROUP BY time($__interval), "collector" fill(null)',
                    alias="$tag_collector",
                )
            ],
            w=8,
        ),
    )
    return _assemble(
        "epcwatch-device-health",
        "Device health",
        "Which devices are online, when each was last seen, poll errors and latency, edge outboxes, collectors.",
        layout,
        [tag_variable("site", "Site", "device_health")],
        time_from="now-24h",
    )


HVAC: Final = '"site" =~ /^$site$/ AND "building" =~ /^$building$/'


def _gauges(measurement: str, fields: tuple[str, ...], agg: str = "mean") -> str:
    cols = ", ".join(f'{agg}("{f}") AS "{f}"' for f in fields)
    return (
        f'SELECT {cols} FROM "{measurement}" WHERE {HVAC} AND $timeFilter '
        'GROUP BY time($__interval), "device" fill(null)'
    )


def hvac_lighting(o: BuildOptions) -> dict[str, object]:
    layout = Layout()
    pairs = (
        ("supply_air_temp", "supply_air_temp_setpoint"),
        ("supply_water_temp", "supply_water_temp_setpoint"),
        ("zone_temp", "zone_temp_setpoint"),
    )
    layout.row(
        "HVAC",
        *(
            panel(
                timeseries.Panel(),
                f"{title_of(v)} vs setpoint",
                [Target(_gauges("hvac", (v, sp)), alias="$tag_device $col")],
                unit=unit_of(v),
                w=8,
            )
            for v, sp in pairs
        ),
        panel(
            bargauge.Panel(),
            title_of("run_hours"),
            [
                Target(
                    f'SELECT last("run_hours") AS "run_hours" FROM "hvac" WHERE {HVAC} AND $timeFilter GROUP BY "device"',
                    alias="$tag_device",
                )
            ],
            unit=unit_of("run_hours"),
            w=8,
        ).reduce_options(_last()),
        _bars(
            panel(
                timeseries.Panel(),
                "Run hours per day (h)",
                [Target(q.daily("run_hours", '"device" =~ /.*/', "device"), alias="$tag_device")],
                unit=unit_of("run_hours"),
                w=8,
            )
        ),
        panel(
            timeseries.Panel(),
            title_of("cop"),
            [Target(_gauges("hvac", ("cop",)), alias="$tag_device")],
            unit=unit_of("cop"),
            w=8,
        ),
    )
    layout.row(
        "Lighting",
        panel(
            timeseries.Panel(),
            title_of("lighting_level"),
            [Target(_gauges("lighting", ("lighting_level",)), alias="$tag_device")],
            unit=unit_of("lighting_level"),
            w=8,
        ),
        panel(
            timeseries.Panel(),
            "Lighting zone power (W)",
            [
                Target(
                    f'SELECT mean(/^zone[0-9]+_power$/) FROM "lighting" WHERE {HVAC} AND $timeFilter '
                    'GROUP BY time($__interval), "device" fill(null)',
                    alias="$tag_device $col",
                )
            ],
            unit=unit_of("zone1_power"),
            w=8,
        ),
        panel(
            timeseries.Panel(),
            "Zones switched on",
            [Target(_gauges("lighting", ("zones_on",), "max"), alias="$tag_device")],
            w=8,
        ),
    )
    return _assemble(
        "epcwatch-hvac-lighting",
        "HVAC & lighting",
        "Supply temperatures against setpoints, run hours, COP, lighting levels and zone power.",
        layout,
        [*site_building_variables("hvac"), timezone_variable(o.timezone)],
        time_from="now-24h",
    )


def _assemble(
    uid: str,
    title: str,
    description: str,
    layout: Layout,
    variables: Sequence[cogbuilder.Builder[dm.VariableModel]],
    *,
    time_from: str = "now-7d",
    time_to: str = "now",
) -> dict[str, object]:
    return assemble(uid, title, description, layout, variables, time_from=time_from, time_to=time_to)


BOARDS: Final = {
    "portfolio.json": portfolio,
    "building-energy.json": building_energy,
    "epc-savings.json": epc_savings,
    "device-health.json": device_health,
    "hvac-lighting.json": hvac_lighting,
}


def build_all(options: BuildOptions | None = None) -> dict[str, dict[str, object]]:
    """File name → dashboard document."""
    o = options or BuildOptions()
    return {name: fn(o) for name, fn in BOARDS.items()}
