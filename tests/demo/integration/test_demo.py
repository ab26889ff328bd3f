"""``epcwatch demo`` end to end on a short period, with its own services on free ports."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from epcwatch.devservices.services import free_port, influx_query
from epcwatch.sim.truth import daily_truth
from tests.demo.helpers import run_demo, services_down

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_runs_history_live_stretch_and_rollup(tmp_path: Path):
    mqtt_port, influx_port = free_port(), free_port()
    state = tmp_path / "state"
    try:
        out = run_demo(state, dt.date(2025, 3, 3), dt.date(2025, 3, 5), mqtt_port, influx_port)
        url = f"http://127.0.0.1:{influx_port}"

        def rows(q: str) -> list[list[object]]:
            doc = influx_query(url, q, db="epcwatch")
            return [v for r in doc["results"] for s in r.get("series", []) for v in s["values"]]  # type: ignore[index,union-attr]

        # the live day came through the edge: readings at poll instants, not on the history grid
        live = rows(
            "SELECT energy_import FROM meter WHERE device = 'b1-main' AND time >= '2025-03-04T16:00:00Z' "
            "AND time < '2025-03-05T16:00:00Z'"
        )
        assert len(live) >= 80
        assert any(int(t) % 900_000 for t, _ in live)  # type: ignore[call-overload]
        # the history days' rolled-up energy is the simulator's truth
        truth = daily_truth(dt.date(2025, 3, 3), dt.date(2025, 3, 4))
        stored = dict(
            rows(
                "SELECT energy_import FROM energy_interval WHERE interval = '1d' AND device = 'b1-main' "
                "AND time >= '2025-03-02T16:00:00Z' AND time < '2025-03-04T16:00:00Z'"
            )
        )
        day1 = int(dt.datetime(2025, 3, 2, 16, tzinfo=dt.UTC).timestamp() * 1000)
        want = float(
            truth[(truth.device == "b1-main") & (truth.date == dt.date(2025, 3, 3))].actual_kwh.iloc[0]
        )
        # within the register's resolution: the PM5100 counts whole Wh, at each end of the day
        assert stored[day1] == pytest.approx(want, abs=2 * 0.0005 + 1e-9)
        # b1's water and canteen gas meters and national item codes came through the same path
        from epcwatch.sim.ledger import daily_totals
        from epcwatch.sim.model import ComplexModel
        from epcwatch.sim.spec import demo_complex

        volumes = daily_totals(
            ComplexModel(demo_complex()), dt.date(2025, 3, 3), dt.date(2025, 3, 3), counterfactual=False
        ).volume_m3
        for device, field, resolution in (
            ("b1-water", "water_volume", 0.001),
            ("b1-gas", "gas_volume", 0.01),
        ):
            got = rows(
                f"SELECT {field} FROM energy_interval WHERE interval = '1d' AND device = '{device}' "
                f"AND item_code != '' AND time = {day1}ms"
            )
            assert got and got[0][1] == pytest.approx(float(volumes[device][0]), abs=2 * resolution)
        # b1's department sub-meters speak DL/T 645: in the live day they came through the edge's
        # DL/T 645 bus, and history and live readings are one series per meter (one profile tag)
        doc = influx_query(
            url,
            "SELECT count(energy_import) FROM meter WHERE device =~ /^b1-t-/ AND "
            "time >= '2025-03-04T16:00:00Z' GROUP BY device, profile, item_code",
            db="epcwatch",
        )
        dlt = doc["results"][0]["series"]  # type: ignore[index]
        assert len(dlt) == 5, dlt
        for s in dlt:
            assert s["tags"]["profile"] == "chint-dtsu666-dlt645" and s["tags"]["item_code"] == "01A00"
            assert s["values"][0][1] >= 24, s  # polled every 15 simulated minutes (fewer on a busy machine)
        profiles = rows('SHOW TAG VALUES FROM "meter" WITH KEY = "profile" WHERE "device" = \'b1-t-finance\'')
        assert [str(v[1]) for v in profiles] == ["chint-dtsu666-dlt645"]
        # SHOW TAG VALUES rows are [key, value]
        codes = {str(v[1]) for v in rows('SHOW TAG VALUES FROM "energy_interval" WITH KEY = "item_code"')}
        assert {"01A00", "01B00", "01B10", "01B20", "01C00", "01D00", "02000", "03000"} <= codes
        assert (state / "demo" / "truth.csv").exists()
        # dashboards provisioning written when the installation has the dashboards component
        if "dashboards" in out:
            assert list((state / "demo" / "dashboards").glob("*.json"))
        assert "M&V report   : skipped" in out  # three days do not cover the contract's years
        # the children are gone: nothing listens on the simulator's port any more, the edge stopped
        assert "agent stopped" in (state / "demo" / "logs" / "edge.log").read_text()
    finally:
        services_down(state)
