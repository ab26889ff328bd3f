"""Fixtures of the M&V tests: synthetic sites with known savings, written to a real InfluxDB."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from epcwatch.savings import synthetic

REPO = Path(__file__).resolve().parents[2]
TZ = "Asia/Shanghai"


def write_lines(url: str, db: str, lines: list[str]) -> None:
    """POST line protocol (seconds precision) to InfluxDB's /write in chunks."""
    for i in range(0, len(lines), 5000):
        body = ("\n".join(lines[i : i + 5000]) + "\n").encode()
        req = urllib.request.Request(f"{url}/write?db={db}&precision=s", data=body, method="POST")
        with urllib.request.urlopen(req, timeout=60) as r:
            assert r.status == 204


def epoch_local(ts: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Naive site-local timestamps → epoch seconds."""
    idx = pd.DatetimeIndex(ts).tz_localize(ZoneInfo(TZ))
    return np.asarray(idx.as_unit("s").asi8)


def lighting_daily(seed: int = 1, savings_fraction: float = 0.35) -> pd.DataFrame:
    """A lighting circuit: occupancy-driven, weather-independent, cut by LED retrofit in 2025."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", "2025-12-31", freq="D")
    working = np.asarray(days.day_of_week) < 5
    base = np.where(working, 420.0, 95.0)
    noise = rng.normal(0.0, 18.0, len(days))
    cf = base + noise
    after = np.asarray(days >= pd.Timestamp("2025-01-01"))
    energy = np.where(after, base * (1 - savings_fraction) + noise, cf)
    return pd.DataFrame({"date": days, "energy": energy, "counterfactual": cf})


def site_lines(hourly: pd.DataFrame, light: pd.DataFrame, *, rollups: bool = True) -> list[str]:
    """The demo site's data as the collector would store it: daily rollups (or raw counters)
    for b1-main and b1-light, and hourly outdoor temperature from the weather sensor."""
    lines: list[str] = []
    tags_main = "site=civic-centre,device=b1-main,building=b1,category=total,profile=sdm630"
    tags_light = "site=civic-centre,device=b1-light,building=b1,category=A,profile=sdm630"
    d = synthetic.daily(hourly)
    if rollups:
        for tags, frame in ((tags_main, d), (tags_light, light)):
            for t, e in zip(epoch_local(frame["date"]), frame["energy"], strict=True):
                lines.append(f"energy_interval,{tags},interval=1d energy_import={e:.4f},coverage=1.0 {t}")
    else:
        # hourly counter readings taken at the end of each hour
        counter = 100000.0 + np.cumsum(hourly["energy"].to_numpy())
        ts = epoch_local(hourly["timestamp"]) + 3600 - 1
        for t, c in zip(ts, counter, strict=True):
            lines.append(f"meter,{tags_main} energy_import={c:.4f},active_power=1000.0 {t}")
    for t, temp in zip(epoch_local(hourly["timestamp"]), hourly["temperature"], strict=True):
        lines.append(f"sensor,site=civic-centre,device=weather outdoor_temp={temp:.3f} {t}")
    return lines


@pytest.fixture(scope="session")
def world() -> dict[str, pd.DataFrame]:
    h = synthetic.hourly(seed=0)
    return {"hourly": h, "daily": synthetic.daily(h), "light": lighting_daily()}


@pytest.fixture
def contract_file(tmp_path: Path) -> Callable[[str, dict[str, str]], Path]:
    """Copy a demo contract into tmp_path with textual replacements."""

    def make(name: str, replace: dict[str, str] | None = None) -> Path:
        text = (REPO / "demo" / "data" / name).read_text()
        for a, b in (replace or {}).items():
            assert a in text, a
            text = text.replace(a, b)
        p = tmp_path / name
        p.write_text(text)
        return p

    return make
