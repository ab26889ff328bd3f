"""``epcwatch collector rollup`` against the real InfluxDB: computed from the stored counters,
identical when re-run, and equal to the pure computation on the same samples."""

from __future__ import annotations

import subprocess
import urllib.request
from zoneinfo import ZoneInfo

import pytest
import yaml

from epcwatch.collector.rollup import Interval, Rules, interval_energy
from epcwatch.devservices.services import influx_query
from tests.collector.conftest import EPCWATCH

pytestmark = pytest.mark.integration

SH = ZoneInfo("Asia/Shanghai")
DAY0 = 1_735_660_800_000  # 2025-01-01 00:00 Asia/Shanghai
MIN = 60_000


def samples() -> list[tuple[int, float]]:
    """Two local days of a meter every 5 minutes, with a rollover and a reset."""
    out, reg = [], 99_500.0
    for k in range(2 * 288):
        t = DAY0 + k * 5 * MIN
        # k == 300: a reset (cleared, counted up 0.25 since); otherwise it wraps past 99,999.x
        reg = 0.25 if k == 300 else (reg + 1.0 + (k % 7) * 0.1) % 100_000.0
        out.append((t, round(reg, 6)))
    return out


def write(url: str, db: str, lines: list[str]) -> None:
    req = urllib.request.Request(
        f"{url}/write?db={db}&precision=ms", data="\n".join(lines).encode(), method="POST"
    )
    with urllib.request.urlopen(req) as r:
        assert r.status == 204


def stored(url: str, db: str, interval: str) -> list[list[object]]:
    doc = influx_query(
        url, f"SELECT energy_import, coverage FROM energy_interval WHERE interval = '{interval}'", db=db
    )
    return doc["results"][0]["series"][0]["values"]  # type: ignore[index,no-any-return]


def test_rollup_command(influxdb, database, tmp_path) -> None:
    data = samples()
    write(
        influxdb.url,
        database,
        [f"meter,building=b1,device=m1,site=civic active_power=1.0,energy_import={v} {t}" for t, v in data],
    )
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "influx": {"url": influxdb.url, "database": database},
                "rollup": {"timezones": {"civic": "Asia/Shanghai"}, "max_rate_per_h": 1000},
            }
        )
    )
    argv = [
        EPCWATCH,
        "collector",
        "rollup",
        "-c",
        str(cfg),
        "--from",
        "2025-01-01T00:00+08:00",
        "--to",
        "2025-01-03T00:00+08:00",
    ]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    quarters, days = stored(influxdb.url, database, "15m"), stored(influxdb.url, database, "1d")
    again = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert stored(influxdb.url, database, "15m") == quarters and stored(influxdb.url, database, "1d") == days

    rules = Rules(max_rate_per_h=1000)
    want_days = interval_energy(data, Interval.DAY, SH, rules, start=DAY0, end=DAY0 + 2 * 86_400_000)
    assert [(r[0], r[1]) for r in days] == [(d.start, pytest.approx(d.increase, abs=1e-6)) for d in want_days]
    assert [d[0] for d in days] == [DAY0, DAY0 + 86_400_000]  # local midnights
    assert len(quarters) == 2 * 96
    assert sum(q[1] for q in quarters) == pytest.approx(sum(d[1] for d in days), abs=1e-6)  # type: ignore[misc]
    # the rollover was counted across the wrap, the reset's 0.25 counted, nothing negative
    assert all(q[1] >= 0 for q in quarters)  # type: ignore[operator]

    tags = influx_query(influxdb.url, "SHOW TAG KEYS FROM energy_interval", db=database)
    keys = {v[0] for v in tags["results"][0]["series"][0]["values"]}  # type: ignore[index]
    assert keys == {"building", "device", "site", "interval"}


def test_rollup_command_reports_config_errors(tmp_path) -> None:
    cfg = tmp_path / "collector.yaml"
    cfg.write_text("rollup:\n  timezones:\n    civic: Mars/Olympus\n")
    r = subprocess.run(
        [EPCWATCH, "collector", "rollup", "-c", str(cfg), "--from", "2025-01-01", "--to", "2025-01-02"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "collector.yaml:3:" in r.stderr and "Mars/Olympus" in r.stderr and "Traceback" not in r.stderr
