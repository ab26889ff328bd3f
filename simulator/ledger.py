"""Counters and energy totals: the exact integrals of the model's piecewise-constant power.

A counter's value at instant ``t`` is its initial reading at the counter origin (local midnight
of ``ComplexSpec.counter_origin``) plus ``sum(P_j x 60 s)`` over the whole steps before ``t``
plus the running step's power times the part of it already elapsed. Daily totals are the same
sums per site-local day, so what a meter served over Modbus and what the truth export says
agree by construction (up to the register's resolution).

Counters: ``energy_import`` (kWh) of every device with power; ``run_hours`` (h) of the chiller
plants and AHUs (the integral of their run status); ``water_volume`` / ``gas_volume`` (m³) of the
water and gas meters (the integral of their flow).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from epcwatch.sim.model import ComplexModel, SiteLoads
from epcwatch.sim.noise import stream_key, uniform
from epcwatch.sim.spec import VOLUME_ROLES
from epcwatch.sim.timegrid import STEP_S, date_of, day_number, day_steps, grid, local_midnight
from epcwatch.sim.weather import weather

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

KWH_PER_WSTEP: Final = STEP_S / 3.6e6  #: kWh per W held for one step
H_PER_STEP: Final = STEP_S / 3600.0
CHUNK_DAYS: Final = 31


def step_increments(model: ComplexModel, loads: SiteLoads) -> dict[tuple[str, str], F64]:
    """Per-step counter increments, keyed by (device, counter measurement)."""
    out: dict[tuple[str, str], F64] = {}
    for dev, p in model.power_w(loads).items():
        out[(dev, "energy_import")] = p * KWH_PER_WSTEP
    for dev, run in model.run_status(loads).items():
        out[(dev, "run_hours")] = run.astype(np.float64) * H_PER_STEP
    for d in model.volume_meters:
        out[(d.id, VOLUME_ROLES[d.role])] = model.volume_m3h(loads)[d.id] * H_PER_STEP
    return out


def initial_values(model: ComplexModel) -> dict[tuple[str, str], float]:
    """Counter readings at the origin: meters already in service show some history."""
    out: dict[tuple[str, str], float] = {}
    one = np.zeros(1, dtype=np.int64)
    for d in model.metered:
        u = float(uniform(stream_key(model.spec.seed, f"{d.id}.initial"), one)[0])
        out[(d.id, "energy_import")] = round(1_000.0 + 49_000.0 * u, 1)
        if d.kind == "hvac":
            out[(d.id, "run_hours")] = round(2_000.0 + 18_000.0 * u)
    for d in model.volume_meters:
        u = float(uniform(stream_key(model.spec.seed, f"{d.id}.initial"), one)[0])
        out[(d.id, VOLUME_ROLES[d.role])] = round(100.0 + 9_900.0 * u, 1)
    return out


@dataclass(frozen=True)
class DailyTotals:
    """Per site-local day: energy of every metered device, actual and counterfactual."""

    days: list[dt.date]
    actual_kwh: dict[str, F64]
    counterfactual_kwh: dict[str, F64]
    run_hours: dict[str, F64]
    temp_mean_c: F64
    #: water and gas meters: m³ per day
    volume_m3: dict[str, F64]


def _day_starts(local_day: I64) -> I64:
    idx = np.flatnonzero(np.diff(local_day)) + 1
    out: I64 = np.concatenate(([0], idx)).astype(np.int64)
    return out


def daily_totals(
    model: ComplexModel, first: dt.date, last: dt.date, counterfactual: bool = True
) -> DailyTotals:
    """Daily totals for the local days ``first``..``last`` (inclusive), month-sized chunks at a time."""
    if last < first:
        raise ValueError(f"last day {last} is before first day {first}")
    days: list[dt.date] = []
    actual: dict[str, list[F64]] = {d.id: [] for d in model.metered}
    cf: dict[str, list[F64]] = {d.id: [] for d in model.metered}
    run: dict[str, list[F64]] = {d.id: [] for d in model.metered if d.kind == "hvac"}
    volume: dict[str, list[F64]] = {d.id: [] for d in model.volume_meters}
    temps: list[F64] = []
    day = first
    while day <= last:
        chunk_last = min(last, day + dt.timedelta(days=CHUNK_DAYS - 1))
        k0, k1 = day_steps(day, chunk_last, model.tz)
        g = grid(np.arange(k0, k1, dtype=np.int64), model.tz)
        w = weather(g, model.spec.seed)
        starts = _day_starts(g.local_day)
        days += [date_of(int(d)) for d in g.local_day[starts]]
        counts = np.diff(np.append(starts, len(g)))
        temps.append(np.add.reduceat(w.temp_c, starts) / counts)
        inc = step_increments(model, model.loads_on(g, w, True))
        for (dev, name), v in inc.items():
            into = actual if name == "energy_import" else run if name == "run_hours" else volume
            into[dev].append(np.add.reduceat(v, starts))
        if counterfactual:
            inc_cf = step_increments(model, model.loads_on(g, w, False))
            for (dev, name), v in inc_cf.items():
                if name == "energy_import":
                    cf[dev].append(np.add.reduceat(v, starts))
        day = chunk_last + dt.timedelta(days=1)
    return DailyTotals(
        days=days,
        actual_kwh={k: np.concatenate(v) for k, v in actual.items()},
        counterfactual_kwh={k: np.concatenate(v) for k, v in cf.items()} if counterfactual else {},
        run_hours={k: np.concatenate(v) for k, v in run.items()},
        temp_mean_c=np.concatenate(temps),
        volume_m3={k: np.concatenate(v) for k, v in volume.items()},
    )


class Counters:
    """Counter values of every device at any instant at or after the counter origin.

    Whole days before the instant come from cached daily totals; the running day is evaluated
    once per day at one-minute resolution and cached, so serving a counter every second costs
    a lookup.
    """

    def __init__(self, model: ComplexModel, retrofits: bool = True) -> None:
        self.model = model
        self.retrofits = retrofits
        self.initial = initial_values(model)
        self.origin_day = day_number(model.spec.counter_origin)
        self.origin_t = local_midnight(model.spec.counter_origin, model.tz)
        #: cumulative increments at the start of each day since the origin: row i = day origin+i
        self._cum_days: dict[tuple[str, str], F64] = {key: np.zeros(1) for key in self.initial}
        self._day_cache: tuple[int, int, dict[tuple[str, str], F64], dict[tuple[str, str], F64]] | None = None

    def _extend(self, upto_day: int) -> None:
        """Make ``_cum_days`` cover the start of day ``upto_day``."""
        have = next(iter(self._cum_days.values())).shape[0] - 1 + self.origin_day
        if upto_day <= have:
            return
        totals = self._totals(date_of(have), date_of(upto_day - 1))
        for key, daily in totals.items():
            prev = self._cum_days[key]
            self._cum_days[key] = np.concatenate((prev, prev[-1] + np.cumsum(daily)))

    def _totals(self, first: dt.date, last: dt.date) -> dict[tuple[str, str], F64]:
        out: dict[tuple[str, str], list[F64]] = {key: [] for key in self.initial}
        for _, loads, inc in self._chunks(first, last):
            starts = _day_starts(loads.grid.local_day)
            for key, v in inc.items():
                out[key].append(np.add.reduceat(v, starts))
        return {key: np.concatenate(v) for key, v in out.items()}

    def _chunks(
        self, first: dt.date, last: dt.date
    ) -> Iterator[tuple[int, SiteLoads, dict[tuple[str, str], F64]]]:
        day = first
        while day <= last:
            chunk_last = min(last, day + dt.timedelta(days=CHUNK_DAYS - 1))
            k0, k1 = day_steps(day, chunk_last, self.model.tz)
            loads = self.model.loads(np.arange(k0, k1, dtype=np.int64), self.retrofits)
            yield k0, loads, step_increments(self.model, loads)
            day = chunk_last + dt.timedelta(days=1)

    def _day(self, day: int) -> tuple[int, dict[tuple[str, str], F64], dict[tuple[str, str], F64]]:
        """Step range start, per-step increments and their running sums for local day ``day``."""
        if self._day_cache is None or self._day_cache[0] != day:
            d = date_of(day)
            k0, k1 = day_steps(d, d, self.model.tz)
            loads = self.model.loads(np.arange(k0, k1, dtype=np.int64), self.retrofits)
            inc = step_increments(self.model, loads)
            cum = {key: np.concatenate(([0.0], np.cumsum(v))) for key, v in inc.items()}
            self._day_cache = (day, k0, inc, cum)
        return self._day_cache[1], self._day_cache[2], self._day_cache[3]

    def _local_day(self, t: float) -> int:
        k = np.array([int(t // STEP_S)], dtype=np.int64)
        return int(grid(k, self.model.tz).local_day[0])

    def at(self, t: float) -> dict[tuple[str, str], float]:
        """Every counter's value at epoch second ``t``."""
        if t < self.origin_t:
            raise ValueError(
                f"time {t} is before the counter origin {self.model.spec.counter_origin} (local midnight)"
            )
        day = self._local_day(t)
        self._extend(day + 1)
        k0, inc, cum = self._day(day)
        pos = (t - k0 * STEP_S) / STEP_S
        j = min(int(pos), next(iter(inc.values())).shape[0] - 1)
        frac = pos - j
        i = day - self.origin_day
        out: dict[tuple[str, str], float] = {}
        for key in self.initial:
            start, end = float(self._cum_days[key][i]), float(self._cum_days[key][i + 1])
            # one association order, capped at the next midnight's value: rounding can never
            # make a counter step back, not even by an ulp at a day boundary
            since_origin = min(start + float(cum[key][j] + inc[key][j] * frac), end)
            out[key] = self.initial[key] + since_origin
        return out

    def series(
        self, first: dt.date, last: dt.date, interval_s: int
    ) -> Iterator[tuple[I64, SiteLoads, dict[tuple[str, str], F64]]]:
        """Counter values every ``interval_s`` (a multiple of the step) over the local days
        ``first``..``last``, a chunk at a time: (timestamps in epoch s, loads at those instants'
        steps, counter values at those instants)."""
        if interval_s % STEP_S:
            raise ValueError(f"interval must be a multiple of {STEP_S} s")
        every = interval_s // STEP_S
        start_day = day_number(first)
        if start_day < self.origin_day:
            raise ValueError(f"{first} is before the counter origin {self.model.spec.counter_origin}")
        self._extend(start_day)
        i = start_day - self.origin_day
        base = {key: self.initial[key] + float(self._cum_days[key][i]) for key in self.initial}
        for k0, _, inc in self._chunks(first, last):
            n = next(iter(inc.values())).shape[0]
            # instants on the interval's grid of epoch time (every 15 min on the quarter hour, …)
            pick = np.arange((-k0) % every, n, every)
            values: dict[tuple[str, str], F64] = {}
            for key, v in inc.items():
                cum = np.concatenate(([0.0], np.cumsum(v)))
                values[key] = base[key] + cum[pick]
                base[key] += float(cum[-1])
            # the model is pointwise in time: evaluating the sampled steps alone gives the same loads
            steps = (k0 + pick).astype(np.int64)
            yield steps * STEP_S, self.model.loads(steps, self.retrofits), values
