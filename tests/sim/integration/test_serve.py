"""Modbus serving: what masters read over the wire is what the model says.

Reads go through each device's shipped profile (the edge's own planner and decoder) with the
pymodbus client, and through ``mbpoll`` (a C Modbus master, independent of pymodbus) for the
SDM630; values are compared with the model evaluated independently in the test, within the
register's resolution.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from epcwatch.clock import ManualClock
from epcwatch.devservices.services import free_port
from epcwatch.measurements import VOCABULARY, FieldType
from epcwatch.profiles.decode import decode
from epcwatch.profiles.model import Profile, load_profile
from epcwatch.profiles.planner import plan_profile
from epcwatch.sim.ledger import Counters
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.serve import ImageContext, SiteImages, served_devices, tcp_server
from epcwatch.sim.spec import demo_complex
from epcwatch.sim.values import values_at
from tests.sim.conftest import Child, spawn

pytestmark = pytest.mark.integration

#: a working Tuesday morning in the reporting year, Asia/Shanghai
INSTANT = dt.datetime(2025, 7, 15, 10, 30, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()


def read_profile(
    client: ModbusTcpClient | ModbusSerialClient, profile: Profile, unit: int
) -> dict[str, object]:
    """Poll one device as the edge would: every plan's reads, decoded by the edge's decoder."""
    out: dict[str, object] = {}
    for plan in plan_profile(profile):
        if plan.group == "identity":
            continue
        responses = []
        for r in plan.reads:
            call = {
                "coil": client.read_coils,
                "discrete": client.read_discrete_inputs,
                "holding": client.read_holding_registers,
                "input": client.read_input_registers,
            }[r.function]
            rr = call(r.address, count=r.count, device_id=unit)
            assert not rr.isError(), f"{profile.id} {r}: {rr}"
            responses.append(rr.bits[: r.count] if r.function in ("coil", "discrete") else rr.registers)
        decoded = decode(plan, responses)
        assert decoded.quality == "good", decoded.errors
        out.update(decoded.values)
    return out


def resolution(profile: Profile, name: str, value: float) -> float:
    """Largest difference a register's encoding may introduce for ``value``."""
    p = next(p for p in profile.points if p.name == name)
    if p.type == "float32":
        return abs(p.scale) * float(np.spacing(np.float32(abs(value) / abs(p.scale)))) + 1e-12
    if p.type == "float64":
        return abs(value) * 1e-15 + 1e-12
    return abs(p.scale) / 2 + 1e-9


def assert_matches_model(profile: Profile, got: dict[str, object], model: dict[str, float]) -> int:
    checked = 0
    for p in profile.points:
        if p.name not in model:
            continue  # not simulated (e.g. start_count): the register reads 0
        want = model[p.name]
        have = got[p.name]
        ft = VOCABULARY[p.name].field_type
        if ft is FieldType.BOOL:
            assert have is bool(want), p.name
        elif ft is FieldType.INT:
            assert have == round(want), p.name
        else:
            assert isinstance(have, float)
            assert abs(have - want) <= resolution(profile, p.name, want), (profile.id, p.name, have, want)
        checked += 1
    return checked


@pytest.fixture(scope="module")
def complex_server() -> Iterator[tuple[int, SiteImages, ImageContext]]:
    """The whole complex on one Modbus TCP gateway, clock frozen at INSTANT."""
    model = ComplexModel(demo_complex())
    images = SiteImages(model, Counters(model), served_devices(model), ManualClock(INSTANT))
    # the first image integrates every counter from its origin (~20 s on a loaded 2-core machine,
    # beyond a Modbus client's timeouts); served latency is not what these tests check
    images.image(images.devices[0].unit)
    context = ImageContext(images)
    port = free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    async def main() -> None:
        server = tcp_server(context, "127.0.0.1", port)
        await server.serve_forever(background=True)
        started.set()
        await stop.wait()
        await server.shutdown()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(30)
    yield port, images, context
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)
    loop.close()


def test_every_device_serves_the_model_values_through_its_profile(complex_server):
    port, images, context = complex_server
    fresh = ComplexModel(demo_complex())
    model_values = values_at(fresh, Counters(fresh), INSTANT)
    client = ModbusTcpClient("127.0.0.1", port=port)
    assert client.connect()
    try:
        decoded = {}
        for sd in images.devices:
            got = read_profile(client, sd.profile, sd.unit)
            assert assert_matches_model(sd.profile, got, model_values[sd.device.id]) >= 2
            decoded[sd.device.id] = got
    finally:
        client.close()
    # an unknown unit id gets no answer (like a missing device behind a real gateway)
    silent = ModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0)
    assert silent.connect()
    try:
        with pytest.raises(ModbusIOException):
            silent.read_input_registers(0, count=2, device_id=200)
    finally:
        silent.close()
    # every device was read, and the profiles' kinds are all there (meters, hvac, lighting, sensor)
    assert {u for u, _ in context.reads} >= {sd.unit for sd in images.devices}
    assert {sd.profile.kind for sd in images.devices} == {"meter", "hvac", "lighting", "sensor"}
    # sub-metering identity as read over Modbus: main = A + B + C + D within the registers' resolution
    for b in ("b1", "b2", "b3"):
        main = decoded[f"{b}-main"]["active_power"]
        subs = sum(decoded[d.id]["active_power"] for d in fresh.spec.category_meters(b))
        assert abs(main - subs) <= 1e-6 * main + 1.0


