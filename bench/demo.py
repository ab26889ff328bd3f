"""CPU-seconds of ``epcwatch demo`` per phase and per process (the machine is shared: CPU time,
not wall time, is what a quiet run would need).

    .venv/bin/python bench/demo.py                                  # the default demo (2 years)
    .venv/bin/python bench/demo.py -- --from 2025-10-01             # a shorter period

Runs the demo in a temporary state directory on free ports, samples every process of it
(the demo, its children, Mosquitto and InfluxDB) twice a second, and prints the CPU-seconds
(user + system) of each process group in each of the demo's phases (from its own timings),
the wall time and the load average. The services are stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import psutil

EPCWATCH = str(Path(sys.executable).with_name("epcwatch"))


def group(cmd: list[str]) -> str:
    s = " ".join(cmd)
    for word, name in (
        ("mosquitto", "mosquitto"),
        ("influxd", "influxd"),
        ("collector run", "collector"),
        ("collector rollup", "rollup"),
        ("sim serve", "simulator"),
        ("edge run", "edge agent"),
        ("savings", "savings"),
        ("verify", "verify"),
        (" demo", "demo"),
    ):
        if word in s:
            return name
    return "other"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("demo_args", nargs="*", help="arguments passed to epcwatch demo (after --)")
    args = ap.parse_args()
    sd = Path(tempfile.mkdtemp(prefix="epcwatch-demo-bench-"))
    argv = [EPCWATCH, "demo", "--state-dir", str(sd), "--mqtt-port", str(free_port()),
            "--influx-port", str(free_port()), *args.demo_args]  # fmt: skip
    load0 = os.getloadavg()
    t_start = time.monotonic()
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    root = psutil.Process(proc.pid)
    cpu: dict[int, tuple[str, float]] = {}  # pid -> (group, last cumulative cpu)
    samples: list[tuple[float, str, float]] = []  # (time since start, group, delta cpu)
    loads: list[float] = []
    out: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: out.extend(proc.stdout or []), daemon=True)
    reader.start()
    sd_s = str(sd)
    while proc.poll() is None:
        procs = []
        with contextlib.suppress(psutil.NoSuchProcess):
            procs = [root, *root.children(recursive=True)]
        seen = {p.pid for p in procs}
        for p in psutil.process_iter(["pid", "cmdline"]):
            if p.pid not in seen and any(sd_s in a for a in (p.info["cmdline"] or [])):
                procs.append(p)
                seen.add(p.pid)
        now = time.monotonic() - t_start
        for p in procs:
            try:
                t = p.cpu_times()
                c = t.user + t.system
                if p.pid not in cpu:
                    cpu[p.pid] = (group(p.cmdline()), 0.0)
                g, last = cpu[p.pid]
                if c > last:
                    samples.append((now, g, c - last))
                    cpu[p.pid] = (g, c)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                pass
        loads.append(os.getloadavg()[0])
        time.sleep(0.5)
    wall = time.monotonic() - t_start
    reader.join(5)
    text = "".join(out)
    subprocess.run([EPCWATCH, "services", "down", "--state-dir", str(sd)], capture_output=True, check=False)
    m = re.search(r"timings \(s\)\s*:\s*(.*)", text)
    phases: list[tuple[str, float]] = []
    if m:
        for part in m.group(1).split(","):
            name, _, v = part.strip().rpartition(" ")
            if name != "total":
                phases.append((name, float(v)))
    else:
        print(text[-3000:])
    bounds: list[tuple[str, float]] = []
    acc = 0.0
    for name, d in phases:
        acc += d
        bounds.append((name, acc))

    def phase_of(t: float) -> str:
        for name, end in bounds:
            if t <= end + 0.5:
                return name
        return "end"

    table: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for t, g, d in samples:
        table[phase_of(t)][g] += d
    groups = sorted({g for row in table.values() for g in row})
    print(f"wall {wall:.0f} s; load average at start {load0[0]:.1f}, during the run "
          f"{min(loads):.1f}-{max(loads):.1f} (mean {sum(loads) / len(loads):.1f})")  # fmt: skip
    print(f"{'phase':22s} {'wall':>6s} " + " ".join(f"{g:>10s}" for g in groups) + f" {'total':>8s}")
    for name, d in [*phases, ("end", 0.0)]:
        row = table.get(name, {})
        print(f"{name:22s} {d:6.0f} " + " ".join(f"{row.get(g, 0):10.1f}" for g in groups)
              + f" {sum(row.values()):8.1f}")  # fmt: skip
    tot = {g: sum(table[p].get(g, 0) for p in table) for g in groups}
    print(f"{'total':22s} {wall:6.0f} " + " ".join(f"{tot[g]:10.1f}" for g in groups)
          + f" {sum(tot.values()):8.1f}")  # fmt: skip
    shown = ("fast history", "live stretch", "Demo done", "M&V", "provenance")
    tail = [ln for ln in text.splitlines() if ln.strip().startswith(shown)]
    print("\n".join(tail))


if __name__ == "__main__":
    main()
