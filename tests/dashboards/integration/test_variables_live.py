"""Grafana's multi-value formatting, run by InfluxDB: tag values full of regex metacharacters are
selected exactly, one by one and in any combination."""

from __future__ import annotations

import itertools

import pytest

from epcwatch.dashboards.influx import InfluxClient
from epcwatch.dashboards.influxql import Variable, expand
from epcwatch.devservices.services import Influxd

pytestmark = pytest.mark.integration

VALUES = ["b1", "b1.2", "tower (east)", "a/b", "x|y", "c++", "$home", "[lab]", "^top", "q?"]


def _tag(v: str) -> str:
    return v.replace(" ", "\\ ").replace(",", "\\,").replace("=", "\\=")


def test_selection_is_exact(influxdb: Influxd, database: str) -> None:
    db = InfluxClient(influxdb.url, database)
    db.write([f"m,building={_tag(v)} x={i} {1_000 + i}" for i, v in enumerate(VALUES)])
    query = 'SELECT sum("x") FROM "m" WHERE "building" =~ /^$building$/ AND $timeFilter GROUP BY "building"'
    for n in (1, 2, 3):
        for chosen in itertools.islice(itertools.combinations(VALUES, n), 40):
            q = expand(query, 0, 10_000, {"building": Variable.many(list(chosen))})
            got = sorted(s.tags["building"] for s in db.query(q))
            assert got == sorted(chosen), q
    everything = expand(query, 0, 10_000, {"building": Variable.many(VALUES)})
    assert len(db.query(everything)) == len(VALUES)
