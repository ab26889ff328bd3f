"""A synthetic office building with known savings, for tests, benchmarks and trying the commands.

Hourly outdoor temperature follows a Chengdu-like seasonal cycle with AR(1) weather noise and a
daily swing; load has a base, an occupancy block on working days (08:00–18:00), heating below
14 °C and cooling above 22 °C (stronger when occupied) and noise. From ``retrofit`` on, the load
is cut by ``savings_fraction``; ``counterfactual`` is the load without the retrofit, so the true
savings are known exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def hourly(
    start: str = "2024-01-01",
    end: str = "2025-12-31",
    *,
    seed: int = 0,
    retrofit: str = "2025-01-01",
    savings_fraction: float = 0.15,
    noise_kwh: float = 5.0,
) -> pd.DataFrame:
    """Columns ``timestamp`` (naive local), ``energy`` (kWh), ``temperature`` (°C), ``counterfactual``."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, pd.Timestamp(end) + pd.Timedelta(hours=23), freq="h")
    doy = idx.day_of_year.to_numpy()
    hour = idx.hour.to_numpy()
    ndays = len(idx) // 24
    anom = np.zeros(ndays)
    eps = rng.normal(0.0, 2.0, ndays)
    for i in range(ndays):
        anom[i] = (0.7 * anom[i - 1] if i else 0.0) + eps[i]
    temp = 16.5 + 10.0 * np.sin(2 * np.pi * (doy - 105) / 365.0) + np.repeat(anom, 24)
    temp = temp + 3.5 * np.sin(2 * np.pi * (hour - 9) / 24.0)
    occ = ((np.asarray(idx.day_of_week) < 5) & (hour >= 8) & (hour < 18)).astype(float)
    heating = 1.5 * np.maximum(14.0 - temp, 0.0)
    cooling = 3.0 * np.maximum(temp - 22.0, 0.0) * (0.5 + occ)
    base = 40.0 + 60.0 * occ + heating + cooling
    noise = rng.normal(0.0, noise_kwh, len(idx))
    counterfactual = base + noise
    after = np.asarray(idx >= pd.Timestamp(retrofit))
    energy = np.where(after, base * (1.0 - savings_fraction) + noise, counterfactual)
    return pd.DataFrame(
        {"timestamp": idx, "energy": energy, "temperature": temp, "counterfactual": counterfactual}
    )


def daily(frame: pd.DataFrame) -> pd.DataFrame:
    """Daily sums of energy and counterfactual, daily mean temperature; column ``date``."""
    d = frame.set_index("timestamp")
    out = d.resample("D").agg({"energy": "sum", "counterfactual": "sum", "temperature": "mean"})
    out.index.name = "date"
    return out.reset_index()


def to_csv(frame: pd.DataFrame, path: str, *, daily_rows: bool = False) -> None:
    """Write the ``timestamp,energy,temperature`` CSV that ``savings fit`` reads."""
    col = "date" if daily_rows else "timestamp"
    fmt = "%Y-%m-%d" if daily_rows else "%Y-%m-%dT%H:%M:%S"
    pd.DataFrame(
        {
            "timestamp": frame[col].dt.strftime(fmt),
            "energy": frame["energy"].round(4),
            "temperature": frame["temperature"].round(3),
        }
    ).to_csv(path, index=False)


def _ar1(rng: np.random.Generator, n: int, rho: float, sd: float) -> np.ndarray:
    """AR(1) series with marginal standard deviation ``sd``."""
    from scipy.signal import lfilter

    eps = rng.normal(0.0, sd * np.sqrt(1.0 - rho**2), n)
    eps[0] = rng.normal(0.0, sd)
    return np.asarray(lfilter([1.0], [1.0, -rho], eps))