def test_profile_quirks_are_enforced(complex_server):
    port, images, _ = complex_server
    client = ModbusTcpClient("127.0.0.1", port=port)
    assert client.connect()
    try:
        sd = images.devices[0]
        too_many = sd.profile.quirks.max_registers_per_read + 1
        if too_many <= 125:
            assert client.read_holding_registers(0, count=too_many, device_id=sd.unit).isError()
        assert client.write_register(0, 1, device_id=sd.unit).isError()  # read-only
    finally:
        client.close()


def _sdm630_model(t: float) -> dict[str, float]:
    model = ComplexModel(demo_complex())
    return values_at(model, Counters(model), t, [model.device("b1-t-finance")])["b1-t-finance"]


def _mbpoll(args: list[str]) -> str:
    res = subprocess.run(["mbpoll", *args], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _mbpoll_values(out: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^\[(\d+)\]:\s+(\S+)", out, re.M)}


def test_sdm630_one_device_mode_read_by_pymodbus_and_mbpoll(children: list[Child], tmp_path: Path):
    port = free_port()
    log = tmp_path / "served.jsonl"
    start = dt.datetime.fromtimestamp(INSTANT, dt.UTC).isoformat()
    child = spawn(
        [
            "sim",
            "serve",
            "--device",
            "sdm630",
            "--port",
            str(port),
            "--sim-start",
            start,
            "--speed",
            "1e-6",
            "--served-log",
            str(log),
        ],
        tmp_path,
    )
    children.append(child)
    child.wait_for("serving 1 device")
    profile = load_profile("eastron-sdm630")
    model = _sdm630_model(INSTANT)

    client = ModbusTcpClient("127.0.0.1", port=port)
    assert client.connect()
    try:
        got = read_profile(client, profile, 1)
        raw = client.read_input_registers(0x0000, count=0x50, device_id=1).registers
    finally:
        client.close()
    assert assert_matches_model(profile, got, model) >= 20

    # mbpoll: the raw input registers are the ones pymodbus read …
    out = _mbpoll(
        ["-m", "tcp", "-p", str(port), "-a", "1", "-t", "3:hex", "-r", "1", "-c", "80", "-1", "127.0.0.1"]
    )
    regs = _mbpoll_values(out)
    assert [int(regs[i + 1], 16) for i in range(0x50)] == raw
    # … and its own float decoding (big-endian words) shows the model's voltage and energy
    out = _mbpoll(
        [
            "-m",
            "tcp",
            "-p",
            str(port),
            "-a",
            "1",
            "-t",
            "3:float",
            "-B",
            "-r",
            "1",
            "-c",
            "1",
            "-1",
            "127.0.0.1",
        ]
    )
    assert float(_mbpoll_values(out)[1]) == pytest.approx(model["voltage_l1"], rel=1e-5)
    out = _mbpoll(
        [
            "-m",
            "tcp",
            "-p",
            str(port),
            "-a",
            "1",
            "-t",
            "3:float",
            "-B",
            "-r",
            "73",
            "-c",
            "1",
            "-1",
            "127.0.0.1",
        ]
    )
    assert float(_mbpoll_values(out)[73]) == pytest.approx(model["energy_import"], rel=1e-5)

    # the served log says what was served, at the clock's instant
    import json

    served = [json.loads(line) for line in log.read_text().splitlines()]
    assert served and all(s["t"] == INSTANT for s in served)
    assert served[0]["values"]["energy_import"] == pytest.approx(model["energy_import"], rel=1e-12)


def test_sdm630_over_rtu_on_a_socat_pty_pair(children: list[Child], tmp_path: Path):
    start = dt.datetime.fromtimestamp(INSTANT, dt.UTC).isoformat()
    child = spawn(
        ["sim", "serve", "--device", "sdm630", "--rtu", "--sim-start", start, "--speed", "1e-6"], tmp_path
    )
    children.append(child)
    line = child.wait_for("serving 1 device")
    pty = re.search(r"RTU on (\S+)", line).group(1)
    model = _sdm630_model(INSTANT)
    profile = load_profile("eastron-sdm630")
    client = ModbusSerialClient(pty, baudrate=19200, timeout=2)
    assert client.connect()
    try:
        got = read_profile(client, profile, 1)
    finally:
        client.close()
    assert assert_matches_model(profile, got, model) >= 20
    out = _mbpoll(
        [
            "-m",
            "rtu",
            "-b",
            "19200",
            "-P",
            "none",
            "-a",
            "1",
            "-t",
            "3:float",
            "-B",
            "-r",
            "73",
            "-c",
            "1",
            "-1",
            pty,
        ]
    )
    assert float(_mbpoll_values(out)[73]) == pytest.approx(model["energy_import"], rel=1e-5)
