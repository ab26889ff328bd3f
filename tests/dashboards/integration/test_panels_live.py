"""Every panel query of every dashboard, expanded as Grafana expands it, against real InfluxDB.

Template variables are resolved by running their own queries (chained, "All" selected), panel
time overrides (``timeFrom``, ``timeShift``) are applied the way Grafana applies them, and each
target must return series with the columns its SELECT names, grouped by its GROUP BY tags.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta

from epcwatch.dashboards.boards import build_all
from epcwatch.dashboards.influx import InfluxClient, Series
from epcwatch.dashboards.influxql import Variable, expand

sys.path.insert(0, str(Path(__file__).parent))
import dash_simdata as simdata

pytestmark = pytest.mark.integration

#: the dashboard range: the two live days, local time; "now" in the middle of the second
RANGE_FROM = datetime(2025, 2, 1, tzinfo=simdata.TZ)
RANGE_TO = datetime(2025, 2, 3, tzinfo=simdata.TZ) - relativedelta(microseconds=1000)
NOW = datetime(2025, 2, 2, 12, tzinfo=simdata.TZ)

DASHBOARDS = build_all()


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def panel_range(p: dict[str, Any]) -> tuple[int, int]:
    """Grafana's panel time: ``timeFrom`` now/d | now/M (so far), then ``timeShift`` Ny."""
    t0, t1 = RANGE_FROM, RANGE_TO
    tf = p.get("timeFrom")
    if tf == "now/d":
        t0, t1 = NOW.replace(hour=0), NOW
    elif tf == "now/M":
        t0, t1 = NOW.replace(day=1, hour=0), NOW
    elif tf is not None:
        raise AssertionError(f"timeFrom {tf!r} not modelled by this test")
    shift = p.get("timeShift")
    if shift:
        m = re.fullmatch(r"(\d+)y", shift)
        assert m, shift
        t0, t1 = t0 - relativedelta(years=int(m.group(1))), t1 - relativedelta(years=int(m.group(1)))
    return ms(t0), ms(t1)


def resolve_variables(doc: dict[str, Any], db: InfluxClient) -> dict[str, Variable]:
    """Run each query variable (chained on the ones before it) and select "All"."""
    out: dict[str, Variable] = {}
    for v in doc["templating"]["list"]:
        if v["type"] == "query":
            q = expand(v["query"], ms(RANGE_FROM), ms(RANGE_TO), out)
            values = sorted({str(r["value"]) for s in db.query(q) for r in s.rows})
            assert values, f"variable {v['name']} has no values: {q}"
            out[v["name"]] = Variable(tuple(values), multi=v["multi"], include_all=v["includeAll"])
        elif v["type"] == "constant":
            out[v["name"]] = Variable.single(v["query"])
        elif v["type"] == "custom":
            cur = v["current"]
            out[v["name"]] = Variable.single(cur["value"], text=cur["text"])
    return out


def outer(query: str) -> tuple[str, str]:
    """The outermost SELECT list and GROUP BY clause."""
    select = query[len("SELECT ") : query.index(" FROM ")]
    tail = query
    if "FROM (SELECT " in query:  # skip the subquery: find its closing parenthesis
        depth, start = 0, query.index("FROM (SELECT ") + len("FROM ")
        for i in range(start, len(query)):
            depth += {"(": 1, ")": -1}.get(query[i], 0)
            if depth == 0:
                tail = query[i + 1 :]
                break
    group = tail.rsplit(" GROUP BY ", 1)[1] if " GROUP BY " in tail else ""
    return select, group


def expected_columns(select: str) -> list[str]:
    aliases = re.findall(r'AS "(\w+)"', select)
    if aliases:
        return aliases
    m = re.search(r"(\w+)\(/\^(\w+)\[0-9\]\+(\w+)\$/\)", select)
    assert m, select
    return [f"{m.group(1)}_{m.group(2)}"]  # prefix of the regex-selected columns


def expected_tags(group: str) -> set[str]:
    return {t for t in re.findall(r'"(\w+)"', re.sub(r"time\([^)]*\)|tz\('[^']*'\)", "", group))}


CASES = [
    pytest.param(name, p, t, id=f"{name}:{p['title']}:{t['refId']}")
    for name, doc in DASHBOARDS.items()
    for p in doc["panels"]
    if p["type"] != "row"
    for t in p["targets"]
]


def test_every_panel_has_a_case() -> None:
    panels = [p for d in DASHBOARDS.values() for p in d["panels"] if p["type"] != "row"]
    assert len(panels) >= 30
    assert all(p["targets"] for p in panels)


@pytest.mark.parametrize(("name", "panel", "target"), CASES)
def test_panel_query_returns_expected_series(
    sim_db: InfluxClient, name: str, panel: dict[str, Any], target: dict[str, Any]
) -> None:
    doc = DASHBOARDS[name]
    variables = resolve_variables(doc, sim_db)
    t0, t1 = panel_range(panel)
    query = expand(target["query"], t0, t1, variables, min_interval=panel.get("interval"))
    assert "$" not in query.replace("$/", "/"), query  # every macro expanded
    series: list[Series] = sim_db.query(query)
    assert series, f"no series for {panel['title']}: {query}"
    select, group = outer(target["query"])
    columns = expected_columns(select)
    tags = expected_tags(group)
    for s in series:
        cols = set(s.rows[0]) if s.rows else set()
        for c in columns:
            assert any(k == c or k.startswith(c) for k in cols), f"{c} missing in {sorted(cols)}: {query}"
        assert set(s.tags) == tags, f"grouping {sorted(s.tags)} != {sorted(tags)}: {query}"
    values = [r[c] for s in series for r in s.rows for c in r if c != "time" and r[c] is not None]
    assert values, f"only nulls for {panel['title']}: {query}"
