"""Benchmark: the city statistics report over thousands of institutions.

Run: .venv/bin/python bench/city_report.py            # 1,300 and 13,000 institutions, ~5 min
     .venv/bin/python bench/city_report.py --sizes 1300 --years 2

For each size it generates a register (one electricity meter per institution; every tenth
institution sits in a shared building: a main meter, its own tenant meter and a virtual
common-area meter = main − tenant) and daily ``energy_interval`` for 2024 and 2025 (synthetic,
written to a private InfluxDB 1.x as line protocol), then times ``epcwatch stats institutions
--period 2025`` as a separate process (register loading and validation, virtual-meter rollup for
both years, the GROUP BY queries, the per-institution reports, XLSX + CSV + JSON) and reads its
peak RSS from the kernel (``wait4``). The floor it is compared with, measured in the same run:
the report's own two GROUP BY queries alone (what InfluxDB needs to sum a year per meter).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from epcwatch.devservices.services import Influxd, free_port, influx_query
from epcwatch.influx import InfluxClient
from epcwatch.reporting.influxio import period_sums
from epcwatch.reporting.periods import Period

EXE = str(Path(sys.executable).parent / "epcwatch")


class CompactingInfluxd(Influxd):
    """The dev server, configured to fully compact a shard seconds after writes stop: a city's
    report reads months-old, compacted data, not the freshly written level-1 files a benchmark
    would otherwise query (several times slower on InfluxDB 1.6)."""

    def write_config(self) -> list[str]:
        argv = super().write_config()
        conf = self.dir / "influxdb.conf"
        text = conf.read_text()
        conf.write_text(
            text.replace(
                'cache-snapshot-write-cold-duration = "1m"',
                'cache-snapshot-write-cold-duration = "2s"\n  compact-full-write-cold-duration = "5s"',
            )
        )
        return argv


def settle(data_dir: Path, timeout: float = 600.0) -> float:
    """Wait until the database's TSM files stop changing (compaction done); seconds waited."""
    t0 = time.perf_counter()
    last, stable = None, 0
    while time.perf_counter() - t0 < timeout:
        files = sorted((p.name, p.stat().st_size) for p in data_dir.rglob("*.tsm*") if p.exists())
        busy = any(n.endswith(".tmp") for n, _ in files)
        stable = stable + 1 if files == last and not busy else 0
        if stable >= 5:
            break
        last = files
        time.sleep(2)
    return time.perf_counter() - t0


TZ = ZoneInfo("Asia/Shanghai")
DAY_MS = 86_400_000


def register_yaml(n: int, virtual_every: int) -> str:
    rng = np.random.default_rng(n)
    out = ["timezone: Asia/Shanghai", "institutions:"]
    for i in range(n):
        site = f"s{i // 100}"
        staff = int(rng.integers(20, 500))
        area = int(rng.integers(1000, 20000))
        out += [
            f"  - id: i{i}",
            f"    name: 单位 {i}",
            f"    staff: {staff}",
            f"    buildings: [{{id: b{i}, floor_area_m2: {area}}}]",
            "    meters:",
        ]
        if virtual_every and i % virtual_every == 0:
            out += [
                f"      - {{id: i{i}-main, site: {site}, device: m{i}, in_total: false}}",
                f"      - {{id: i{i}-t, site: {site}, device: t{i}}}",
                f'      - {{id: i{i}-common, site: {site}, formula: "[i{i}-main] - [i{i}-t]"}}',
            ]
        else:
            out.append(f"      - {{id: i{i}-main, site: {site}, device: m{i}}}")
    return "\n".join(out) + "\n"


