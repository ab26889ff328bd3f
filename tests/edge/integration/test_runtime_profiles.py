"""The runtime with the shipped profiles: planner reads and decoder through the poller, and
``epcwatch edge read`` against real pymodbus servers (TCP and RTU over a socat pty pair)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from epcwatch.cli import app
from epcwatch.edge.poller import poll_device
from epcwatch.edge.profile_plan import FUNCTION_CODES, device_plan
from epcwatch.profiles.encode import register_image
from epcwatch.profiles.model import list_profiles, load_profile
from epcwatch.testing.fake_transport import FakeTransport

SDM630 = {
    "voltage_l1": 230.1,
    "voltage_l2": 229.8,
    "current_l1": 12.5,
    "active_power": 8420.0,
    "power_factor": 0.97,
    "frequency": 50.02,
    "energy_import": 123456.7,
    "energy_export": 12.5,
}


def _fake_image(image: dict[str, dict[int, int | bool]]) -> dict[tuple[int, int], int | bool]:
    return {(FUNCTION_CODES[t], a): v for t, cells in image.items() for a, v in cells.items()}


def _fill(image: dict[str, dict[int, int | bool]], profile_id: str) -> dict[str, dict[int, int | bool]]:
    """Also answer (with 0) every other address the planner reads, as a real device does."""
    tables = {code: name for name, code in FUNCTION_CODES.items()}
    out = {t: dict(cells) for t, cells in image.items()}
    for r in device_plan(profile_id).reads:
        table = out.setdefault(tables[r.function], {})
        for a in range(r.address, r.address + r.count):
            table.setdefault(a, False if r.function in (1, 2) else 0)
    return out


def _sample_values(profile_id: str) -> dict[str, Any]:
    """A value for every polled point that its encoding can carry: True for booleans, 1 else
    (enumerations and bit fields may refuse 1; those are covered by the profile tests)."""
    from epcwatch.measurements import VOCABULARY, FieldType
    from epcwatch.profiles.encode import encode_point

    out: dict[str, Any] = {}
    for p in load_profile(profile_id).points:
        v: Any = True if VOCABULARY[p.name].field_type is FieldType.BOOL else 1
        try:
            encode_point(p, v)
        except ValueError:
            continue
        out[p.name] = v
    return out


@pytest.mark.parametrize("profile_id", sorted(p.id for p in list_profiles()))
def test_every_shipped_profile_polls_through_the_runtime(profile_id: str) -> None:
    values = _sample_values(profile_id)
    plan = device_plan(profile_id)
    assert plan.reads and all(r.function in (1, 2, 3, 4) for r in plan.reads)
    fake = FakeTransport()
    fake.set_image(1, _fake_image(_fill(register_image(load_profile(profile_id), values), profile_id)))
    out = asyncio.run(poll_device(fake, plan, 1, timeout=0.1, retries=0))
    assert out.ok, out.error
    assert values
    for name, v in values.items():
        assert out.values[name] == v, name


def _read(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["edge", "read", "--profile", "eastron-sdm630", *args])


@pytest.mark.integration
def test_edge_read_over_tcp_prints_json(modbus_peer: Callable[..., Any]) -> None:
    image = register_image(load_profile("eastron-sdm630"), SDM630)
    peer = modbus_peer({3: _fill(image, "eastron-sdm630")})
    res = _read(["--host", "127.0.0.1", "--port", str(peer.port), "--unit", "3", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    for name, v in SDM630.items():
        assert got[name] == pytest.approx(v, rel=1e-6), name
    table = _read(["--host", "127.0.0.1", "--port", str(peer.port), "--unit", "3"])
    assert table.exit_code == 0 and "energy_import" in table.stdout and "kWh" in table.stdout


@pytest.mark.integration
def test_edge_read_over_rtu_serial(modbus_peer: Callable[..., Any], pty_pair: tuple[str, str]) -> None:
    agent_end, device_end = pty_pair
    image = register_image(load_profile("eastron-sdm630"), SDM630)
    modbus_peer({1: _fill(image, "eastron-sdm630")}, serial_port=device_end, baud=9600)
    res = _read(["--serial", agent_end, "--baud", "9600", "--unit", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["energy_import"] == pytest.approx(123456.7, rel=1e-6)


@pytest.mark.integration
def test_edge_read_of_a_dead_device_fails_cleanly(modbus_peer: Callable[..., Any]) -> None:
    peer = modbus_peer({1: {"holding": {0: 0}}})
    res = _read(["--host", "127.0.0.1", "--port", str(peer.port), "--unit", "9", "--timeout", "0.3"])
    assert res.exit_code == 1  # the read itself failed: an outcome, not an error
    assert "no answer" in res.stderr and "Traceback" not in res.output
    assert "30 of 30 points failed" in res.stderr


def test_edge_read_needs_exactly_one_bus() -> None:
    res = _read([])
    assert res.exit_code == 2 and "--host" in res.stderr


def test_unknown_profile_is_a_clear_error() -> None:
    res = CliRunner().invoke(app, ["edge", "read", "--profile", "nope-9000", "--host", "127.0.0.1"])
    assert res.exit_code == 2 and "nope-9000" in res.stderr and "Traceback" not in res.output


def test_profile_poll_groups_keep_their_intervals() -> None:
    plan = device_plan("generic-ahu")
    # the fastest group follows the device's poll interval, the slower one keeps its own
    assert {g.name: g.interval for g in plan.poll_groups()} == {"realtime": None, "counters": 60.0}
    assert sum(len(g.reads) for g in plan.groups) == len(plan.reads)
