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
