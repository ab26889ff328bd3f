"""The simulated complex through the real pipeline, checked against the simulator's own truth.

- Fast history -> Mosquitto -> ``collector run`` -> InfluxDB -> ``collector rollup``: the stored
  interval energy equals the model's integral per meter and day; category meters sum to the main
  meter and tenant meters to category A; the exported truth agrees.
- The foundation spine: one SDM630 served by ``sim serve`` -> ``edge run`` -> Mosquitto ->
  ``collector run`` -> InfluxDB: the agent polls K times, InfluxDB holds exactly K readings per
  field, each with the values the simulator served (served log).
- A live stretch of building b1 on the accelerated clock, its tenant sub-meters on a DL/T 645
  gateway and the rest on Modbus: every stored counter is the model's integral at the instant it
  was served, within the register's (or BCD value's) resolution.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import signal
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from epcwatch.devservices.services import Influxd, Mosquitto, free_port
from epcwatch.profiles.dlt645_profile import load_any_profile
from epcwatch.profiles.model import load_profile
from epcwatch.sim.history import history_batches, profile_points, publish
from epcwatch.sim.ledger import Counters
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import demo_complex
from epcwatch.sim.timegrid import local_midnight
from epcwatch.sim.truth import daily_truth
from tests.sim.conftest import Child, spawn
from tests.sim.helpers import count, edge_status, resolution, rollup, rows, start_collector, wait_for

pytestmark = pytest.mark.integration

MODEL = ComplexModel(demo_complex())
TZ = MODEL.tz


def _iso(day: dt.date) -> str:
    return dt.datetime(day.year, day.month, day.day, tzinfo=TZ).isoformat()


def test_fast_history_through_collector_and_rollup_equals_the_model(
    children: list[Child], tmp_path: Path, mosquitto: Mosquitto, influxdb: Influxd, database: str
):
    start_collector(children, tmp_path, mosquitto, influxdb, database)
    d0, d1 = dt.date(2024, 12, 31), dt.date(2025, 1, 1)  # the day before and the day of the retrofits
    meters = [d for d in MODEL.meters if d.building in ("b1", "b2")]
    names = profile_points(MODEL, meters)
    # one day more than checked: the last checked day closes with the next midnight's reading
    _, readings = publish(
        history_batches(
            MODEL, d0, d1 + dt.timedelta(days=1), interval_s=900, point_names=names, devices=meters
        ),
        "127.0.0.1",
        mosquitto.port,
        client_id=f"h-{database}"[:60],
    )
    wait_for(lambda: count(influxdb, database, "meter", "energy_import") == readings, 120, "history stored")
    rollup(tmp_path, _iso(d0), _iso(d1 + dt.timedelta(days=1)))

    daily = rows(
        influxdb,
        database,
        'SELECT "energy_import", "coverage" FROM "energy_interval" '
        'WHERE "interval" = \'1d\' GROUP BY "device"',
    )
    stored = {(r["device"], r["time"]): r for r in daily}
    truth = daily_truth(d0, d1)
    checked = 0
    for row in truth.itertuples():
        if row.device not in names:
            continue
        t = local_midnight(row.date, TZ) * 1000
        got = stored[(row.device, t)]
        assert got["coverage"] == pytest.approx(1.0)
        assert got["energy_import"] == pytest.approx(row.actual_kwh, rel=1e-9, abs=1e-6)
        checked += 1
    assert checked == 2 * len(meters)
    # the sub-metering identity on what InfluxDB holds
    for b in ("b1", "b2"):
        for day in (d0, d1):
            t = local_midnight(day, TZ) * 1000
            main = stored[(f"{b}-main", t)]["energy_import"]
            cats = sum(stored[(d.id, t)]["energy_import"] for d in MODEL.spec.category_meters(b))
            tenants = sum(stored[(d.id, t)]["energy_import"] for d in meters if d.building == b and d.tenant)
            assert cats == pytest.approx(main, rel=1e-9)
            assert tenants == pytest.approx(stored[(f"{b}-light", t)]["energy_import"], rel=1e-9)
    # 15-minute intervals add up to the day
    quarters = rows(
        influxdb,
        database,
        'SELECT sum("energy_import") FROM "energy_interval" WHERE "interval" = \'15m\' AND '
        f"time >= {local_midnight(d1, TZ)}s AND time < {local_midnight(d1 + dt.timedelta(days=1), TZ)}s "
        'GROUP BY "device"',
    )
    for q in quarters:
        assert q["sum"] == pytest.approx(
            stored[(q["device"], local_midnight(d1, TZ) * 1000)]["energy_import"], rel=1e-9
        )


def test_truth_export_is_consistent_with_actual_and_counterfactual(children: list[Child], tmp_path: Path):
    out = tmp_path / "truth.csv"
    child = spawn(["sim", "truth", "--from", "2024-12-30", "--to", "2025-01-03", "--out", str(out)], tmp_path)
    children.append(child)
    assert child.proc.wait(120) == 0, "".join(child.output)
    df = pd.read_csv(out, parse_dates=["date"])
    assert len(df) == 5 * len(MODEL.meters)
    np.testing.assert_allclose(df.savings_kwh, df.counterfactual_kwh - df.actual_kwh, rtol=1e-9, atol=1e-6)
    before = df[df.date < "2025-01-01"]
    assert (before.savings_kwh.abs() < 1e-6).all()
    after = df[df.date >= "2025-01-01"]
    by_dev = after.groupby("device").savings_kwh.sum()
    retrofitted = {r.building for r in MODEL.spec.retrofits}
    for dev, saved in by_dev.items():
        building = dev.split("-")[0]
        if dev.endswith("-main") and building in retrofitted:
            assert saved > 0
        if building not in retrofitted:
            assert abs(saved) < 1e-6
    # the CSV is what the API says, and its mains are the sums of their categories
    api = daily_truth(dt.date(2024, 12, 30), dt.date(2025, 1, 3))
    np.testing.assert_allclose(df.actual_kwh, api.actual_kwh, rtol=0, atol=1e-6)  # CSV: 6 decimals
    for col in ("actual_kwh", "counterfactual_kwh"):
        wide = df.pivot(index="date", columns="device", values=col)
        for b in ("b1", "b2", "b3"):
            cats = sum(wide[d.id] for d in MODEL.spec.category_meters(b))
            np.testing.assert_allclose(wide[f"{b}-main"], cats, rtol=1e-6)


def _edge_site(tmp: Path, generated: Path, mosquitto: Mosquitto, poll_s: float) -> Path:
    doc = yaml.safe_load(generated.read_text())
    for d in doc["devices"]:
        d["poll_interval_s"] = poll_s
    doc["mqtt"]["client_id"] = f"edge-{os.getpid()}-{free_port()}"
    doc["mqtt"]["port"] = mosquitto.port
    doc["outbox"] = {"path": str(tmp / "outbox.sqlite")}
    doc["health"] = {"interval_s": 1}
    site = tmp / "site.yaml"
    site.write_text(yaml.safe_dump(doc))
    return site


@pytest.mark.slow
def test_spine_sdm630_edge_collector_influxdb_k_polls_k_readings(
    children: list[Child], tmp_path: Path, mosquitto: Mosquitto, influxdb: Influxd, database: str
):
    start_collector(children, tmp_path, mosquitto, influxdb, database)
    # a shared clock at 30x: a poll every simulated minute is one every 2 wall seconds, and every
    # poll group of the profile (10 s, 60 s) is due at every poll, so each poll yields one reading
    # with every field. Simulated minutes start on even wall seconds (anchor even, start whole).
    speed, poll_s, update_s = 30.0, 60.0, 10.0
    anchor = float(int(time.time()) // 2 * 2 + 6)
    clock = ["--sim-start", _iso(dt.date(2025, 7, 15)), "--speed", f"{speed:g}", "--anchor", f"{anchor:.0f}"]
    port = free_port()
    served_log = tmp_path / "served.jsonl"
    sim = spawn(
        [
            "sim",
            "serve",
            "--device",
            "sdm630",
            "--port",
            str(port),
            *clock,
            "--update-s",
            f"{update_s:g}",
            "--served-log",
            str(served_log),
            "--site-config",
            str(tmp_path / "generated.yaml"),
        ],
        tmp_path,
    )
    children.append(sim)
    sim.wait_for("serving 1 device")
    site = _edge_site(tmp_path, tmp_path / "generated.yaml", mosquitto, poll_s)
    edge = spawn(["edge", "run", "--config", str(site), *clock], tmp_path)
    children.append(edge)
    wait_for(
        lambda: count(influxdb, database, "meter", "energy_import") >= 6, 90, "six readings", [edge, sim]
    )
    # stop the device between two polls (they sit on even wall seconds): no poll is cut in half
    while not 0.9 < (time.time() - anchor) % (poll_s / speed) < 1.1:
        time.sleep(0.01)
    os.kill(sim.proc.pid, signal.SIGTERM)
    sim.proc.wait(20)

    def quiet() -> bool:
        h = edge_status(site).get("health")
        if not h:
            return False
        dev = h["devices"][0]
        return dev["consecutive_failures"] >= 2 and h["outbox_depth"] == 0

    wait_for(quiet, 60, "the agent to find the device gone with its outbox empty", [edge])
    k = edge_status(site)["health"]["devices"][0]["polls_ok"]
    assert k >= 6
    wait_for(lambda: count(influxdb, database, "meter", "energy_import") == k, 60, f"{k} readings stored")
    time.sleep(1.0)

    profile = load_profile("eastron-sdm630")
    for p in profile.points:  # every field, of every poll group, exactly K times
        assert count(influxdb, database, "meter", p.name) == k, p.name

    served = [json.loads(line) for line in served_log.read_text().splitlines()]
    by_instant = {s["t"]: s["values"] for s in served}
    stored = rows(influxdb, database, 'SELECT * FROM "meter"')
    assert len(stored) == k
    used = set()
    for r in stored:
        base = math.floor(r["time"] / 1000 / update_s) * update_s
        instants = [t for t in (base, base - update_s) if t in by_instant]
        assert instants, f"nothing served around {r['time']}"
        for name in by_instant[instants[0]]:
            ok = any(np.float32(by_instant[t][name]) == np.float32(r[name]) for t in instants)
            assert ok, (name, r[name], [by_instant[t][name] for t in instants])
        used.add(instants[0])
        assert r["device"] == "sdm630" and r["profile"] == "eastron-sdm630" and r["tenant"] == "finance"
    # K polls, K distinct served instants behind them (a poll across a refresh may add one)
    assert len(used) == k and k <= len(served) <= k + 1


@pytest.mark.slow
def test_live_stretch_of_b1_through_modbus_dlt645_edge_and_collector(
    children: list[Child], tmp_path: Path, mosquitto: Mosquitto, influxdb: Influxd, database: str
):
    start_collector(children, tmp_path, mosquitto, influxdb, database)
    devices = [d for d in MODEL.devices if d.building == "b1"] + [MODEL.device("weather")]
    speed, update_s, poll_s = 600.0, 60.0, 300.0
    sim_start = _iso(dt.date(2025, 7, 14))
    anchor = time.time() + 6
    clock = ["--sim-start", sim_start, "--speed", f"{speed:g}", "--anchor", f"{anchor:.3f}"]
    port, port645 = free_port(), free_port()
    served_log = tmp_path / "served.jsonl"
    args = [
        "sim",
        "serve",
        "--port",
        str(port),
        "--dlt645-port",
        str(port645),
        *clock,
        "--update-s",
        f"{update_s:g}",
        "--served-log",
        str(served_log),
        "--site-config",
        str(tmp_path / "generated.yaml"),
    ]
    for d in devices:
        args += ["--device", d.id]
    sim = spawn(args, tmp_path)
    children.append(sim)
    sim.wait_for("DL/T 645 meter(s) on a gateway")
    site = _edge_site(tmp_path, tmp_path / "generated.yaml", mosquitto, poll_s)
    dlt645_meters = {d["id"] for d in yaml.safe_load(site.read_text())["devices"] if d["bus"] == "sim645"}
    assert dlt645_meters == {d.id for d in devices if d.role == "tenant"} and len(dlt645_meters) == 5
    edge = spawn(["edge", "run", "--config", str(site), *clock], tmp_path)
    children.append(edge)
    polls = 12
    n_meters = sum(1 for d in devices if d.kind == "meter")
    # every meter's readings, not only the main meter's: under load a poll cycle's devices are
    # stored a little apart, and the checks below count them all
    wait_for(
        lambda: count(influxdb, database, "meter", "energy_import") >= polls * n_meters,
        180,
        f"{polls} readings of each of b1's {n_meters} meters",
        [edge, sim],
    )
    edge.stop()
    sim.stop()
    wait_for(lambda: (edge_status(site).get("health") or {}).get("outbox_depth", 1) == 0, 30, "outbox empty")

    counters = Counters(MODEL)
    meters = {d.id: d for d in devices if d.kind == "meter"}
    checked = 0
    per_instant: dict[str, dict[float, float]] = defaultdict(dict)
    for r in rows(influxdb, database, 'SELECT "energy_import" FROM "meter" GROUP BY "device"'):
        dev = meters[r["device"]]
        profile = load_any_profile(dev.profile)
        ts = r["time"] / 1000
        base = math.floor(ts / update_s) * update_s
        matches = [
            t
            for t in (base, base - update_s)
            if abs(counters.at(t)[(dev.id, "energy_import")] - r["energy_import"])
            <= resolution(profile, "energy_import", r["energy_import"])
        ]
        assert matches, (dev.id, ts, r["energy_import"], counters.at(base)[(dev.id, "energy_import")])
        per_instant[dev.id][matches[0]] = r["energy_import"]
        checked += 1
    assert checked >= polls * len(meters) * 0.9
    # between two instants at which all of b1's category meters and its main meter were read,
    # the main meter's energy is the sum of the four categories' (within their resolutions)
    group = ["b1-main", *(d.id for d in MODEL.spec.category_meters("b1"))]
    common = sorted(set.intersection(*(set(per_instant[d]) for d in group)))
    assert len(common) >= 3
    t1, t2 = common[0], common[-1]
    main = per_instant["b1-main"][t2] - per_instant["b1-main"][t1]
    subs = sum(per_instant[d][t2] - per_instant[d][t1] for d in group[1:])
    tol = sum(
        2 * resolution(load_profile(meters[d].profile), "energy_import", per_instant[d][t2]) for d in group
    )
    assert abs(main - subs) <= tol
    assert main > 0
    # the DL/T 645 tenant meters: every poll's every point decoded (quality good, the powers within
    # the 2007 format), tagged with their DL/T 645 profile, and they add up to the lighting meter
    dlt_rows = rows(
        influxdb,
        database,
        'SELECT * FROM "meter" WHERE "profile" = \'chint-dtsu666-dlt645\' GROUP BY "device"',
    )
    assert {r["device"] for r in dlt_rows} == dlt645_meters
    assert all(r["active_power"] is not None and r["voltage_l1"] is not None for r in dlt_rows)
    assert all(r["tenant"] and r["category"] == "A" for r in dlt_rows)
    tenants = sorted(dlt645_meters)
    common = sorted(set.intersection(*(set(per_instant[d]) for d in [*tenants, "b1-light"])))
    assert len(common) >= 3
    t1, t2 = common[0], common[-1]
    light = per_instant["b1-light"][t2] - per_instant["b1-light"][t1]
    parts = sum(per_instant[d][t2] - per_instant[d][t1] for d in tenants)
    light_res = resolution(load_profile(meters["b1-light"].profile), "energy_import", light)
    tol = 2 * light_res + len(tenants) * 0.01  # the tenants' BCD counters step by 0.01 kWh
    assert parts == pytest.approx(light, abs=tol) and light > 0
    # the non-meter devices arrived too, through their own profiles
    assert count(influxdb, database, "hvac", "supply_water_temp") > 0
    assert count(influxdb, database, "lighting", "zone1_level") > 0
    assert count(influxdb, database, "sensor", "outdoor_temp") > 0
