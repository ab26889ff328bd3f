"""The generated dashboards: valid against Grafana's dashboard model, internally consistent,
reproducible, and the committed JSON is what the generator builds today."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as dm

from epcwatch.dashboards.boards import build_all
from epcwatch.dashboards.influxql import referenced_variables
from epcwatch.dashboards.model import GRAFANA_UNITS, BuildOptions, render, title_of, unit_of
from tests.support import EPCWATCH

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "dashboards" / "json"
EPC = EPCWATCH
BOARDS = build_all()


def lost_in_round_trip(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Keys or values of ``ours`` that Grafana's model dropped or changed (defaults it adds are fine)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        out = []
        for k, v in ours.items():
            if k not in theirs:
                if v is not None:
                    out.append(f"{path}/{k} dropped")
            else:
                out += lost_in_round_trip(v, theirs[k], f"{path}/{k}")
        return out
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        return [
            x
            for i, (a, b) in enumerate(zip(ours, theirs, strict=True))
            for x in lost_in_round_trip(a, b, f"{path}[{i}]")
        ]
    return [] if ours == theirs else [f"{path}: {ours!r} became {theirs!r}"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_round_trips_through_grafanas_dashboard_model(name: str) -> None:
    register_default_plugins()
    doc = BOARDS[name]
    model = dm.Dashboard.from_json(doc)
    back = json.loads(json.dumps(model, cls=JSONEncoder))
    assert lost_in_round_trip(doc, back) == []


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_structure(name: str) -> None:
    doc = BOARDS[name]
    for key in ("uid", "title", "panels", "templating", "schemaVersion", "time", "tags"):
        assert key in doc, key
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", doc["uid"])
    panels = doc["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        g = p["gridPos"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "influxdb"
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == {"type": "influxdb", "uid": "${datasource}"}
            assert referenced_variables(v["query"]) <= set(variables), v["name"]
    for p in panels:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "influxdb", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for t in p["targets"]:
            assert t["datasource"] == p["datasource"] and t["rawQuery"] is True
            assert t["query"].startswith("SELECT ")
            assert referenced_variables(t["query"]) <= set(variables), (p["title"], t["query"])
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit", "none")
        assert unit in set(GRAFANA_UNITS.values()) | {"none", "percent"} or unit.startswith("suffix:"), unit


def test_every_dashboard_exists_with_the_variables_the_issue_asks_for() -> None:
    assert set(BOARDS) == {
        "portfolio.json",
        "building-energy.json",
        "epc-savings.json",
        "device-health.json",
        "hvac-lighting.json",
    }
    names = {v["name"] for v in BOARDS["building-energy.json"]["templating"]["list"]}
    assert {"site", "building", "category", "tenant"} <= names
    uids = [d["uid"] for d in BOARDS.values()]
    assert len(set(uids)) == len(uids)


def test_titles_and_units_come_from_the_vocabulary() -> None:
    hvac = BOARDS["hvac-lighting.json"]
    titles = {p["title"]: p for p in hvac["panels"]}
    p = titles[f"{title_of('supply_air_temp')} vs setpoint"]
    assert p["fieldConfig"]["defaults"]["unit"] == unit_of("supply_air_temp") == "celsius"
    assert title_of("run_hours") in titles and title_of("lighting_level") in titles


def test_build_is_reproducible_in_process() -> None:
    a = {n: render(d) for n, d in build_all(BuildOptions()).items()}
    b = {n: render(d) for n, d in build_all(BuildOptions()).items()}
    assert a == b


def test_cli_build_twice_gives_identical_bytes_and_matches_the_committed_json(tmp_path: Path) -> None:
    for out in (tmp_path / "one", tmp_path / "two"):
        res = subprocess.run(
            [EPC, "dashboards", "build", "--out", str(out)], capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, res.stderr
    one = {p.name: p.read_bytes() for p in (tmp_path / "one").glob("*.json")}
    two = {p.name: p.read_bytes() for p in (tmp_path / "two").glob("*.json")}
    assert one == two and len(one) == 5
    committed = {p.name: p.read_bytes() for p in COMMITTED.glob("*.json")}
    assert committed == one, "dashboards/json is stale: run `epcwatch dashboards build`"


def test_build_options_change_the_output() -> None:
    other = build_all(BuildOptions(timezone="Europe/Berlin", year=2026))["portfolio.json"]
    variables = {v["name"]: v for v in other["templating"]["list"]}
    assert variables["timezone"]["query"] == "Europe/Berlin"
    assert variables["year"]["current"] == {"selected": True, "text": "2026", "value": "2025"}


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_transformations_refer_to_fields_the_queries_return(name: str) -> None:
    """A join merges rows on tag columns, so every target must group by the same tags; a
    calculated field's operands must be columns some target names."""
    for p in BOARDS[name]["panels"]:
        ids = [t["id"] for t in p.get("transformations", [])]
        if not ids:
            continue
        queries = [t["query"] for t in p["targets"]]
        aliases = {a for q in queries for a in re.findall(r'AS "(\w+)"', q)}
        if "merge" in ids:
            assert ids.index("organize") < ids.index("merge"), p["title"]
            groups = {q.rsplit(" GROUP BY ", 1)[1] for q in queries}
            assert len(groups) == 1, (p["title"], groups)
            assert all(t["resultFormat"] == "table" for t in p["targets"]), p["title"]
        for t in p["transformations"]:
            if t["id"] == "calculateField" and t["options"]["mode"] == "binary":
                binary = t["options"]["binary"]
                assert {binary["left"], binary["right"]} <= aliases, (p["title"], binary)
            elif t["id"] == "calculateField":
                # a row reduction sums every numeric column the merged targets return
                assert t["options"]["mode"] == "reduceRow" and t["options"]["reduce"]["reducer"] == "sum"
