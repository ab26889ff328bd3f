"""The edge agent is read-only on Modbus: proven on the wire (a server records the function code
of every request the real agent sends) and guarded statically (no edge module calls a pymodbus
write method)."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pymodbus.client.mixin import ModbusClientMixin

from epcwatch.devservices.services import Mosquitto, free_port
from epcwatch.testing.modbus_recorder import READ_CODES, recording_device
from tests.support import EPCWATCH

ROOT = Path(__file__).resolve().parents[3]
EPC = EPCWATCH
EDGE = ROOT / "edge-agent"

READ_METHODS = {"read_coils", "read_discrete_inputs", "read_holding_registers", "read_input_registers"}
#: every request-sending method of pymodbus' client except the four reads: writes (5, 6, 15, 16,
#: 22, 23), diagnostics, file records, device identification and the generic ``execute``
FORBIDDEN_METHODS = {
    name
    for name in vars(ModbusClientMixin)
    if not name.startswith("_")
    and name not in READ_METHODS
    and name not in ("DATATYPE", "convert_from_registers", "convert_to_registers")
}


def edge_modules() -> list[Path]:
    return sorted(p for p in EDGE.glob("*.py") if p.name != "fake_transport.py")


def imports_pymodbus(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pymodbus"):
            return True
        if isinstance(node, ast.Import) and any(a.name.startswith("pymodbus") for a in node.names):
            return True
    return False


def test_no_edge_module_calls_a_pymodbus_write() -> None:
    called: dict[str, set[str]] = {}
    for path in edge_modules():
        tree = ast.parse(path.read_text(), filename=str(path))
        modbus_module = imports_pymodbus(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                # ``execute`` is also sqlite's; it counts where pymodbus is imported
                if node.attr != "execute" or modbus_module:
                    called.setdefault(node.attr, set()).add(path.name)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pymodbus.pdu"):
                for alias in node.names:
                    assert "Write" not in alias.name, f"{path.name} imports {alias.name}"
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                # getattr(client, "write_register") would hide a write from the attribute scan
                assert node.value not in FORBIDDEN_METHODS - {"execute"}, (path.name, node.value)
    assert {"write_register", "write_coils", "execute"} <= FORBIDDEN_METHODS
    writes = {name: files for name, files in called.items() if name in FORBIDDEN_METHODS}
    assert writes == {}, f"edge modules call Modbus methods other than the four reads: {writes}"
    # the scan saw the real Modbus access: all four reads, in the transport
    assert called.keys() >= READ_METHODS
    assert all("transport.py" in called[m] for m in READ_METHODS)


def site_yaml(modbus_port: int, mqtt_port: int) -> str:
    return f"""\
site: ro-site
buses:
  - {{type: tcp, id: gw, host: 127.0.0.1, port: {modbus_port}}}
devices:
  - {{id: meter1, bus: gw, unit: 1, profile: eastron-sdm630, poll_interval_s: 0.5}}
  - {{id: light1, bus: gw, unit: 2, profile: generic-lighting-controller, poll_interval_s: 0.5}}
  - {{id: chiller1, bus: gw, unit: 3, profile: generic-chiller-plant, poll_interval_s: 0.5}}
mqtt:
  host: 127.0.0.1
  port: {mqtt_port}
outbox:
  path: outbox.sqlite
health:
  interval_s: 5
"""


@pytest.mark.integration
def test_the_running_agent_sends_only_read_function_codes(
    private_mosquitto: Mosquitto, tmp_path: Path
) -> None:
    port = free_port()
    with recording_device(port) as dev:
        cfg = tmp_path / "site.yaml"
        cfg.write_text(site_yaml(port, private_mosquitto.port))
        log = open(tmp_path / "edge.log", "wb")  # noqa: SIM115 - handed to the child
        agent = subprocess.Popen(
            [EPC, "edge", "run", "--config", str(cfg)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # count requests, not seconds: wait until each device has been polled several times
            deadline = time.monotonic() + 120
            while dev.snapshot()[0] < 60 and agent.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            os.kill(agent.pid, signal.SIGTERM)
            agent.wait(60)
            log.close()
        frames, codes = dev.snapshot()
    out = (tmp_path / "edge.log").read_text(errors="replace")
    assert frames >= 60, out[-3000:]
    assert set(codes) <= READ_CODES, f"non-read function codes arrived: {codes}"
    # the three profiles exercise coils (1), holding (3) and input (4) registers
    assert {1, 3, 4} <= set(codes), codes
