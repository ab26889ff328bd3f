"""How expensive are the dashboards' queries, compared with InfluxDB's own scan of the same points?

Starts a private InfluxDB 1.x on a free port, writes a portfolio of 40 buildings (category,
tenant and main meters: 280 devices) with two years of daily ``energy_interval`` points and 30
days of hourly power, then times every Portfolio and Building energy panel query (expanded as
Grafana expands it) and ``epcwatch stats --period year``. The limit, measured in the same run:
a bare ``count()`` over the same points and range (what InfluxDB must read anyway). Ratios near
1 mean the dashboards add little beyond reading the data. Panel time overrides are ignored: every
Portfolio panel runs over the whole year (its worst case), Building energy over the month.

    .venv/bin/python bench/dashboards_queries.py
"""

from __future__ import annotations

import re
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from epcwatch.dashboards.boards import build_all
from epcwatch.dashboards.influx import InfluxClient
from epcwatch.dashboards.influxql import Variable, expand
from epcwatch.dashboards.stats import Period, compute
from epcwatch.devservices.services import Influxd, free_port, influx_query
from epcwatch.portfolio import Building, Portfolio, Site

TZ = ZoneInfo("Asia/Shanghai")
BUILDINGS = 40
DAYS = 731  # 2024-01-01 … 2025-12-31
POWER_DAYS = 30


def ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def data() -> list[str]:
    lines = []
    start = date(2024, 1, 1)
    for b in range(BUILDINGS):
        bid = f"b{b:02d}"
        devices = [(f"{bid}-{c}", f"category={c},") for c in "ABCD"]
        devices += [(f"{bid}-t{t}", "") for t in range(2)]
        devices += [(f"{bid}-main", "")]
        for dev, cat in devices:
            tenant = f",tenant={dev[-2:]}" if "-t" in dev else ""
            for i in range(DAYS):
                ts = ms(datetime.combine(start + timedelta(days=i), datetime.min.time(), TZ))
                lines.append(
                    f"energy_interval,building={bid},{cat}device={dev},interval=1d,site=civic{tenant} "
                    f"energy_import={100 + (i * 7 + b) % 50}.5 {ts}"
                )
            first = ms(datetime(2025, 12, 1, tzinfo=TZ))
            for h in range(POWER_DAYS * 24):
                lines.append(
                    f"meter,building={bid},{cat}device={dev},site=civic{tenant} "
                    f"active_power={5000 + (h % 24) * 300}.0 {first + h * 3_600_000}"
                )
            for k in range(POWER_DAYS * 96):
                lines.append(
                    f"energy_interval,building={bid},{cat}device={dev},interval=15m,site=civic{tenant} "
                    f"energy_import={(5000 + (k // 4 % 24) * 300) / 4000:.4f} {first + k * 900_000}"
                )
    return lines


def timed(fn: object, repeat: int = 5) -> float:
    assert callable(fn)
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        svc = Influxd(state_dir=Path(tmp), port=free_port())
        svc.start()
        try:
            influx_query(svc.url, 'CREATE DATABASE "bench"', method="POST")
            db = InfluxClient(svc.url, "bench")
            lines = data()
            t = time.perf_counter()
            for i in range(0, len(lines), 10_000):
                db.write(lines[i : i + 10_000])
            print(f"wrote {len(lines):,} points in {time.perf_counter() - t:.1f} s")

            ids = [f"b{b:02d}" for b in range(BUILDINGS)]
            variables = {
                "site": Variable.many(["civic"]),
                "building": Variable.many(ids),
                "category": Variable.many(list("ABCD")),
                "tenant": Variable.many(["t0", "t1"]),
                "timezone": Variable.single("Asia/Shanghai"),
                "year": Variable.single("2024", text="2025"),
            }
            year = (ms(datetime(2025, 1, 1, tzinfo=TZ)), ms(datetime(2026, 1, 1, tzinfo=TZ)) - 1)
            month = (ms(datetime(2025, 12, 1, tzinfo=TZ)), ms(datetime(2025, 12, 31, tzinfo=TZ)) - 1)
            # the limit: a bare count() of the points a query reads (same measurement, field, range)
            refs = {
                ("energy_interval", "energy_import"): 'SELECT count("energy_import") FROM "energy_interval"',
                ("meter", "active_power"): 'SELECT count("active_power") FROM "meter"',
            }
            scans: dict[tuple[str, str, tuple[int, int]], float] = {}
            for key, q in refs.items():
                for rng in (year, month):
                    where = f" WHERE time >= {rng[0]}ms and time <= {rng[1]}ms"
                    scans[(*key, rng)] = timed(lambda q=q + where: db.query(q))
            print(
                "limit, count() of: a year of energy points "
                f"{scans[('energy_interval', 'energy_import', year)] * 1000:.1f} ms, a month of them "
                f"{scans[('energy_interval', 'energy_import', month)] * 1000:.1f} ms, a month of power "
                f"{scans[('meter', 'active_power', month)] * 1000:.1f} ms"
            )
            print(f"{'panel':62s} {'ms':>8s} {'× limit':>8s}")
            boards = build_all()
            for name, rng in (("portfolio.json", year), ("building-energy.json", month)):
                for p in boards[name]["panels"]:
                    for target in p.get("targets", []):
                        q = expand(target["query"], rng[0], rng[1], variables, min_interval=p.get("interval"))
                        s = timed(lambda q=q: db.query(q))
                        label = f"{name.split('.')[0]}: {p['title']} [{target['refId']}]"[:62]
                        m = re.search(r'FROM "(\w+)"', q)
                        field = "active_power" if m and m.group(1) == "meter" else "energy_import"
                        ref = scans.get((m.group(1) if m else "", field, rng))
                        ratio = f"{s / ref:8.2f}" if ref else f"{'-':>8s}"
                        print(f"{label:62s} {s * 1000:8.1f} {ratio}")
            pf = Portfolio(
                sites=[Site(id="civic", name="c", timezone="Asia/Shanghai",
                            buildings=[Building(id=i, name=i, floor_area_m2=1000) for i in ids])]
            )  # fmt: skip
            s = timed(lambda: compute(pf, Period("year", 2025), db.query), repeat=3)
            ref = scans[("energy_interval", "energy_import", year)]
            print(
                f"{'epcwatch stats --period year (40 buildings, 4 queries)':62s} "
                f"{s * 1000:8.1f} {s / ref:8.2f}"
            )
        finally:
            svc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
