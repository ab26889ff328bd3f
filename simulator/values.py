"""What each simulated device would report: measurement values (closed vocabulary names) derived
from the load model at a set of instants, counters included.

Pure and vectorised. The serving loop calls it with one instant, fast history with thousands;
both get the same numbers for the same instant. A device's profile decides which of these values
it actually exposes (:func:`for_profile`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt

from epcwatch.sim.ledger import Counters
from epcwatch.sim.model import BuildingLoads, ComplexModel, SiteLoads
from epcwatch.sim.spec import VOLUME_ROLES, Device

F64 = npt.NDArray[np.float64]
Values = dict[str, F64]

SQRT3: Final = 3.0**0.5
#: the generic lighting controller profile has 8 zones
MAX_SERVED_ZONES: Final = 8


def _pf(model: ComplexModel, dev: str) -> float:
    """A device's (constant) power factor, 0.90..0.97."""
    u = float(model.unit_noise(f"{dev}.pf", np.zeros(1, dtype=np.int64))[0])
    return round(0.90 + 0.07 * u, 3)


def meter_values(model: ComplexModel, d: Device, power: F64, loads: SiteLoads) -> Values:
    """Electrical quantities of a three-phase meter carrying ``power`` (W)."""
    k = loads.grid.k
    pf = _pf(model, d.id)
    tan_phi = float(np.tan(np.arccos(pf)))
    site_v = 1.8 * model.noise("site.voltage", k // 15)
    rot = int(model.unit_noise(f"{d.id}.phases", np.zeros(1, dtype=np.int64))[0] * 3)
    split = np.roll(np.array([0.348, 0.331, 0.321]), rot)
    out: Values = {"active_power": power, "power_factor": np.full(power.shape, pf)}
    volts = []
    for i in range(3):
        v = 230.0 + site_v + 0.3 * model.noise(f"{d.id}.v{i}", k)
        p_i = power * split[i]
        volts.append(v)
        out[f"voltage_l{i + 1}"] = v
        out[f"active_power_l{i + 1}"] = p_i
        out[f"current_l{i + 1}"] = p_i / (v * pf)
        out[f"power_factor_l{i + 1}"] = np.full(power.shape, pf)
    out["voltage_l1_l2"] = SQRT3 * (volts[0] + volts[1]) / 2
    out["voltage_l2_l3"] = SQRT3 * (volts[1] + volts[2]) / 2
    out["voltage_l3_l1"] = SQRT3 * (volts[2] + volts[0]) / 2
    currents = [out[f"current_l{i}"] for i in (1, 2, 3)]
    out["current_n"] = np.abs(currents[0] - (currents[1] + currents[2]) / 2) * 0.6
    out["apparent_power"] = power / pf
    out["reactive_power"] = power * tan_phi
    out["frequency"] = 50.0 + 0.02 * model.noise("site.frequency", k // 5)
    out["demand_power"] = power
    out["thd_voltage_l1"] = 2.2 + 0.3 * model.noise(f"{d.id}.thdv", k // 60)
    out["thd_current_l1"] = np.clip(9.0 + 2.0 * model.noise(f"{d.id}.thdi", k // 60), 2.0, None)
    out["energy_export"] = np.zeros(power.shape)
    out["reactive_energy_export"] = np.zeros(power.shape)
    return out


def _chiller(model: ComplexModel, d: Device, bl: BuildingLoads, loads: SiteLoads) -> Values:
    k = loads.grid.k
    t = loads.weather.temp_c
    b = model.spec.building(d.building or "")
    mode = bl.plant_mode
    run = bl.plant_run
    lf = bl.plant_load_w / (b.plant_capacity_kw * 1000.0)
    heating = mode == 2
    setpoint = np.where(heating, 45.0, 7.0)
    supply = setpoint + np.where(heating, -1.0, 1.0) * (
        0.15 * model.noise(f"{d.id}.sw", k) + 1.5 * np.clip(lf - 0.9, 0, None)
    )
    delta = 5.0 * lf / np.maximum(lf, 0.35)  # constant primary flow: delta-T falls at low load
    ret = np.where(heating, supply - delta, supply + delta)
    idle = 16.0 + 0.4 * (t - 16.0)
    design_flow = b.plant_capacity_kw / (4.186 * 5.0) * 3.6  # m³/h at a 5 K design delta-T
    return {
        "supply_water_temp": np.where(run, supply, idle),
        "return_water_temp": np.where(run, ret, idle + 0.3),
        "supply_water_temp_setpoint": setpoint,
        "condenser_in_temp": np.where(run, np.where(heating, 12.0, np.maximum(t + 2.0, 24.0)), idle),
        "condenser_out_temp": np.where(
            run, np.where(heating, 8.0, np.maximum(t + 2.0, 24.0) + 5.0 * lf), idle
        ),
        "chiller_load": 100.0 * lf,
        "cop": np.where(run, bl.plant_cop, 0.0),
        "flow_rate": np.where(run, design_flow, 0.0),
        "active_power": bl.plant_power,
        "cooling_output": bl.plant_load_w,
        "operating_mode": mode.astype(np.float64),
        "alarm_code": np.zeros(len(k)),
        "run_status": run.astype(np.float64),
        "fault": np.zeros(len(k)),
    }


def _ahu(model: ComplexModel, d: Device, bl: BuildingLoads, loads: SiteLoads) -> Values:
    k = loads.grid.k
    t = loads.weather.temp_c
    b = model.spec.building(d.building or "")
    i = d.index
    on = bl.hvac_on
    mode = bl.plant_mode
    speed = bl.ahu_speed[i]
    sat_sp = np.where(mode == 1, 13.0, np.where(mode == 2, 30.0, 18.0))
    zone_sp = np.where(mode == 1, 25.0, np.where(mode == 2, 20.0, 22.0))
    zone = np.where(on, zone_sp + 0.3 * model.noise(f"{d.id}.zt", k // 5), 22.0 + 0.35 * (t - 22.0))
    ret = zone + 0.8
    econ = np.clip((20.0 - t) / 8.0, 0.0, 1.0) * (mode != 2)
    damper = np.where(on, 20.0 + 70.0 * econ, 0.0)
    mixed = ret + (damper / 100.0) * (t - ret)
    lf = bl.plant_load_w / (b.plant_capacity_kw * 1000.0)
    return {
        "supply_air_temp": np.where(on, sat_sp + 0.25 * model.noise(f"{d.id}.sat", k), zone - 0.5),
        "supply_air_temp_setpoint": sat_sp,
        "return_air_temp": ret,
        "mixed_air_temp": mixed,
        "zone_temp": zone,
        "zone_temp_setpoint": zone_sp,
        "fan_speed": speed,
        "damper_position": damper,
        "valve_position": np.where(on & (mode > 0), np.clip(100.0 * lf * 1.1, 5.0, 100.0), 0.0),
        "airflow": np.round(b.ahus_kw[i] * 900.0 * speed / 100.0),
        "co2_level": np.round(420.0 + 550.0 * bl.occupancy * np.where(on, 0.6, 1.0)),
        "active_power": bl.ahu_power[i],
        "operating_mode": np.where(on, np.where(mode > 0, mode, 3), 0).astype(np.float64),
        "alarm_code": np.zeros(len(k)),
        "run_status": on.astype(np.float64),
        "fault": np.zeros(len(k)),
    }


def _lighting(model: ComplexModel, d: Device, bl: BuildingLoads, loads: SiteLoads) -> Values:
    n = len(loads.grid)
    out: Values = {}
    zones = min(len(bl.zone_on), MAX_SERVED_ZONES)
    for j in range(MAX_SERVED_ZONES):
        on = bl.zone_on[j] if j < zones else np.zeros(n, dtype=np.bool_)
        out[f"zone{j + 1}_on"] = on.astype(np.float64)
        out[f"zone{j + 1}_level"] = bl.zone_level[j] if j < zones else np.zeros(n)
        out[f"zone{j + 1}_power"] = bl.zone_power[j] if j < zones else np.zeros(n)
    on_count = np.sum([bl.zone_on[j] for j in range(zones)], axis=0)
    out["zones_on"] = on_count.astype(np.float64)
    out["lighting_level"] = np.mean([bl.zone_level[j] for j in range(zones)], axis=0)
    out["active_power"] = bl.lighting
    week = loads.grid.local_day // 7
    out["lamp_failures"] = np.floor(3.0 * model.unit_noise(f"{d.id}.lamps", week)).astype(np.float64)
    return out


def _weather(model: ComplexModel, loads: SiteLoads) -> Values:
    k = loads.grid.k
    return {
        "outdoor_temp": loads.weather.temp_c + 0.1 * model.noise("weather.t", k),
        "outdoor_humidity": np.clip(
            loads.weather.humidity_pct + 0.6 * model.noise("weather.rh", k), 0.0, 100.0
        ),
    }


def _volume_meter(
    model: ComplexModel,
    d: Device,
    bl: BuildingLoads,
    loads: SiteLoads,
    counters: Mapping[tuple[str, str], F64],
) -> Values:
    """A water or gas meter: its volume counter and flow; a gas corrector also reports the gas's
    pressure (regulated, ~2.5 kPa) and temperature (following the outdoor air in the meter room)."""
    k = loads.grid.k
    name = VOLUME_ROLES[d.role]
    out: Values = {name: np.asarray(counters[(d.id, name)], dtype=np.float64)}
    out["flow_rate"] = bl.water_m3h if d.role == "water" else bl.gas_m3h
    if d.role == "gas":
        out["gas_pressure"] = 2.5 + 0.05 * model.noise(f"{d.id}.p", k)
        out["gas_temp"] = 0.6 * loads.weather.temp_c + 6.0 + 0.2 * model.noise(f"{d.id}.t", k)
    return out


def device_values(
    model: ComplexModel,
    loads: SiteLoads,
    counters: Mapping[tuple[str, str], F64],
    devices: list[Device] | None = None,
) -> dict[str, Values]:
    """Every value of every device (or of ``devices``) at the instants of ``loads``.

    ``counters`` holds the counter readings at those instants, keyed (device, counter name), as
    :class:`~epcwatch.sim.ledger.Counters` computes them; the derived counters (energy_total,
    reactive energy) follow from them exactly.
    """
    power = model.power_w(loads)
    out: dict[str, Values] = {}
    for d in devices if devices is not None else model.devices:
        if d.kind == "sensor":
            out[d.id] = _weather(model, loads)
            continue
        assert d.building is not None
        bl = loads.buildings[d.building]
        if d.role in VOLUME_ROLES:
            out[d.id] = _volume_meter(model, d, bl, loads, counters)
            continue
        if d.kind == "meter":
            v = meter_values(model, d, power[d.id], loads)
        elif d.role == "chiller":
            v = _chiller(model, d, bl, loads)
        elif d.role == "ahu":
            v = _ahu(model, d, bl, loads)
        else:
            v = _lighting(model, d, bl, loads)
        energy = np.asarray(counters[(d.id, "energy_import")], dtype=np.float64)
        v["energy_import"] = energy
        if d.kind == "meter":
            v["energy_total"] = energy
            tan_phi = float(np.tan(np.arccos(_pf(model, d.id))))
            v["reactive_energy_import"] = energy * tan_phi
        if (d.id, "run_hours") in counters:
            v["run_hours"] = np.asarray(counters[(d.id, "run_hours")], dtype=np.float64)
        out[d.id] = v
    return out


def values_at(
    model: ComplexModel, counters: Counters, t: float, devices: list[Device] | None = None
) -> dict[str, dict[str, float]]:
    """Every device's values at epoch second ``t`` as plain floats (the serving loop's view)."""
    k = np.array([int(t // 60)], dtype=np.int64)
    loads = model.loads(k, counters.retrofits)
    now = {key: np.array([v]) for key, v in counters.at(t).items()}
    vals = device_values(model, loads, now, devices)
    return {dev: {name: float(a[0]) for name, a in v.items()} for dev, v in vals.items()}


def for_profile(values: Mapping[str, float], point_names: set[str]) -> dict[str, float | int | bool]:
    """The values a profile exposes, typed as the vocabulary says (booleans, integers)."""
    from epcwatch.measurements import VOCABULARY, FieldType

    out: dict[str, float | int | bool] = {}
    for name in point_names:
        if name not in values:
            continue
        v = values[name]
        ft = VOCABULARY[name].field_type
        out[name] = bool(v) if ft is FieldType.BOOL else round(v) if ft is FieldType.INT else float(v)
    return out
