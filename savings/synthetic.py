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
