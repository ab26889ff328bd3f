"""The M&V report's totals per energy carrier in tce and CO2 (hand computations from the cited
factors: GB/T 2589-2020 0.1229 kgce/kWh, 1.2143 kgce/m3; the contract's CO2 factor)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from epcwatch.clock import ManualClock
from epcwatch.savings.carriers import carrier_totals, contract_table
from epcwatch.savings.contract import load_contract
from epcwatch.savings.runner import run_contract
from tests.savings.unit.test_runner import FakeSource


def test_totals_per_carrier() -> None:
    table = contract_table(0.1229, None, 0.5703)
    t = carrier_totals({"electricity": (1e6, "kWh"), "natural_gas": (1e4, "m3"), "water": (500, "m3")}, table)
    rows = {r["carrier"]: r for r in t["rows"]}
    assert rows["electricity"]["tce"] == pytest.approx(122.9)
    assert rows["natural_gas"]["tce"] == pytest.approx(12.143)
    assert rows["water"]["tce"] is None and rows["water"]["zh"] == "水"
    assert t["tce"] == pytest.approx(122.9 + 12.143)
    assert rows["electricity"]["co2_t"] == pytest.approx(570.3)
    eq = carrier_totals({"electricity": (1e6, "kWh")}, contract_table(0.1229, 0.3, 0.5703), "equal_value")
    assert eq["tce"] == pytest.approx(300.0)


def test_report_shows_the_reporting_period_per_carrier(world, contract_file, tmp_path) -> None:
    path = contract_file("contract.yaml", {})
    res = run_contract(
        load_contract(path),
        FakeSource(world["daily"].copy()),
        tmp_path / "out",
        contract_path=path,
        clock=ManualClock(datetime(2026, 1, 5, 8, 0, tzinfo=UTC).timestamp()),
    )
    actual = float(np.nansum(res.daily["actual"]))
    row = res.doc["carriers"]["rows"][0]
    assert (row["carrier"], row["unit"], row["quantity"]) == ("electricity", "kWh", pytest.approx(actual))
    kgce = res.contract.factors.tce_kgce_per_kwh
    assert res.doc["carriers"]["tce"] == pytest.approx(actual * kgce / 1000)
    html = (tmp_path / "out" / "report.html").read_text()
    assert "电力 electricity" in html and "GB/T 2589-2020" in html


def test_contract_selects_meters_by_item_code() -> None:
    from epcwatch.savings.contract import MeterSelector
    from epcwatch.savings.influx import _selector_clause

    sel = MeterSelector(building="b1", item_code="01B10")
    assert sel.tags() == {"building": "b1", "item_code": "01B10"}
    assert _selector_clause([sel]) == "((\"building\"='b1' AND \"item_code\"='01B10'))"
    assert MeterSelector(item_code="01A00").tags() == {"item_code": "01A00"}
    with pytest.raises(ValueError, match="item_code"):
        MeterSelector(item_code="lighting")
