"""The edge agent against a peer: epcwatch and ThingsBoard IoT Gateway 3.8.5 polling the same
simulated meters, side by side, in one run.

    .venv/bin/python bench/edge_peer.py [--seconds 30] [--warmup 10] [--sizes 20,100]
                                        [--agents epcwatch,tb] [--sign]

What runs:

* one pymodbus TCP server (its own process, pinned to the last core) with one simulated meter
  per unit id: 14 float32 points laid out like an Eastron SDM630 (phase voltages, currents and
  powers at 0x00–0x11, phase power factors at 0x1E–0x23, total power at 0x34, frequency at 0x46);
  the server counts the requests it answers;
* a local Mosquitto (``epcwatch.devservices``) and a subscriber in this process that counts the
  readings and values each agent delivers (and, as a collector would, acknowledges epcwatch's
  readings end to end, so its outbox deletes them);
* each agent in turn as a process of its own, polling every meter every second: ``epcwatch edge
  run`` with a site file and a profile of those 14 points, and ThingsBoard IoT Gateway 3.8.5
  (``thingsboard-gateway==3.8.5`` from PyPI, installed by this script into its own virtual
  environment under ``~/.cache/epcwatch-bench/``, never a dependency of the project) with its
  Modbus connector using range reads (``"address": "0-17"`` …), memory storage, QoS 1 to the
  same broker.

What it measures, per agent and number of meters, over the same window after a warm-up: CPU
seconds of the agent process (``/proc/<pid>/stat``), values and readings delivered to the broker,
bytes written to storage (``/proc/<pid>/io`` ``write_bytes``), peak RSS (``VmHWM``) and Modbus
requests per device per cycle. From two sizes it derives the *marginal* CPU per 1,000 values
(the slope between them, which cancels fixed costs) and the fixed CPU (the intercept). The
closing lines compare epcwatch with the peer measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TB_VERSION = "3.8.5"
TB_PYMODBUS = "3.9.2"  # the version its Modbus connector insists on (it pip-installs it otherwise)
CACHE = Path.home() / ".cache" / "epcwatch-bench"
TB_VENV = CACHE / f"tb-gateway-{TB_VERSION}"
SITE = "bench"

#: (name, address): 14 float32 values, big-endian words, as on an SDM630
POINTS: tuple[tuple[str, int], ...] = (
    ("voltage_l1", 0x00),
    ("voltage_l2", 0x02),
    ("voltage_l3", 0x04),
    ("current_l1", 0x06),
    ("current_l2", 0x08),
    ("current_l3", 0x0A),
    ("active_power_l1", 0x0C),
    ("active_power_l2", 0x0E),
    ("active_power_l3", 0x10),
    ("power_factor_l1", 0x1E),
    ("power_factor_l2", 0x20),
    ("power_factor_l3", 0x22),
    ("active_power", 0x34),
    ("frequency", 0x46),
)
#: the address ranges a range-reading peer configures (contiguous runs of points)
RANGES: tuple[tuple[int, int], ...] = ((0x00, 0x11), (0x1E, 0x23), (0x34, 0x35), (0x46, 0x47))


def _registers(unit: int) -> dict[int, int]:
    import struct

    regs: dict[int, int] = {}
    for i, (_, addr) in enumerate(POINTS):
        hi, lo = struct.unpack(">HH", struct.pack(">f", 100.0 + unit + i * 0.25))
        regs[addr], regs[addr + 1] = hi, lo
    return regs


# -- the simulated meters -------------------------------------------------------------------------


def _serve(port: int, units: int, ready: Any, requests: Any) -> None:
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    cpus = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity") and cpus > 1:
        os.sched_setaffinity(0, {cpus - 1})

    async def count(*_: Any) -> None:
        requests.value += 1

    def device(unit: int) -> Any:
        regs = _registers(unit)
        top = max(regs) + 1
        values = [regs.get(a, 0) for a in range(top)]  # gaps answered with 0, like most meters
        block = [SimData(address=0, values=values, datatype=DataType.REGISTERS)]
        bits = [SimData(address=0, values=[False], datatype=DataType.BITS)]
        return SimDevice(id=unit, simdata=(bits, bits, block, block), action=count)

    async def main() -> None:
        server = ModbusTcpServer([device(u) for u in range(1, units + 1)], address=("127.0.0.1", port))
        await server.serve_forever(background=True)
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


# -- counting what arrives at the broker ----------------------------------------------------------


class Counter:
    """Subscribes to both agents' telemetry and counts readings and values per topic family."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.lock = threading.Lock()
        self.readings = {"epcwatch": 0, "tb": 0}
        self.values = {"epcwatch": 0, "tb": 0}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-counter", protocol=mqtt.MQTTv5
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(
            [
                (f"epc/v1/{SITE}/+/telemetry", 1),
                ("v1/gateway/telemetry", 1),
                ("v1/devices/me/rpc/request/+", 1),
            ]
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not subscribed.wait(30):
            raise RuntimeError("counter could not subscribe")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        doc = json.loads(msg.payload)
        if msg.topic.startswith("v1/devices/me/rpc/request/"):
            # play the ThingsBoard server: the gateway sends nothing before it knows its limits
            if isinstance(doc, dict) and doc.get("method") == "getSessionLimits":
                limits = {
                    "rateLimits": {
                        "messages": "0:0,",
                        "telemetryMessages": "0:0,",
                        "telemetryDataPoints": "0:0,",
                    },
                    "maxInflightMessages": 100,
                    "maxPayloadSize": 65536,
                }
                rid = msg.topic.rsplit("/", 1)[1]
                client.publish(f"v1/devices/me/rpc/response/{rid}", json.dumps(limits), qos=1)
            return
        if msg.topic.startswith("epc/"):
            family = "epcwatch"
            # schema 2 (a site message, the default): device blocks; schema 1: one device
            blocks = doc["devices"] if doc.get("v") == 2 else [doc]
            readings = [r for b in blocks for r in b["readings"]]
            # play the collector: acknowledge end to end, so the outbox deletes what arrived
            acked: dict[str, list[list[int]]] = {}
            for b in blocks:
                ranges = acked.setdefault(b["device"], [])
                for q in sorted(r["seq"] for r in b["readings"]):
                    if ranges and q == ranges[-1][1] + 1:
                        ranges[-1][1] = q
                    else:
                        ranges.append([q, q])
            ack = {"v": 1, "site": SITE, "devices": acked, "collector": "bench"}
            client.publish(f"epc/v1/{SITE}/ack", json.dumps(ack), qos=1)
        else:  # {"device name": [{"ts": …, "values": {…}}, …], …}
            family = "tb"
            readings = [r for rs in doc.values() for r in rs]
        # values: the 14 points of a reading, for both agents (TB's wide-range decoding emits
        # 48 keys per reading from the same four ranges; only 14 of them are the meter's values)
        values = sum(min(len(r.get("values", r)), len(POINTS)) for r in readings)
        with self.lock:
            self.readings[family] += len(readings)
            self.values[family] += values

    def snapshot(self, family: str) -> tuple[int, int]:
        with self.lock:
            return self.readings[family], self.values[family]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# -- per-process figures ------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class Run:
    agent: str
    devices: int
    seconds: float
    cpu_s: float
    readings: int
    values: int
    written: int
    peak_rss_kb: int
    requests: int

    @property
    def values_per_s(self) -> float:
        return self.values / self.seconds

    @property
    def cpu_per_s(self) -> float:
        return self.cpu_s / self.seconds

    @property
    def bytes_per_reading(self) -> float:
        return self.written / max(1, self.readings)

    @property
    def requests_per_cycle(self) -> float:
        return self.requests / max(1, self.readings)


# -- the agents ---------------------------------------------------------------------------------


def _epcwatch_files(tmp: Path, modbus_port: int, mqtt_port: int, devices: int, sign: bool) -> Path:
    profile = tmp / "bench-meter-14.yaml"
    points = "\n".join(f"  - {{name: {n}, address: {a}}}" for n, a in POINTS)
    profile.write_text(
        "vendor: Bench\nmodel: Meter-14\nkind: meter\nsource: bench/edge_peer.py\n"
        "description: 14 float32 points laid out like an Eastron SDM630\n"
        "defaults: {function: input, type: float32, order: ABCD, group: realtime}\n"
        "quirks: {max_registers_per_read: 80}\n"
        "poll_groups: {realtime: {interval: 1}}\n"
        f"points:\n{points}\n"
    )
    site = tmp / "site.yaml"
    site.write_text(
        json.dumps(
            {
                "site": SITE,
                "buses": [{"type": "tcp", "id": "gw", "host": "127.0.0.1", "port": modbus_port}],
                "devices": [
                    {"id": f"m{u}", "bus": "gw", "unit": u, "profile": str(profile), "poll_interval_s": 1}
                    for u in range(1, devices + 1)
                ],
                "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
                "outbox": {"path": str(tmp / "state" / "outbox.sqlite")},
                "health": {"interval_s": 30},
            }
            | ({"signing": {"key_file": str(_site_key(tmp))}} if sign else {})
        )
    )
    return site


def _site_key(tmp: Path) -> Path:
    """A fresh site signing key (``--sign``): the agent chains its readings and signs each message."""
    from epcwatch.broker.signing import create_site_key

    path = tmp / "site.key"
    create_site_key(path)
    return path


def _tb_files(tmp: Path, modbus_port: int, mqtt_port: int, devices: int) -> Path:
    src = _tb_package() / "config"
    cfg = tmp / "tb-config"
    cfg.mkdir()
    logs = json.loads((src / "logs.json").read_text())
    for h in logs.get("handlers", {}).values():
        h["level"] = os.environ.get("TB_LOG_LEVEL", "WARNING")
        if "filename" in h:
            h["filename"] = str(tmp / "tb-logs" / Path(h["filename"]).name)
    for lg in logs.get("loggers", {}).values():
        lg["level"] = os.environ.get("TB_LOG_LEVEL", "WARNING")
    (tmp / "tb-logs").mkdir()
    (cfg / "logs.json").write_text(json.dumps(logs))
    gateway = json.loads((src / "tb_gateway.json").read_text())
    tb = gateway["thingsboard"]
    tb.update(host="127.0.0.1", port=mqtt_port, remoteShell=False, remoteConfiguration=False)
    tb["statistics"]["enable"] = False
    tb["security"] = {"type": "accessToken", "accessToken": "bench-token"}
    gateway["storage"] = {"type": "memory", "read_records_count": 100, "max_records_count": 100000}
    gateway["connectors"] = [{"type": "modbus", "name": "Modbus", "configuration": "modbus.json"}]
    (cfg / "tb_gateway.json").write_text(json.dumps(gateway, indent=2))
    timeseries = [
        {
            "tag": "${address}",
            "type": "32float",
            "functionCode": 4,
            "objectsCount": 2,
            "address": f"{lo}-{hi}",
            "maxRegistersPerRequest": 18,
        }
        for lo, hi in RANGES
    ]
    slaves = [
        {
            "host": "127.0.0.1",
            "port": modbus_port,
            "type": "tcp",
            "method": "socket",
            "unitId": u,
            "deviceName": f"m{u}",
            "deviceType": "meter",
            "timeout": 5,
            "byteOrder": "BIG",
            "wordOrder": "BIG",
            "retries": 1,
            "pollPeriod": 1000,
            "sendDataOnlyOnChange": False,
            "attributes": [],
            "timeseries": timeseries,
            "attributeUpdates": [],
            "rpc": [],
        }
        for u in range(1, devices + 1)
    ]
    (cfg / "modbus.json").write_text(json.dumps({"master": {"slaves": slaves}}, indent=2))
    return cfg


def _tb_package() -> Path:
    out = subprocess.run(
        [
            str(TB_VENV / "bin" / "python"),
            "-c",
            "import thingsboard_gateway, os; print(os.path.dirname(thingsboard_gateway.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def install_tb() -> None:
    """ThingsBoard IoT Gateway in a virtual environment of its own (created once, then reused)."""
    py = TB_VENV / "bin" / "python"
    probe = [
        str(py),
        "-c",
        "import importlib.metadata as m; "
        f"assert m.version('thingsboard-gateway') == '{TB_VERSION}'; "
        f"assert m.version('pymodbus') == '{TB_PYMODBUS}'",
    ]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return
    print(f"installing thingsboard-gateway=={TB_VERSION} into {TB_VENV} …", flush=True)
    # the system interpreter, not this project's venv: nothing of ours leaks into the peer's
    subprocess.run([shutil.which("python3") or "python3", "-m", "venv", str(TB_VENV)], check=True)
    subprocess.run(
        [
            str(py),
            "-m",
            "pip",
            "install",
            "-q",
            f"thingsboard-gateway=={TB_VERSION}",
            f"pymodbus=={TB_PYMODBUS}",
            "pyserial",
            "pyserial-asyncio",
        ],
        check=True,
    )


def _start(
    agent: str, tmp: Path, modbus_port: int, mqtt_port: int, devices: int, sign: bool = False
) -> subprocess.Popen[bytes]:
    log = open(tmp / f"{agent}.log", "wb")  # noqa: SIM115 - handed to the child
    if agent == "epcwatch":
        site = _epcwatch_files(tmp, modbus_port, mqtt_port, devices, sign)
        # the agent's own entry point: what an edge box runs (``epcwatch edge run`` is the same
        # agent, plus the start-up imports of the other components' commands)
        exe = Path(sys.executable).with_name("epcwatch-edge")
        cmd = [str(exe), "run", "--config", str(site)]
        return subprocess.Popen(cmd, stdout=log, stderr=log, cwd=tmp)
    cfg = _tb_files(tmp, modbus_port, mqtt_port, devices)
    env = {**os.environ, "TB_GW_CONFIG_DIR": str(cfg)}
    cmd = [str(TB_VENV / "bin" / "python"), "-c", "from thingsboard_gateway.tb_gateway import main; main()"]
    return subprocess.Popen(cmd, stdout=log, stderr=log, cwd=tmp, env=env)


def measure(
    agent: str,
    devices: int,
    warmup: float,
    seconds: float,
    modbus_port: int,
    mqtt_port: int,
    counter: Counter,
    requests: Any,
    sign: bool = False,
) -> Run:
    with tempfile.TemporaryDirectory(prefix=f"peer-{agent}-", dir=CACHE) as d:
        tmp = Path(d)
        base = counter.snapshot(agent)[0]
        proc = _start(agent, tmp, modbus_port, mqtt_port, devices, sign)
        try:
            deadline = time.monotonic() + 120
            while counter.snapshot(agent)[0] - base < 2 * devices and time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"{agent} exited: {(tmp / f'{agent}.log').read_text()[-3000:]}")
                time.sleep(0.2)
            time.sleep(warmup)
            start_peak = _status_kb(proc.pid, "VmHWM")
            r0, v0 = counter.snapshot(agent)
            c0, w0, q0, t0 = _cpu_s(proc.pid), _write_bytes(proc.pid), requests.value, time.monotonic()
            time.sleep(seconds)
            r1, v1 = counter.snapshot(agent)
            c1, w1, q1, t1 = _cpu_s(proc.pid), _write_bytes(proc.pid), requests.value, time.monotonic()
            peak, rss = _status_kb(proc.pid, "VmHWM"), _status_kb(proc.pid, "VmRSS")
            print(
                f"  {agent} {devices}: peak RSS {start_peak / 1024:.1f} MiB after the warm-up, "
                f"{peak / 1024:.1f} MiB at the end; RSS now {rss / 1024:.1f} MiB",
                flush=True,
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return Run(agent, devices, t1 - t0, c1 - c0, r1 - r0, v1 - v0, w1 - w0, peak, q1 - q0)


def _marginal(small: Run, large: Run) -> tuple[float, float]:
    """CPU-s per 1,000 values between the two sizes, and the fixed CPU (share of one core)."""
    slope = (large.cpu_per_s - small.cpu_per_s) / max(1e-9, large.values_per_s - small.values_per_s)
    return slope * 1000.0, small.cpu_per_s - slope * small.values_per_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window per run")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds after the first readings")
    ap.add_argument("--sizes", default="20,100", help="two numbers of meters")
    ap.add_argument("--agents", default="epcwatch,tb", help="epcwatch, tb or both")
    ap.add_argument("--sign", action="store_true", help="epcwatch chains and signs its readings (a site key)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    agents = [a.strip() for a in args.agents.split(",")]
    CACHE.mkdir(parents=True, exist_ok=True)
    if "tb" in agents:
        install_tb()

    from epcwatch.devservices.services import Mosquitto, free_port

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="peer-", dir=CACHE) as d:
        mosq = Mosquitto(state_dir=Path(d), port=free_port())
        mosq.start()
        modbus_port = free_port()
        ctx = mp.get_context("spawn")
        ready, requests = ctx.Event(), ctx.Value("q", 0, lock=False)
        server = ctx.Process(target=_serve, args=(modbus_port, max(sizes), ready, requests), daemon=True)
        server.start()
        counter = None
        try:
            if not ready.wait(60):
                raise RuntimeError("Modbus simulator did not start")
            counter = Counter(mosq.port)
            for agent in agents:
                for n in sizes:
                    run = measure(
                        agent,
                        n,
                        args.warmup,
                        args.seconds,
                        modbus_port,
                        mosq.port,
                        counter,
                        requests,
                        args.sign,
                    )
                    runs.append(run)
                    print(
                        f"{agent:9s} {n:4d} meters: {run.values_per_s:8.0f} values/s, "
                        f"cpu {run.cpu_per_s * 100:5.1f} % of a core, "
                        f"{run.bytes_per_reading:7.0f} B written/reading, peak RSS "
                        f"{run.peak_rss_kb / 1024:5.1f} MiB, "
                        f"{run.requests_per_cycle:4.2f} requests/device/cycle",
                        flush=True,
                    )
        finally:
            if counter is not None:
                counter.close()
            server.terminate()
            mosq.stop()
    _report(runs, sizes, args.seconds)


def _report(runs: list[Run], sizes: list[int], seconds: float) -> None:
    by = {(r.agent, r.devices): r for r in runs}
    print()
    print(
        f"## Edge agent vs ThingsBoard IoT Gateway {TB_VERSION} "
        f"({dt.date.today().isoformat()}, {os.cpu_count()} cores, {seconds:.0f} s windows)"
    )
    print()
    print("| | " + " | ".join(a for a in ("epcwatch", "tb") if (a, sizes[0]) in by) + " |")
    agents = [a for a in ("epcwatch", "tb") if (a, sizes[0]) in by and (a, sizes[-1]) in by]
    print("|---|" + "---|" * len(agents))
    rows: dict[str, list[str]] = {}
    marg: dict[str, float] = {}
    for a in agents:
        small, large = by[(a, sizes[0])], by[(a, sizes[-1])]
        m, fixed = _marginal(small, large)
        marg[a] = m
        rows.setdefault("Modbus requests / device / cycle", []).append(f"{large.requests_per_cycle:.2f}")
        rows.setdefault(f"marginal CPU-s per 1,000 values ({sizes[0]} → {sizes[-1]} meters)", []).append(
            f"{m:.4f}"
        )
        rows.setdefault("fixed CPU (intercept), % of a core", []).append(f"{fixed * 100:.1f}")
        rows.setdefault(f"CPU at {sizes[-1]} meters, % of a core", []).append(f"{large.cpu_per_s * 100:.1f}")
        rows.setdefault(f"peak RSS at {sizes[-1]} meters", []).append(f"{large.peak_rss_kb / 1024:.1f} MiB")
        rows.setdefault(f"disk written per reading ({sizes[0]} / {sizes[-1]} meters)", []).append(
            f"{small.bytes_per_reading:.0f} / {large.bytes_per_reading:.0f} B"
        )
        rows.setdefault(f"values delivered / s at {sizes[-1]} meters", []).append(f"{large.values_per_s:.0f}")
    for k, v in rows.items():
        print(f"| {k} | " + " | ".join(v) + " |")
    if "epcwatch" in marg and "tb" in marg and marg["tb"] > 0:
        large = by[("epcwatch", sizes[-1])]
        print()
        print(
            f"marginal CPU ratio epcwatch/TB = {marg['epcwatch'] / marg['tb']:.3f} (target <= 0.2); "
            f"epcwatch {by[('epcwatch', sizes[0])].bytes_per_reading:.0f} / {large.bytes_per_reading:.0f} B "
            f"written per reading (target <= 1024); peak RSS {large.peak_rss_kb / 1024:.1f} MiB at "
            f"{sizes[-1]} meters (target <= 50)"
        )


if __name__ == "__main__":
    main()
