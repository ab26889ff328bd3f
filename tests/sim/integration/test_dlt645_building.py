"""The demo's DL/T 645 building (b1) the way ``epcwatch demo`` runs it, against real Mosquitto and
InfluxDB: a day of fast history, then a live stretch in which ``sim serve --dlt645-port`` puts
b1's five department sub-meters on a DL/T 645 gateway beside its Modbus meters, and ``edge run``
polls both buses through one outbox -> MQTT -> ``collector run`` -> InfluxDB -> ``collector rollup``.

Checked: the DL/T 645 meters' readings arrive with their profile, category and item code; each
meter is ONE series across history and live (same profile tag, no reset at the junction, so the
rolled-up day across the junction still adds up to the lighting meter); and the dashboards'
panel queries aggregate the stored data at both code levels (01A00 … and 01B10/01B20) and per
department, equal to the simulator's truth on the history day.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import yaml

from epcwatch.dashboards.boards import build_all
from epcwatch.dashboards.influx import InfluxClient
from epcwatch.dashboards.influxql import Variable, expand
from epcwatch.devservices.services import Influxd, Mosquitto, free_port
from epcwatch.profiles.dlt645_profile import is_dlt645_profile
from epcwatch.sim.history import history_batches, profile_points, profile_quantizers, publish
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import demo_complex
from epcwatch.sim.timegrid import local_midnight
from epcwatch.sim.truth import daily_truth
from tests.sim.conftest import Child, spawn
from tests.sim.helpers import count, edge_status, rollup, rows, start_collector, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = ComplexModel(demo_complex())
TZ = MODEL.tz
FIRST = dt.date(2025, 7, 13)  # history: a Sunday and a Monday (DAY, which ends at the junction)
DAY = dt.date(2025, 7, 14)
LIVE = DAY + dt.timedelta(days=1)  # the live stretch: the first hours of Tuesday
BOARDS = build_all()


def _iso(day: dt.date) -> str:
    return dt.datetime(day.year, day.month, day.day, tzinfo=TZ).isoformat()


def _panel(board: str, title: str) -> str:
    p = next(p for p in BOARDS[board]["panels"] if p.get("title") == title)
    return str(p["targets"][0]["query"])


def test_dlt645_building_history_and_live_are_one_series_on_the_dashboards(
    children: list[Child], tmp_path: Path, mosquitto: Mosquitto, influxdb: Influxd, database: str
) -> None:
    start_collector(children, tmp_path, mosquitto, influxdb, database)
    devices = [d for d in MODEL.devices if d.building == "b1"] + [MODEL.device("weather")]
    tenants = sorted(d.id for d in devices if d.tenant)
    assert len(tenants) == 5 and all(is_dlt645_profile(MODEL.device(t).profile) for t in tenants)

    # 1. fast history of two days, as the demo publishes it (profile points and counter rounding)
    _, readings = publish(
        history_batches(
            MODEL,
            FIRST,
            DAY,
            interval_s=900,
            point_names=profile_points(MODEL, devices),
            quantizers=profile_quantizers(MODEL, devices),
            devices=devices,
        ),
        "127.0.0.1",
        mosquitto.port,
        client_id=f"h-{database}"[:60],
    )
    n_meters = sum(1 for d in devices if d.kind == "meter" and d.role not in ("water", "gas"))
    per_device = readings // len(devices)
    wait_for(
        lambda: count(influxdb, database, "meter", "energy_import") == per_device * n_meters,
        120,
        "history stored",
    )

    # 2. the live stretch from the next midnight: Modbus and DL/T 645 on one edge agent
    speed, poll_s, hours = 600.0, 300.0, 3
    anchor = time.time() + 6
    clock = ["--sim-start", _iso(LIVE), "--speed", f"{speed:g}", "--anchor", f"{anchor:.3f}"]
    generated = tmp_path / "generated.yaml"
    args = ["sim", "serve", "--port", str(free_port()), "--dlt645-port", str(free_port()), *clock]
    args += ["--update-s", "60", "--site-config", str(generated)]
    for d in devices:
        args += ["--device", d.id]
    sim = spawn(args, tmp_path)
    children.append(sim)
    sim.wait_for("DL/T 645 meter(s) on a gateway")
    doc = yaml.safe_load(generated.read_text())
    assert sorted(d["id"] for d in doc["devices"] if d["bus"] == "sim645") == tenants
    for d in doc["devices"]:
        d["poll_interval_s"] = poll_s
    doc["mqtt"].update(port=mosquitto.port, client_id=f"edge-{free_port()}")
    doc["outbox"] = {"path": str(tmp_path / "outbox.sqlite")}
    doc["health"] = {"interval_s": 1}
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(doc))
    edge = spawn(["edge", "run", "--config", str(site), *clock], tmp_path)
    children.append(edge)
    t_live = local_midnight(LIVE, TZ)
    live_where = f"time >= {t_live}s AND device =~ /^b1-t-/"
    polls = hours * 3600 // int(poll_s)
    wait_for(
        lambda: count(influxdb, database, "meter", "energy_import", live_where) >= polls * len(tenants),
        180,
        f"{polls} live DL/T 645 readings of each department",
        [edge, sim],
    )
    edge.stop()
    sim.stop()
    wait_for(lambda: (edge_status(site).get("health") or {}).get("outbox_depth", 1) == 0, 30, "outbox empty")
    health = edge_status(site)["health"]
    dlt = [h for h in health["devices"] if h["device"] in tenants]
    assert len(dlt) == 5, dlt
    assert all(h.get("frame_errors", 0) == 0 and h.get("error_replies", 0) == 0 for h in dlt), dlt

    # the DL/T 645 readings: their profile, the department's tags, the item code completed from A
    stored = rows(
        influxdb,
        database,
        'SELECT count("energy_import") FROM "meter" WHERE "device" =~ /^b1-t-/ '
        'GROUP BY "device", "profile", "category", "item_code", "tenant"',
    )
    assert sorted(r["device"] for r in stored) == tenants  # ONE series per meter: history + live
    for r in stored:
        assert (r["profile"], r["category"], r["item_code"]) == ("chint-dtsu666-dlt645", "A", "01A00")
        assert r["tenant"] == r["device"].removeprefix("b1-t-")
        assert r["count"] >= per_device + polls
    live_power = rows(
        influxdb, database, f'SELECT "active_power", "voltage_l1" FROM "meter" WHERE {live_where}'
    )
    assert len(live_power) >= polls * 5 and all(r["active_power"] is not None for r in live_power)
    assert any(r["time"] % 900_000 for r in live_power)  # poll instants, not the history grid

    # 3. interval energy across the junction, then the dashboards' queries on it
    rollup(tmp_path, _iso(FIRST), _iso(LIVE + dt.timedelta(days=1)))
    client = InfluxClient(influxdb.url, database)
    t0 = local_midnight(FIRST, TZ) * 1000
    t1 = local_midnight(LIVE + dt.timedelta(days=1), TZ) * 1000 - 1
    variables = {
        "site": Variable.many([MODEL.spec.site]),
        "building": Variable.many(["b1"]),
        "category": Variable.many(["A", "B", "C", "D"]),
        "tenant": Variable.many([t.removeprefix("b1-t-") for t in tenants]),
        "timezone": Variable.single("Asia/Shanghai"),
    }

    def daily(title: str, tag: str) -> dict[tuple[str, int], float]:
        series = client.query(expand(_panel("building-energy.json", title), t0, t1, variables))
        out: dict[tuple[str, int], float] = {}
        for s in series:
            for r in s.rows:
                if r["energy_import"] is not None:
                    out[(s.tags[tag], int(r["time"]))] = float(r["energy_import"])
        return out

    by_tenant = daily("Daily electricity by tenant (分户, kWh)", "tenant")
    by_code = daily("Daily electricity by item code, level 2 (分项, kWh)", "item_code")
    by_cat = daily("Daily electricity by category (分项, kWh)", "category")
    truth = daily_truth(FIRST, FIRST)
    actual = dict(zip(truth.device, truth.actual_kwh, strict=True))
    first_t, day_t, live_t = (local_midnight(d, TZ) * 1000 for d in (FIRST, DAY, LIVE))
    for t in tenants:  # a whole history day per department = the model's integral (0.01 kWh steps)
        assert by_tenant[(t.removeprefix("b1-t-"), first_t)] == pytest.approx(actual[t], abs=0.02)
    assert by_cat[("A", first_t)] == pytest.approx(actual["b1-light"], rel=1e-6)
    assert {c for c, _ in by_code} == {"01A00", "01B10", "01B20", "01C00", "01D00"}
    # DAY ends at the junction (its last step runs from the last history reading to the first
    # live poll): a series split there would lose each department's last quarter hour (over
    # 1 kWh each); the meters' first polls lie within a served minute of each other
    slack = {first_t: 0.05, day_t: 1.0, live_t: 1.0 + by_cat[("A", live_t)] * poll_s / (hours * 3600)}
    for when, tol in slack.items():
        # level 2 adds up to level 1 (B = plant 01B10 + terminals 01B20), departments add up to A
        assert by_cat[("B", when)] == pytest.approx(by_code[("01B10", when)] + by_code[("01B20", when)])
        assert by_cat[("A", when)] == pytest.approx(by_code[("01A00", when)])
        departments = sum(v for (_, w), v in by_tenant.items() if w == when)
        assert departments == pytest.approx(by_cat[("A", when)], abs=tol), when
        assert departments > 0