def write_data(client: InfluxClient, n: int, years: list[int], virtual_every: int) -> int:
    rng = np.random.default_rng(n + 1)
    t0 = int(datetime(years[0], 1, 1, tzinfo=TZ).timestamp() * 1000)
    ndays = sum(366 if y % 4 == 0 else 365 for y in years)
    d = np.arange(ndays)
    season = 1 + 0.25 * np.cos(2 * np.pi * (d - 200) / 365.0)
    stamps = [str(t0 + k * DAY_MS) for k in range(ndays)]
    first_year_days = 366 if years[0] % 4 == 0 else 365
    batch: list[str] = []
    points = 0
    for i in range(n):
        base = rng.uniform(200, 4000)
        trend = np.where(d >= first_year_days, rng.uniform(0.85, 1.08), 1.0)
        vals = np.round(base * season * trend * rng.uniform(0.95, 1.05, ndays), 3)
        devices = [(f"m{i}", vals)]
        if virtual_every and i % virtual_every == 0:
            devices.append((f"t{i}", np.round(vals * 0.3, 3)))
        for dev, series in devices:
            head = f"energy_interval,device={dev},interval=1d,site=s{i // 100} energy_import="
            batch.extend(f"{head}{v},coverage=1 {t}" for v, t in zip(series.tolist(), stamps, strict=True))
        if len(batch) >= 50_000:
            client.write(batch)
            points += len(batch)
            batch = []
    client.write(batch)
    return points + len(batch)


def run_report(reg: Path, out: Path, url: str, db: str) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [
            EXE,
            "stats",
            "institutions",
            "--register",
            str(reg),
            "--period",
            "2025",
            "--out",
            str(out),
            "--influx-url",
            url,
            "--database",
            db,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=out.parent,
    )
    assert proc.stdout is not None
    text = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"report failed:\n{text}")
    return wall, usage.ru_maxrss / 1024, text.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1300,13000")
    ap.add_argument("--virtual-every", type=int, default=10)
    ap.add_argument("--no-floor", action="store_true", help="skip timing the bare city-wide GROUP BY queries")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    years = [2024, 2025]
    tmp = Path(tempfile.mkdtemp(prefix="epcwatch-bench-city-"))
    influxd = CompactingInfluxd(state_dir=tmp / "influx", port=free_port())
    influxd.start()
    results = []
    try:
        for n in sizes:
            db = f"city{n}"
            influx_query(influxd.url, f'CREATE DATABASE "{db}"', method="POST")
            client = InfluxClient(influxd.url, db, timeout=600)
            reg = tmp / f"register-{n}.yaml"
            reg.write_text(register_yaml(n, args.virtual_every), encoding="utf-8")
            t0 = time.perf_counter()
            points = write_data(client, n, years, args.virtual_every)
            t_write = time.perf_counter() - t0
            print(
                f"{n:>6} institutions: wrote {points:,} daily points in {t_write:.1f} s "
                f"({points / t_write:,.0f} points/s)",
                flush=True,
            )
            t_settle = settle(influxd.dir / "data" / db)
            print(f"{n:>6} institutions: compaction settled after {t_settle:.0f} s", flush=True)
            p = Period(2025)
            t0 = time.perf_counter()
            if not args.no_floor:
                for q in (p, p.last_year()):
                    period_sums(client, "energy_import", *q.window_ms("Asia/Shanghai"))
            t_floor = max(time.perf_counter() - t0, 1e-9)
            out = tmp / f"out-{n}"
            wall, rss, summary = run_report(reg, out, influxd.url, db)
            results.append((n, wall, rss, t_floor))
            floor = (
                ""
                if args.no_floor
                else (
                    f"; the two GROUP BY queries alone {t_floor:.1f} s "
                    f"(report / queries = {wall / t_floor:.1f}x)"
                )
            )
            print(
                f"{n:>6} institutions: city report {wall:.1f} s ({wall / n * 1000:.2f} ms per institution), "
                f"peak RSS {rss:.0f} MB{floor}",
                flush=True,
            )
            print(f"        {summary}", flush=True)
    finally:
        influxd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    if len(results) >= 2:
        (n0, w0, r0, _), (n1, w1, r1, _) = results[0], results[-1]
        print(
            f"growth {n0:,} -> {n1:,} institutions ({n1 / n0:.0f}x): "
            f"time {w1 / w0:.1f}x, peak RSS {r1 / r0:.1f}x"
        )


if __name__ == "__main__":
    main()
