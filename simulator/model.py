"""The load model of the simulated office complex: power of every device at every one-minute step.

Pure and vectorised: :meth:`ComplexModel.loads` takes an array of step indices (epoch minutes)
and returns every building's loads for those steps, with or without the retrofits. Power is
constant within a step, so energy is exactly ``sum(power x 60 s)`` (see :mod:`epcwatch.sim.ledger`).

Per building (W):

* lighting: zones switched by schedule, dimmed by daylight on the perimeter; installed power
  density drops with the LED retrofit
* sockets: standby + occupancy-driven plug load; with lighting it forms category A, split over
  the tenant meters by their shares (each with its own noise; A is their sum)
* HVAC (B): a heat-pump chiller plant serving a cooling load (envelope above 20 °C + internal
  gains + sun, phased in from 18 °C) or a heating load (below 14 °C), electric power = load / COP
  (COP falls with outdoor temperature and part load; the replacement plant's is higher), AHU
  fans (cube law of speed), fan coils; all only inside the AHU schedule (tighter after retrofit)
* power (C): lifts (occupancy), pumps and ventilation (around the clock)
* special (D): canteen kitchen (office), server room (service hall), data centre with a
  temperature-dependent PUE (archive)
* main = A + B + C + D, exactly

Occupancy follows working hours on Chinese working days (weekends, public holidays and the
swapped working weekends of :mod:`epcwatch.sim.workdays`). Noise comes from
:mod:`epcwatch.sim.noise` and is identical with and without retrofits, so the counterfactual
differs from the actual consumption by the measures' effect only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from epcwatch.sim.noise import normal, smooth_normal, stream_key, uniform
from epcwatch.sim.spec import TIGHT_AHU, VOLUME_ROLES, Building, ComplexSpec, Device, Measure, Schedule
from epcwatch.sim.timegrid import TimeGrid, day_number, grid
from epcwatch.sim.weather import Weather, weather

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

HOUR_S: Final = 3600.0

#: occupancy (0..1) knots (local hour, value) per building use, working and non-working days
_OCCUPANCY: Final[dict[str, tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]]] = {
    "office": (
        (
            (0, 0.02),
            (7, 0.02),
            (8, 0.35),
            (9, 0.95),
            (11.75, 1.0),
            (12.25, 0.6),
            (13.5, 0.6),
            (14, 0.95),
            (17.5, 0.9),
            (18.5, 0.25),
            (21, 0.08),
            (22, 0.02),
            (24, 0.02),
        ),
        ((0, 0.01), (8.5, 0.01), (9.5, 0.08), (16.5, 0.08), (17.5, 0.01), (24, 0.01)),
    ),
    "service_hall": (
        (
            (0, 0.01),
            (8, 0.05),
            (8.75, 0.7),
            (9.25, 1.0),
            (12, 1.0),
            (12.5, 0.55),
            (13.5, 0.6),
            (14, 1.0),
            (17, 0.95),
            (17.5, 0.2),
            (18.5, 0.03),
            (24, 0.01),
        ),
        ((0, 0.01), (8.5, 0.01), (9.5, 0.05), (16.5, 0.05), (17.5, 0.01), (24, 0.01)),
    ),
    "archive_dc": (
        ((0, 0.04), (8, 0.06), (9, 0.8), (17.5, 0.75), (18.5, 0.08), (24, 0.04)),
        ((0, 0.04), (24, 0.04)),
    ),
}


def _curve(knots: tuple[tuple[float, float], ...], x: F64) -> F64:
    xs = np.array([k[0] for k in knots], dtype=np.float64)
    ys = np.array([k[1] for k in knots], dtype=np.float64)
    out: F64 = np.interp(x, xs, ys)
    return out


def in_window(g: TimeGrid, s: Schedule) -> B:
    """Steps inside schedule ``s``."""
    w0, w1 = s.workday
    on: B = g.workday & (g.tod_h >= w0) & (g.tod_h < w1)
    if s.non_workday is not None:
        n0, n1 = s.non_workday
        on = on | (~g.workday & (g.tod_h >= n0) & (g.tod_h < n1))
    return on


#: canteen service (local hour, share of the kitchen's peak)
_MEALS: Final = (
    (0, 0),
    (10.25, 0),
    (11, 0.8),
    (12.25, 1.0),
    (13, 0.15),
    (16.5, 0.15),
    (17.25, 0.6),
    (18.25, 0.1),
    (24, 0),
)


@dataclass(frozen=True)
class _Zones:
    on: tuple[B, ...]
    level: tuple[F64, ...]
    power: tuple[F64, ...]
    lighting: F64


@dataclass(frozen=True)
class _Hvac:
    on: B
    mode: I64
    load_w: F64
    cop: F64
    plant_power: F64
    ahu_speed: tuple[F64, ...]
    ahu_power: tuple[F64, ...]
    terminal_power: F64


@dataclass(frozen=True)
class BuildingLoads:
    """Loads of one building over a set of steps; powers in W."""

    occupancy: F64
    zone_on: tuple[B, ...]
    zone_level: tuple[F64, ...]  #: dim level, %
    zone_power: tuple[F64, ...]
    lighting: F64
    sockets: F64
    tenants: dict[str, F64]
    category: dict[str, F64]  #: "A".."D"
    main: F64
    hvac_on: B  #: inside the AHU schedule
    plant_mode: I64  #: 0 off, 1 cooling, 2 heating
    plant_load_w: F64  #: thermal output
    plant_cop: F64
    plant_power: F64
    plant_run: B
    ahu_speed: tuple[F64, ...]  #: %
    ahu_power: tuple[F64, ...]
    terminal_power: F64
    water_m3h: F64  #: tap water flow (zero without a water meter)
    gas_m3h: F64  #: canteen gas flow (zero without a gas meter)


@dataclass(frozen=True)
class SiteLoads:
    grid: TimeGrid
    weather: Weather
    buildings: dict[str, BuildingLoads]
    retrofits: bool


class ComplexModel:
    """Evaluates the complex of a :class:`ComplexSpec` on arrays of steps."""

    def __init__(self, spec: ComplexSpec) -> None:
        self.spec = spec
        self.tz = ZoneInfo(spec.timezone)
        self.devices: list[Device] = spec.devices()
        self._by_id = {d.id: d for d in self.devices}
        self._installed: dict[tuple[str, Measure], int] = {
            (r.building, r.measure): day_number(r.installed) for r in spec.retrofits
        }

    def device(self, device_id: str) -> Device:
        return self._by_id[device_id]

    @cached_property
    def metered(self) -> list[Device]:
        """Devices with an energy counter (electricity meters, plant, AHUs, lighting controllers)."""
        return [d for d in self.devices if d.kind != "sensor" and d.role not in VOLUME_ROLES]

    @cached_property
    def meters(self) -> list[Device]:
        """Electricity meters."""
        return [d for d in self.devices if d.kind == "meter" and d.role not in VOLUME_ROLES]

    @cached_property
    def volume_meters(self) -> list[Device]:
        """Water and gas meters (a volume counter, m³)."""
        return [d for d in self.devices if d.role in VOLUME_ROLES]

    def _key(self, name: str) -> int:
        return stream_key(self.spec.seed, name)

    def _active(self, g: TimeGrid, building: str, measure: Measure, retrofits: bool) -> B:
        day = self._installed.get((building, measure))
        if not retrofits or day is None:
            return np.zeros(len(g), dtype=np.bool_)
        on: B = g.local_day >= day
        return on

    # -- evaluation -------------------------------------------------------------------------------
    def loads(self, k: I64, retrofits: bool = True) -> SiteLoads:
        g = grid(np.asarray(k, dtype=np.int64), self.tz)
        w = weather(g, self.spec.seed)
        return self.loads_on(g, w, retrofits)

    def loads_on(self, g: TimeGrid, w: Weather, retrofits: bool) -> SiteLoads:
        """Loads on a precomputed grid and weather (actual and counterfactual share both)."""
        return SiteLoads(
            grid=g,
            weather=w,
            buildings={b.id: self._building(b, g, w, retrofits) for b in self.spec.buildings},
            retrofits=retrofits,
        )

    def _building(self, b: Building, g: TimeGrid, w: Weather, retrofits: bool) -> BuildingLoads:
        occ, attendance = self._occupancy(b, g)
        zones = self._lighting(b, g, w, retrofits)
        sockets = b.floor_area_m2 * (b.plug_standby_w_m2 + (b.plug_w_m2 - b.plug_standby_w_m2) * occ)
        sockets = sockets * (1.0 + 0.03 * normal(self._key(f"{b.id}.sockets"), g.k))
        tenants = self._tenants(b, g, zones.lighting, sockets)
        cat_a: F64 = np.sum(list(tenants.values()), axis=0)
        hvac = self._hvac(b, g, w, occ, zones.lighting + sockets, retrofits=retrofits)
        cat_b = hvac.plant_power + np.sum(hvac.ahu_power, axis=0) + hvac.terminal_power
        cat_c = self._power(b, g, occ, hvac.on)
        cat_d = self._special(b, g, w, occ, attendance)
        category = {"A": cat_a, "B": np.asarray(cat_b), "C": cat_c, "D": cat_d}
        return BuildingLoads(
            occupancy=occ,
            zone_on=zones.on,
            zone_level=zones.level,
            zone_power=zones.power,
            lighting=zones.lighting,
            sockets=np.asarray(sockets, dtype=np.float64),
            tenants=tenants,
            category={c: np.asarray(v, dtype=np.float64) for c, v in category.items()},
            main=np.asarray(cat_a + cat_b + cat_c + cat_d, dtype=np.float64),
            hvac_on=hvac.on,
            plant_mode=hvac.mode,
            plant_load_w=hvac.load_w,
            plant_cop=hvac.cop,
            plant_power=hvac.plant_power,
            plant_run=hvac.mode > 0,
            ahu_speed=hvac.ahu_speed,
            ahu_power=hvac.ahu_power,
            terminal_power=hvac.terminal_power,
            water_m3h=self._water(b, g, occ),
            gas_m3h=self._gas(b, g, attendance),
        )

    def _water(self, b: Building, g: TimeGrid, occ: F64) -> F64:
        """Tap water (m³/h): the day's quota spread over ~10 occupied hours, plus a small leak."""
        if b.water_m3_per_person_day <= 0:
            return np.zeros(len(g))
        peak = b.water_m3_per_person_day * b.occupants / 10.0
        flow = 0.01 * peak + peak * occ * (1.0 + 0.1 * normal(self._key(f"{b.id}.water"), g.k))
        return np.asarray(np.clip(flow, 0.0, None), dtype=np.float64)

    def _gas(self, b: Building, g: TimeGrid, attendance: F64) -> F64:
        """Canteen gas (m³/h): burners at the meal times of working days, a pilot otherwise."""
        if b.canteen_gas_m3h <= 0:
            return np.zeros(len(g))
        meals = np.where(g.workday, _curve(_MEALS, g.tod_h), 0.0) * attendance
        flow = b.canteen_gas_m3h * (0.01 + meals * (1.0 + 0.05 * normal(self._key(f"{b.id}.gas"), g.k)))
        return np.asarray(np.clip(flow, 0.0, None), dtype=np.float64)

    def volume_m3h(self, loads: SiteLoads) -> dict[str, F64]:
        """Flow (m³/h) of every water and gas meter."""
        out: dict[str, F64] = {}
        for d in self.volume_meters:
            assert d.building is not None
            bl = loads.buildings[d.building]
            out[d.id] = bl.water_m3h if d.role == "water" else bl.gas_m3h
        return out

    def _occupancy(self, b: Building, g: TimeGrid) -> tuple[F64, F64]:
        """Occupancy 0..1 (schedule x the day's attendance x slow wander) and the attendance."""
        work_knots, off_knots = _OCCUPANCY[b.use]
        occ = np.where(g.workday, _curve(work_knots, g.tod_h), _curve(off_knots, g.tod_h))
        attendance = 1.0 + 0.05 * normal(self._key(f"{b.id}.attendance"), g.local_day)
        wander = 1.0 + 0.04 * smooth_normal(self._key(f"{b.id}.occ"), g.t, 2 * HOUR_S)
        return np.clip(occ * attendance * wander, 0.0, 1.0), attendance

    def _lighting(self, b: Building, g: TimeGrid, w: Weather, retrofits: bool) -> _Zones:
        """Zone 1 is corridors & emergency (always on, night level); the others follow the working
        day with staggered switch-on, a third of them kept on for overtime; perimeter zones dim
        with daylight. The LED retrofit lowers the installed power density."""
        n = len(g)
        led = self._active(g, b.id, "led_lighting", retrofits)
        lpd = np.where(led, b.led_lighting_w_m2, b.lighting_w_m2)
        nz = b.lighting_zones
        shares = np.array([0.1] + [(0.9 / (nz - 1)) * (1.0 + 0.15 * ((j % 3) - 1)) for j in range(1, nz)])
        shares = shares / shares.sum()
        zone_on: list[B] = []
        zone_level: list[F64] = []
        zone_power: list[F64] = []
        for j in range(nz):
            if j == 0:
                on = np.ones(n, dtype=np.bool_)
                level = np.where((g.tod_h >= 7.0) & (g.tod_h < 20.0), 100.0, 30.0)
            else:
                start = 7.0 + 0.1 * j
                end = 21.5 if j % 3 == 0 else 18.75
                on = g.workday & (g.tod_h >= start) & (g.tod_h < end)
                if j == 1:  # the duty floor on weekends and holidays
                    on = on | (~g.workday & (g.tod_h >= 9.0) & (g.tod_h < 17.0))
                dim = 0.45 if j % 2 == 1 else 0.1  # perimeter zones harvest daylight
                level = np.round(np.clip(100.0 - 100.0 * dim * w.daylight, 30.0, 100.0))
            level = np.where(on, level, 0.0)
            power = on * b.floor_area_m2 * shares[j] * lpd * (0.12 + 0.88 * level / 100.0)
            zone_on.append(on)
            zone_level.append(np.asarray(level, dtype=np.float64))
            zone_power.append(np.asarray(power, dtype=np.float64))
        total: F64 = np.sum(zone_power, axis=0)
        return _Zones(tuple(zone_on), tuple(zone_level), tuple(zone_power), total)

    def _tenants(self, b: Building, g: TimeGrid, lighting: F64, sockets: F64) -> dict[str, F64]:
        """Tenants partition A: each carries its share of lighting and its own socket load."""
        out: dict[str, F64] = {}
        for tn in b.tenants:
            f = (
                1.0
                + 0.06 * smooth_normal(self._key(f"{b.id}.t.{tn.id}"), g.t, HOUR_S)
                + 0.02 * normal(self._key(f"{b.id}.t.{tn.id}.m"), g.k)
            )
            out[tn.id] = tn.share * (lighting + sockets * f)
        return out

    def _hvac(
        self, b: Building, g: TimeGrid, w: Weather, occ: F64, internal_w: F64, *, retrofits: bool
    ) -> _Hvac:
        """Inside the AHU schedule the plant meets the cooling or heating load at its COP; AHU
        fans follow the cube law of their speed; fan coils run with the schedule."""
        key = self._key
        t = w.temp_c
        tight = self._active(g, b.id, "ahu_schedule", retrofits)
        hvac_on = np.where(tight, in_window(g, TIGHT_AHU), in_window(g, b.ahu_schedule))
        gains_w = 0.9 * internal_w + 100.0 * b.occupants * occ
        solar_w = b.floor_area_m2 * b.solar_w_m2 * w.daylight
        latent_w = b.floor_area_m2 * 0.08 * np.clip(w.humidity_pct - 60.0, 0.0, None) * (t > 20.0)
        phase_in = np.clip((t - 18.0) / 4.0, 0.0, 1.0)
        q_cool = np.clip(
            (b.floor_area_m2 * b.cool_w_m2k * (t - 20.0) + gains_w + solar_w + latent_w) * phase_in, 0.0, None
        )
        q_heat = np.clip(b.floor_area_m2 * b.heat_w_m2k * (14.0 - t) - 0.5 * (gains_w + solar_w), 0.0, None)
        cap_w = b.plant_capacity_kw * 1000.0
        mode = np.where(q_cool > 0.0, 1, np.where(q_heat > 0.0, 2, 0)).astype(np.int64)
        q = np.minimum(np.where(mode == 1, q_cool, q_heat), cap_w)
        mode = np.where(hvac_on & (q > 0.03 * cap_w), mode, 0).astype(np.int64)
        q = np.where(mode > 0, q, 0.0)
        lf = q / cap_w
        part_load = 0.8 + 0.4 * lf - 0.2 * lf**2
        new_plant = self._active(g, b.id, "chiller_replacement", retrofits)
        cop_gain = np.where(new_plant, b.new_chiller_cop_factor, 1.0)
        cop_cool = b.chiller_cop * np.clip(1.0 - 0.02 * (t - 30.0), 0.75, 1.3)
        cop_heat = b.heating_cop * np.clip(1.0 + 0.03 * (t - 7.0), 0.6, 1.25)
        cop = np.where(mode == 2, cop_heat, cop_cool) * part_load * cop_gain
        plant_power = np.where(mode > 0, q / cop, 0.0) + 400.0  # controls, crankcase heaters
        plant_power = plant_power * (1.0 + 0.01 * normal(key(f"{b.id}.plant"), g.k))

        ahu_speed: list[F64] = []
        ahu_power: list[F64] = []
        for i, rated_kw in enumerate(b.ahus_kw):
            demand = np.maximum(lf, 0.6 * occ)
            drift = 3.0 * smooth_normal(key(f"{b.id}.ahu{i}"), g.t, HOUR_S)
            speed = np.where(hvac_on, np.clip(45.0 + 50.0 * demand + drift, 35.0, 100.0), 0.0)
            power = (
                rated_kw * 1000.0 * (speed / 100.0) ** 3 * (1.0 + 0.01 * normal(key(f"{b.id}.ahu{i}.m"), g.k))
            )
            ahu_speed.append(np.asarray(speed, dtype=np.float64))
            ahu_power.append(np.asarray(power, dtype=np.float64))
        terminal = hvac_on * b.floor_area_m2 * b.terminal_w_m2 * (0.4 + 0.6 * occ)
        return _Hvac(
            on=np.asarray(hvac_on, dtype=np.bool_),
            mode=mode,
            load_w=np.asarray(q, dtype=np.float64),
            cop=np.asarray(cop, dtype=np.float64),
            plant_power=np.asarray(plant_power, dtype=np.float64),
            ahu_speed=tuple(ahu_speed),
            ahu_power=tuple(ahu_power),
            terminal_power=np.asarray(terminal, dtype=np.float64),
        )

    def _power(self, b: Building, g: TimeGrid, occ: F64, hvac_on: B) -> F64:
        """Category C: lifts ride with occupancy; pumps and ventilation run around the clock."""
        key = self._key
        lift_use = np.clip(0.05 + 0.55 * occ * (1.0 + 0.25 * normal(key(f"{b.id}.lifts"), g.k)), 0.02, 1.0)
        lifts = b.lifts * b.lift_kw * 1000.0 * lift_use
        pumps = (
            b.base_power_kw
            * 1000.0
            * (1.0 + 0.3 * hvac_on)
            * (1.0 + 0.02 * normal(key(f"{b.id}.pumps"), g.k))
        )
        return np.asarray(lifts + pumps, dtype=np.float64)

    def _special(self, b: Building, g: TimeGrid, w: Weather, occ: F64, attendance: F64) -> F64:
        """Category D: the canteen (office), a server room (service hall), a data centre whose
        cooling overhead rises with the outdoor temperature (archive)."""
        t = w.temp_c
        sk = b.special_kw * 1000.0
        if b.use == "office":  # lunch and dinner service on working days
            meals = _curve(_MEALS, g.tod_h)
            cat_d = 0.08 * sk + sk * np.where(g.workday, meals, 0.0) * attendance
        elif b.use == "service_hall":  # server room and queueing kiosks
            cat_d = sk * (1.0 + 0.008 * (t - 20.0)) + 6000.0 * occ
        else:  # IT load with slow variation, PUE rising with heat
            it = sk * (1.0 + 0.03 * smooth_normal(self._key(f"{b.id}.it"), g.t, 24 * HOUR_S) + 0.04 * occ)
            pue = 1.32 + 0.012 * np.clip(t - 12.0, 0.0, 25.0)
            cat_d = it * pue + 20_000.0
        cat_d = cat_d * (1.0 + 0.02 * normal(self._key(f"{b.id}.special"), g.k))
        return np.asarray(cat_d, dtype=np.float64)

    # -- per device -----------------------------------------------------------------------------
    def power_w(self, loads: SiteLoads) -> dict[str, F64]:
        """Electrical power (W) of every device with an energy counter."""
        out: dict[str, F64] = {}
        for d in self.metered:
            assert d.building is not None
            bl = loads.buildings[d.building]
            out[d.id] = _device_power(d, bl)
        return out

    def run_status(self, loads: SiteLoads) -> dict[str, B]:
        """Run status of the HVAC devices (integrated into their run-hours counters)."""
        out: dict[str, B] = {}
        for d in self.devices:
            if d.kind != "hvac" or d.building is None:
                continue
            bl = loads.buildings[d.building]
            out[d.id] = bl.plant_run if d.role == "chiller" else bl.hvac_on
        return out

    def noise(self, name: str, k: I64) -> F64:
        """Per-minute standard normal noise of a named measurement (sensor noise on gauges)."""
        return normal(self._key(name), k)

    def unit_noise(self, name: str, k: I64) -> F64:
        return uniform(self._key(name), k)


def _device_power(d: Device, bl: BuildingLoads) -> F64:
    role = d.role
    if role == "main":
        return bl.main
    if role == "tenant":
        assert d.tenant is not None
        return bl.tenants[d.tenant]
    if role in ("light", "hvac", "power", "special"):
        assert d.category is not None
        return bl.category[d.category]
    if role == "hvac-plant":  # 01B10: the plant's share of B
        return bl.plant_power
    if role == "hvac-terminals":  # 01B20: AHU fans and fan coils, the rest of B
        return np.asarray(np.sum(bl.ahu_power, axis=0) + bl.terminal_power, dtype=np.float64)
    if role == "chiller":
        return bl.plant_power
    if role == "ahu":
        return bl.ahu_power[d.index]
    if role == "lc":
        return bl.lighting
    raise KeyError(f"device {d.id} has no power")
