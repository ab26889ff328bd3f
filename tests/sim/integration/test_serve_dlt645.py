"""``epcwatch sim serve-dlt645``: the simulated complex's meters as DL/T 645 meters behind a
simulated transparent gateway, read with ``epcwatch edge read`` as a commissioning engineer would."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from epcwatch.cli import app
from epcwatch.devservices.services import free_port
from epcwatch.profiles.dlt645_profile import load_dlt645_profile
from epcwatch.sim.ledger import Counters
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import demo_complex
from epcwatch.sim.values import values_at
from tests.sim.conftest import spawn

pytestmark = pytest.mark.integration

INSTANT = dt.datetime(2025, 7, 15, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
DEVICES = ("b1-t-finance", "b1-t-planning")
PROFILE = "chint-dtsu666-dlt645"


def test_served_meters_read_back_through_edge_read(tmp_path: Path) -> None:
    port = free_port()
    start = dt.datetime.fromtimestamp(INSTANT, dt.UTC).isoformat()
    args = ["sim", "serve-dlt645", "--port", str(port), "--sim-start", start, "--speed", "1e-6"]
    for d in DEVICES:
        args += ["--device", d]
    child = spawn(args, tmp_path)
    try:
        child.wait_for("serving 2 meter(s)")
        model = ComplexModel(demo_complex())
        truth = values_at(model, Counters(model), INSTANT, [model.device(d) for d in DEVICES])
        profile = load_dlt645_profile(PROFILE)
        run = CliRunner()
        for i, device in enumerate(DEVICES):
            address = f"{i + 1:012d}"
            res = run.invoke(app, ["edge", "read", "--host", "127.0.0.1", "--port", str(port),
                                   "--address", address, "--profile", PROFILE, "--json", "--timeout", "5"])
            assert res.exit_code == 0, res.output
            got = json.loads(res.stdout)
            assert got, res.output
            for name, value in got.items():
                p = profile.point(name)
                step = p.scale / 10**p.bcd.decimals  # one unit of the last digit, in vocabulary units
                assert abs(value - truth[device][name]) <= step / 2 + 1e-9, (device, name, value)
            assert {"active_power", "energy_import", "voltage_l1"} <= set(got)
    finally:
        child.stop()


def test_sim_serve_puts_one_buildings_tenant_meters_on_dlt645(tmp_path: Path) -> None:
    """``sim serve --dlt645-port``: the meters whose model profile is DL/T 645 (b1's tenant
    meters, what the demo runs) and, with ``--dlt645-building b2``, b2's tenant meters leave the
    Modbus gateway for a DL/T 645 gateway, and the written site.yaml polls them there."""
    import yaml

    from epcwatch.edge.site import load_site

    port, port645 = free_port(), free_port()
    site = tmp_path / "site.yaml"
    start = dt.datetime.fromtimestamp(INSTANT, dt.UTC).isoformat()
    args = ["sim", "serve", "--port", str(port), "--dlt645-port", str(port645), "--site-config", str(site),
            "--dlt645-building", "b2"]
    child = spawn([*args, "--sim-start", start, "--speed", "1e-6"], tmp_path)
    try:
        child.wait_for("DL/T 645 meter(s)")
        cfg = load_site(site)
        by_bus: dict[str, list[str]] = {}
        for d in cfg.devices:
            by_bus.setdefault(d.bus, []).append(d.id)
        b1_tenants = {d.id for d in demo_complex().devices() if d.building == "b1" and d.tenant}
        b2_tenants = {"b2-t-hall", "b2-t-permits", "b2-t-records"}
        assert set(by_bus["sim645"]) == b1_tenants | b2_tenants and len(b1_tenants) == 5
        assert not (b1_tenants | b2_tenants) & set(by_bus["sim"])
        finance = next(d for d in cfg.devices if d.id == "b1-t-finance")
        assert finance.profile == demo_complex().device("b1-t-finance").profile == PROFILE
        hall = next(d for d in cfg.devices if d.id == "b2-t-hall")
        assert hall.profile == PROFILE and hall.tags.building == "b2" and hall.tags.tenant is not None
        res = CliRunner().invoke(app, ["edge", "run", "--config", str(site), "--check"])
        assert res.exit_code == 0, res.output
        doc = yaml.safe_load(site.read_text())
        assert {"type": "dlt645_tcp", "id": "sim645", "host": "127.0.0.1", "port": port645,
                "inter_frame_gap_ms": 0} in doc["buses"]
        model = ComplexModel(demo_complex())
        truth = values_at(model, Counters(model), INSTANT, [model.device("b2-t-hall")])["b2-t-hall"]
        res = CliRunner().invoke(app, ["edge", "read", "--host", "127.0.0.1", "--port", str(port645),
                                       "--address", str(hall.address), "--profile", PROFILE, "--json",
                                       "--timeout", "5"])
        assert res.exit_code == 0, res.output
        got = json.loads(res.stdout)
        assert got["energy_import"] == pytest.approx(truth["energy_import"], abs=0.005 + 1e-9)
        assert got["active_power"] == pytest.approx(truth["active_power"], abs=0.05 + 1e-9)
    finally:
        child.stop()
