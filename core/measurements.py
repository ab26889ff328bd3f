"""The closed vocabulary of measurements.

Every value that travels from a device to InfluxDB is named here, once, with its unit,
whether it is a gauge (an instantaneous value) or a counter (monotonic, integrated over
time), and the field type it is stored with. Profiles may only use these names; InfluxDB
field names and Grafana panels come from them, so a rename happens in this file only.

Field types are fixed per name because InfluxDB fixes a field's type per shard: writing
``5i`` after ``5.0`` is rejected as a type conflict. Numeric values are therefore always
coerced to the vocabulary's type before they are stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from epcwatch.errors import EpcwatchError


class Kind(StrEnum):
    GAUGE = "gauge"
    COUNTER = "counter"


class FieldType(StrEnum):
    FLOAT = "float"
    INT = "int"
    BOOL = "bool"


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    unit: str
    kind: Kind
    field_type: FieldType
    description: str
    group: str


def _m(
    name: str,
    unit: str,
    description: str,
    group: str,
    *,
    counter: bool = False,
    ft: FieldType = FieldType.FLOAT,
) -> Measurement:
    return Measurement(name, unit, Kind.COUNTER if counter else Kind.GAUGE, ft, description, group)


#: lighting and HVAC controllers expose per-zone values; the vocabulary names zones 1..MAX_ZONES
MAX_ZONES: Final = 16


def _vocabulary() -> dict[str, Measurement]:
    items: list[Measurement] = [
        # -- electrical (meters) ------------------------------------------------------------
        *(_m(f"voltage_l{i}", "V", f"phase {i} to neutral voltage", "electrical") for i in (1, 2, 3)),
        _m("voltage_l1_l2", "V", "line voltage L1-L2", "electrical"),
        _m("voltage_l2_l3", "V", "line voltage L2-L3", "electrical"),
        _m("voltage_l3_l1", "V", "line voltage L3-L1", "electrical"),
        *(_m(f"current_l{i}", "A", f"phase {i} current", "electrical") for i in (1, 2, 3)),
        _m("current_n", "A", "neutral current", "electrical"),
        _m("active_power", "W", "total active power (import positive)", "electrical"),
        *(_m(f"active_power_l{i}", "W", f"phase {i} active power", "electrical") for i in (1, 2, 3)),
        _m("reactive_power", "var", "total reactive power", "electrical"),
        *(_m(f"reactive_power_l{i}", "var", f"phase {i} reactive power", "electrical") for i in (1, 2, 3)),
        _m("apparent_power", "VA", "total apparent power", "electrical"),
        _m("power_factor", "1", "total power factor", "electrical"),
        *(_m(f"power_factor_l{i}", "1", f"phase {i} power factor", "electrical") for i in (1, 2, 3)),
        _m("frequency", "Hz", "grid frequency", "electrical"),
        _m("demand_power", "W", "demand (sliding-window average) active power", "electrical"),
        _m("max_demand_power", "W", "maximum demand since last reset", "electrical"),
        _m("thd_voltage_l1", "%", "voltage total harmonic distortion, phase 1", "electrical"),
        _m("thd_current_l1", "%", "current total harmonic distortion, phase 1", "electrical"),
        _m("energy_import", "kWh", "active energy imported (delivered to the load)", "energy", counter=True),
        _m("energy_export", "kWh", "active energy exported", "energy", counter=True),
        # tariff registers of time-of-use meters (DL/T 645 费率 1..4, commonly 尖/峰/平/谷)
        *(
            _m(f"energy_import_t{t}", "kWh", f"active energy imported in tariff {t}", "energy", counter=True)
            for t in (1, 2, 3, 4)
        ),
        *(
            _m(f"energy_export_t{t}", "kWh", f"active energy exported in tariff {t}", "energy", counter=True)
            for t in (1, 2, 3, 4)
        ),
        _m("energy_total", "kWh", "total active energy (import + export)", "energy", counter=True),
        _m("reactive_energy_import", "kvarh", "reactive energy imported", "energy", counter=True),
        _m("reactive_energy_export", "kvarh", "reactive energy exported", "energy", counter=True),
        # -- other energy types (分类) ----------------------------------------------------------
        _m("water_volume", "m3", "cumulative water volume", "energy", counter=True),
        _m(
            "gas_volume",
            "m3",
            "cumulative gas volume as billed (at base conditions where the meter corrects for them)",
            "energy",
            counter=True,
        ),
        _m(
            "heat_energy", "kWh", "cumulative heat energy delivered (central heating)", "energy", counter=True
        ),
        _m(
            "cooling_energy",
            "kWh",
            "cumulative cooling energy delivered (central cooling)",
            "energy",
            counter=True,
        ),
        _m("flow_rate", "m3/h", "volumetric flow rate", "hvac"),
        # -- thermal-energy, water and gas meters -----------------------------------------------
        _m("thermal_power", "W", "heat or cooling power measured by a thermal-energy meter", "thermal"),
        _m(
            "temperature_difference",
            "K",
            "supply minus return temperature at a thermal-energy meter",
            "thermal",
        ),
        _m(
            "thermal_volume",
            "m3",
            "cumulative volume of heat-transfer water through a thermal-energy meter",
            "thermal",
            counter=True,
        ),
        _m("gas_pressure", "kPa", "gas pressure at the meter (gauge)", "thermal"),
        _m("gas_temp", "°C", "gas temperature at the meter", "thermal"),
        # -- environment ----------------------------------------------------------------------
        _m("outdoor_temp", "°C", "outdoor air dry-bulb temperature", "environment"),
        _m("outdoor_humidity", "%", "outdoor relative humidity", "environment"),
        _m("indoor_temp", "°C", "indoor air temperature", "environment"),
        _m("indoor_humidity", "%", "indoor relative humidity", "environment"),
        _m("co2_level", "ppm", "indoor CO2 concentration", "environment"),
        _m("occupancy", "1", "occupancy detected (presence)", "environment", ft=FieldType.BOOL),
        # -- HVAC: plant --------------------------------------------------------------------------
        _m("supply_water_temp", "°C", "chilled/hot water supply temperature", "hvac"),
        _m("return_water_temp", "°C", "chilled/hot water return temperature", "hvac"),
        _m("supply_water_temp_setpoint", "°C", "water supply temperature setpoint", "hvac"),
        _m("condenser_in_temp", "°C", "condenser water entering temperature", "hvac"),
        _m("condenser_out_temp", "°C", "condenser water leaving temperature", "hvac"),
        _m("cooling_output", "W", "thermal cooling (or heating) output", "hvac"),
        _m("cop", "1", "coefficient of performance (thermal output / electrical input)", "hvac"),
        _m("chiller_load", "%", "plant load as percent of capacity", "hvac"),
        _m("run_status", "1", "equipment running", "hvac", ft=FieldType.BOOL),
        _m(
            "operating_mode",
            "1",
            "operating mode code (profile documents the enumeration)",
            "hvac",
            ft=FieldType.INT,
        ),
        _m("alarm_code", "1", "active alarm code, 0 = none", "hvac", ft=FieldType.INT),
        _m("fault", "1", "equipment in fault", "hvac", ft=FieldType.BOOL),
        _m("run_hours", "h", "cumulative running hours", "hvac", counter=True),
        _m("start_count", "1", "cumulative starts", "hvac", counter=True, ft=FieldType.INT),
        # -- HVAC: air side -----------------------------------------------------------------------
        _m("supply_air_temp", "°C", "supply air temperature", "hvac"),
        _m("supply_air_temp_setpoint", "°C", "supply air temperature setpoint", "hvac"),
        _m("return_air_temp", "°C", "return air temperature", "hvac"),
        _m("mixed_air_temp", "°C", "mixed air temperature", "hvac"),
        _m("zone_temp", "°C", "zone temperature", "hvac"),
        _m("zone_temp_setpoint", "°C", "zone temperature setpoint", "hvac"),
        _m("fan_speed", "%", "fan speed command or feedback", "hvac"),
        _m("damper_position", "%", "outdoor-air damper position", "hvac"),
        _m("valve_position", "%", "coil valve position", "hvac"),
        _m("airflow", "m3/h", "supply airflow", "hvac"),
        # -- lighting -------------------------------------------------------------------------------
        _m("lighting_level", "%", "average dim level over all zones", "lighting"),
        _m("lamp_failures", "1", "number of failed lamps/ballasts reported", "lighting", ft=FieldType.INT),
        _m("zones_on", "1", "number of zones switched on", "lighting", ft=FieldType.INT),
    ]
    for z in range(1, MAX_ZONES + 1):
        items += [
            _m(f"zone{z}_on", "1", f"zone {z} switched on", "lighting", ft=FieldType.BOOL),
            _m(f"zone{z}_level", "%", f"zone {z} dim level", "lighting"),
            _m(f"zone{z}_power", "W", f"zone {z} active power", "lighting"),
        ]
    vocab = {m.name: m for m in items}
    assert len(vocab) == len(items), "duplicate measurement name"
    return vocab


VOCABULARY: Final[dict[str, Measurement]] = _vocabulary()


class UnknownMeasurementError(EpcwatchError, KeyError):
    """A name that is not in the closed vocabulary."""


def get(name: str) -> Measurement:
    """Look a measurement up; raises :class:`UnknownMeasurementError` naming close matches."""
    try:
        return VOCABULARY[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, VOCABULARY, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownMeasurementError(f"unknown measurement {name!r}{hint}") from None


def is_known(name: str) -> bool:
    return name in VOCABULARY