def building(
    *,
    seed: int = 0,
    frequency: str = "daily",
    rho: float = 0.5,
    heating: float = 1.5,
    cooling: float = 3.0,
    heating_balance: float = 14.0,
    cooling_balance: float = 22.0,
    lag_hours: float = 0.0,
    base_kw: float = 40.0,
    occupied_kw: float = 60.0,
    savings_fraction: float = 0.15,
    noise_share: float = 0.08,
    missing_days: float = 0.03,
    climate_mean: float = 16.5,
    climate_swing: float = 10.0,
    start: str = "2023-01-01",
    end: str = "2024-12-31",
    retrofit: str = "2024-01-01",
) -> pd.DataFrame:
    """A building with known savings for the M&V benchmark (physics, not a fitted model).

    Hourly outdoor temperature (seasonal cycle, AR(1) weather anomalies, daily swing); the
    building responds to a *lagged* temperature (first-order lag of ``lag_hours``: thermal mass);
    occupancy 08–18 on China's working days (public holidays off, make-up weekend days on);
    heating and cooling on the lagged temperature, cooling stronger when occupied. Noise is AR(1)
    with lag-1 correlation ``rho`` at the output frequency (hours or days), its standard deviation
    ``noise_share`` of the mean load. A share ``missing_days`` of days has no energy. From
    ``retrofit`` on the load is cut by ``savings_fraction``; ``counterfactual`` is the load without
    the retrofit with the same noise, so counterfactual − energy is the true saving.
    Columns: ``timestamp`` (hourly) or ``date`` (daily), ``energy``, ``temperature``,
    ``counterfactual``.
    """
    from scipy.signal import lfilter

    from epcwatch.savings.calendar import workdays

    rng = np.random.default_rng(seed)
    idx = pd.date_range(start, pd.Timestamp(end) + pd.Timedelta(hours=23), freq="h")
    doy = idx.day_of_year.to_numpy()
    hour = idx.hour.to_numpy()
    ndays = len(idx) // 24
    anom = np.repeat(_ar1(rng, ndays, 0.7, 2.8), 24)
    temp = climate_mean + climate_swing * np.sin(2 * np.pi * (doy - 105) / 365.0) + anom
    temp = temp + 3.5 * np.sin(2 * np.pi * (hour - 9) / 24.0) + rng.normal(0.0, 0.3, len(idx))
    if lag_hours > 0:
        a = 1.0 - np.exp(-1.0 / lag_hours)
        felt = np.asarray(lfilter([a], [1.0, -(1.0 - a)], temp - temp[0])) + temp[0]
    else:
        felt = temp
    days = pd.DatetimeIndex(idx.normalize().unique())
    work = np.repeat(np.asarray(workdays(days.date), dtype=bool), 24)
    occ = (work & (hour >= 8) & (hour < 18)).astype(float)
    load = base_kw + occupied_kw * occ
    load = load + heating * np.maximum(heating_balance - felt, 0.0) * (0.6 + 0.4 * occ)
    load = load + cooling * np.maximum(felt - cooling_balance, 0.0) * (0.5 + occ)
    after = np.asarray(idx >= pd.Timestamp(retrofit))
    frame = pd.DataFrame({"timestamp": idx, "base": load, "temperature": temp, "after": after})
    if frequency == "daily":
        d = (
            frame.set_index("timestamp")
            .resample("D")
            .agg({"base": "sum", "temperature": "mean", "after": "max"})
        )
        d.index.name = "date"
        frame = d.reset_index()
        key = "date"
    else:
        key = "timestamp"
    base = frame["base"].to_numpy()
    noise = _ar1(rng, len(frame), rho, noise_share * float(base.mean()))
    cf = base + noise
    energy = np.where(frame["after"].to_numpy(dtype=bool), base * (1.0 - savings_fraction) + noise, cf)
    day_of_row = pd.DatetimeIndex(frame[key]).normalize()
    gone = rng.random(len(days)) < missing_days
    gone_days = set(days[gone])
    missing = np.asarray([d in gone_days for d in day_of_row])
    energy = np.where(missing, np.nan, energy)
    return pd.DataFrame(
        {key: frame[key], "energy": energy, "temperature": frame["temperature"], "counterfactual": cf}
    )
