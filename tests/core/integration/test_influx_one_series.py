"""One tag value, one series: every writer in the project stores a name with a backslash, a
comma, a space or an equals sign under exactly that name (real InfluxDB 1.x)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pandas as pd
import pytest

from epcwatch.collector.pipeline import Inbound, Pipeline
from epcwatch.collector.writers import V1Writer
from epcwatch.dashboards.metadata import building_info_lines
from epcwatch.demo.run import write_building_info
from epcwatch.influx import InfluxClient
from epcwatch.influx.influxql import ident, literal
from epcwatch.influx.schema import BUILDING, BUILDING_INFO, CONTRACT, METER, SAVINGS, SAVINGS_MODEL
from epcwatch.portfolio import Building, Portfolio, Site
from epcwatch.savings.influx import InfluxSource, model_line, savings_lines
from tests.collector.unit.test_pipeline import FakeBroker

pytestmark = pytest.mark.integration

NAMES = ["back\\slash", "com,ma", "sp ace", "eq=uals", "all \\,= of\\ them", "中\\文"]
TS = 1_700_000_000_000


def tag_values(db: InfluxClient, measurement: str, key: str) -> list[str]:
    return sorted(
        str(r["value"])
        for s in db.query(f"SHOW TAG VALUES FROM {ident(measurement)} WITH KEY = {ident(key)}")
        for r in s.rows
    )


def test_every_writer_stores_the_same_name(private_influxdb, tmp_path: Path, request) -> None:
    url = private_influxdb.url
    db = InfluxClient(url, "epcwatch")

    # the collector: telemetry through the pipeline (fast path) and its v1 writer
    writer, broker = V1Writer(url, "epcwatch"), FakeBroker()
    request.addfinalizer(writer.close)
    pipe = Pipeline(writer, broker, group="g", collector="c", health_interval_s=1e9)
    for seq, name in enumerate(NAMES):
        payload = {
            "site": "s1",
            "device": f"d{seq}",
            "kind": "meter",
            "tags": {"building": name},
            "readings": [{"seq": 1, "ts": TS, "values": {"active_power": 1.0}}],
        }
        pipe.add(Inbound(seq, 1, f"epc/v1/s1/d{seq}/telemetry", orjson.dumps(payload), 1))
    pipe.flush()
    assert broker.letters == [] and broker.acked == list(range(len(NAMES)))

    # the dashboards' metadata writer and the demo's
    portfolio = Portfolio(
        sites=[
            Site(id="s1", name="S", buildings=[Building(id=n, name=n, floor_area_m2=100.0) for n in NAMES])
        ]
    )
    db.write(building_info_lines(portfolio), precision="s")
    path = tmp_path / "portfolio.yaml"
    path.write_text(orjson.dumps(portfolio.model_dump()).decode())  # JSON is YAML
    assert write_building_info(url, path) == len(NAMES)

    # the savings writer: daily savings and the model point, the name as the contract
    src = InfluxSource(url, "epcwatch")
    day = dt.date(2025, 1, 1)
    for name in NAMES:
        frame = pd.DataFrame({"date": pd.to_datetime([day]), "savings": [1.5]})
        src.write_lines([*savings_lines(name, "s1", "UTC", frame, ("savings",))])
        src.write_lines([model_line(name, "s1", "UTC", day, {"model": "2P", "r2": 0.9, "n": 3, "ok": True})])

    expected = sorted(NAMES)
    assert tag_values(db, METER, BUILDING) == expected
    assert tag_values(db, BUILDING_INFO, BUILDING) == expected
    assert tag_values(db, SAVINGS, CONTRACT) == expected
    assert tag_values(db, SAVINGS_MODEL, CONTRACT) == expected
    # one series per name: a query for the name finds the readings and the building's area,
    # and the demo's rewrite of building_info overwrote the dashboards' points, not added to them
    for name in NAMES:
        where = f"WHERE {ident(BUILDING)} = {literal(name)}"
        [meter] = db.query(f"SELECT count(active_power) FROM {ident(METER)} {where}")
        [info] = db.query(f"SELECT count(floor_area_m2) FROM {ident(BUILDING_INFO)} {where}")
        assert meter.values[0][1] == 1 and info.values[0][1] == 1, name
