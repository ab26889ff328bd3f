"""Normal-year weather: a typical year of daily mean temperatures for normalised savings.

The shipped ``data/normal-year-chengdu.csv`` is made by :func:`synthesize_normal_year` from
approximate 1991–2020 monthly mean temperatures of Chengdu (humid subtropical, Köppen Cwa):
a periodic cubic spline through the monthly means placed at mid-month gives the seasonal
curve; a deterministic AR(1) day-to-day anomaly (φ = 0.7, σ = 2.0 °C, seed 2024) adds the
variability that degree-day and change-point models respond to; each month's anomaly is then
shifted to average zero so that every month keeps its normal mean exactly. It is a smooth
stand-in for a typical meteorological year, fit for a demo and for tests, not a measured TMY:
for a real contract, use the agreed normal-year file of the site's weather station.
"""

from __future__ import annotations

import os
from importlib import resources

import numpy as np
from numpy.typing import NDArray
from scipy.interpolate import CubicSpline

CHENGDU_MONTHLY_MEAN_C = (5.9, 8.5, 12.4, 17.3, 21.6, 24.2, 26.0, 25.6, 21.9, 17.5, 12.6, 7.5)
DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
BUILTIN = {"chengdu": "normal-year-chengdu.csv"}


def synthesize_normal_year(
    monthly_means: tuple[float, ...] = CHENGDU_MONTHLY_MEAN_C,
    seed: int = 2024,
    phi: float = 0.7,
    sigma: float = 2.0,
) -> NDArray[np.float64]:
    """365 daily mean temperatures whose monthly means equal ``monthly_means``."""
    ends = np.cumsum(DAYS_IN_MONTH)
    starts = ends - np.array(DAYS_IN_MONTH)
    mids = (starts + ends) / 2.0
    x = np.concatenate([mids - 365, mids, mids + 365])
    y = np.tile(np.asarray(monthly_means, dtype=float), 3)
    seasonal = CubicSpline(x, y)(np.arange(365) + 0.5)
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, sigma * np.sqrt(1 - phi**2), 365)
    anom = np.zeros(365)
    for i in range(365):
        anom[i] = (phi * anom[i - 1] if i else 0.0) + eps[i]
    temps = seasonal + anom
    for m, (a, b) in enumerate(zip(starts, ends, strict=True)):
        temps[a:b] += monthly_means[m] - temps[a:b].mean()
    return np.asarray(np.round(temps, 2), dtype=np.float64)


def to_csv(temps: NDArray[np.float64]) -> str:
    lines = [
        "# normal year of daily mean outdoor temperature (°C), Chengdu-like humid subtropical climate",
        "# derived by epcwatch.savings.weather.synthesize_normal_year: periodic cubic spline through",
        "# approximate 1991-2020 Chengdu monthly means + AR(1) daily anomaly (phi 0.7, sigma 2.0 C,",
        "# seed 2024), each month shifted to keep its normal mean",
        "day_of_year,temperature",
    ]
    lines += [f"{i + 1},{t:.2f}" for i, t in enumerate(temps)]
    return "\n".join(lines) + "\n"


def parse_normal_year(text: str, where: str) -> NDArray[np.float64]:
    """Parse ``day_of_year,temperature`` rows (1..365, °C; a 366th day is ignored)."""
    vals: dict[int, float] = {}
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#") or s.lower().startswith("day_of_year"):
            continue
        try:
            d, t = s.split(",")[:2]
            vals[int(d)] = float(t)
        except ValueError:
            raise ValueError(f"{where}:{n}: expected day_of_year,temperature") from None
    missing = [d for d in range(1, 366) if d not in vals]
    if missing:
        raise ValueError(f"{where}: normal year lacks day(s) {missing[:5]}{'…' if len(missing) > 5 else ''}")
    return np.array([vals[d] for d in range(1, 366)], dtype=np.float64)


def load_normal_year(spec: str, base: str | os.PathLike[str] | None = None) -> NDArray[np.float64]:
    """``builtin:NAME`` (a shipped file) or a CSV path."""
    if spec.startswith("builtin:"):
        name = spec.split(":", 1)[1]
        if name not in BUILTIN:
            raise ValueError(f"unknown built-in normal year {name!r}; choose {', '.join(BUILTIN)}")
        text = resources.files("epcwatch.savings").joinpath("data", BUILTIN[name]).read_text(encoding="utf-8")
        return parse_normal_year(text, spec)
    try:
        with open(spec, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read normal-year file {spec}: {exc.strerror or exc}") from None
    return parse_normal_year(text, spec)
