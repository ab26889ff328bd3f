"""A deterministic synthetic weather year for a humid subtropical basin climate like Chengdu's.

Chengdu (Köppen Cwa): annual mean ~16 °C, January ~6 °C, July/August ~26 °C, a small daily
range (~7 °C, often overcast), high humidity all year (~80 %). The model is

    temperature = seasonal normal + slow weather anomaly (multi-day fronts) + diurnal swing
    humidity    = seasonal normal - response to the diurnal swing and to the anomaly

The anomaly is a seeded smooth random process (noise knots every 36 h, interpolated), so any
minute of any year can be evaluated on its own and the same seed always gives the same year.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from epcwatch.sim.noise import smooth_normal, stream_key
from epcwatch.sim.timegrid import TimeGrid

F64 = npt.NDArray[np.float64]

YEAR_DAYS: Final = 365.25


@dataclass(frozen=True)
class Climate:
    """Parameters of the synthetic climate (defaults: Chengdu-like)."""

    mean_c: float = 16.3
    annual_amplitude_c: float = 10.2  #: half the difference between July and January means
    coldest_doy: float = 20.0
    diurnal_half_range_c: float = 3.4
    warmest_hour: float = 15.0
    anomaly_sd_c: float = 2.4
    anomaly_period_s: float = 36 * 3600.0
    humidity_mean_pct: float = 79.0
    humidity_amplitude_pct: float = 4.5
    most_humid_doy: float = 260.0


@dataclass(frozen=True)
class Weather:
    """Outdoor conditions at each step of a grid."""

    temp_c: F64
    humidity_pct: F64
    #: 0..1 daylight on a horizontal surface (sun height x cloudiness): drives dimming and solar gains
    daylight: F64


def weather(g: TimeGrid, seed: int = 0, climate: Climate = Climate()) -> Weather:
    c = climate
    season = -np.cos(2 * np.pi * (g.doy - c.coldest_doy) / YEAR_DAYS)
    anomaly = c.anomaly_sd_c * smooth_normal(stream_key(seed, "weather.anomaly"), g.t, c.anomaly_period_s)
    # sunny spells are warmer and have a larger daily swing; overcast spells the opposite
    sunny = np.clip(0.5 + anomaly / (3 * c.anomaly_sd_c), 0.1, 1.0)
    half_range = c.diurnal_half_range_c * (0.75 + 0.5 * sunny) * (1.0 + 0.12 * season)
    diurnal = np.cos(2 * np.pi * (g.tod_h - c.warmest_hour) / 24.0)
    temp = c.mean_c + c.annual_amplitude_c * season + anomaly + half_range * diurnal

    # day length in Chengdu: ~10 h at the winter solstice, ~14 h at the summer one
    day_len = 12.0 - 2.0 * np.cos(2 * np.pi * (g.doy - 355.0) / YEAR_DAYS)
    sunrise = 13.0 - day_len / 2  # solar noon ~13:00 Beijing time at 104 °E
    sun_arc = np.clip(np.sin(np.pi * (g.tod_h - sunrise) / day_len), 0.0, None)
    sun_arc = np.where((g.tod_h > sunrise) & (g.tod_h < sunrise + day_len), sun_arc, 0.0)
    daylight = sun_arc * (0.25 + 0.75 * sunny)

    rh_season = c.humidity_mean_pct + c.humidity_amplitude_pct * np.cos(
        2 * np.pi * (g.doy - c.most_humid_doy) / YEAR_DAYS
    )
    humidity = rh_season - 3.2 * half_range * diurnal / c.diurnal_half_range_c - 1.5 * anomaly
    return Weather(
        temp_c=np.asarray(temp, dtype=np.float64),
        humidity_pct=np.clip(humidity, 20.0, 100.0),
        daylight=np.asarray(daylight, dtype=np.float64),
    )
