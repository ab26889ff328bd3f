"""Chaos run: the whole pipeline under random kills, then a loss audit.

    .venv/bin/python tools/chaos.py                      # 3 sites, 3 minutes
    .venv/bin/python tools/chaos.py --sites 5 --duration 600 --seed 7 --overlap --max-queued 100

What runs (all on 127.0.0.1, every MQTT link over TLS with per-site credentials, the broker
started from the shipped deploy/mosquitto/epcwatch.conf):

- one simulated Modbus TCP gateway per site (epcwatch.testing.modbus_recorder: answers every read,
  records every function code), with ``--devices`` SDM630 meters behind it;
- one edge agent per site (``epcwatch edge run``), polling every ``--poll-interval`` s;
- a "cap" site (``cap-1``, unless ``--no-cap-site``): ``--cap-devices`` meters polled five times
  as often, with the smallest outbox the config allows (64 KiB, ``drop_oldest``), whose uplink
  goes through a proxy the schedule can cut;
- Mosquitto (with ``--max-queued N`` as its per-session queue limit, default the shipped one),
  InfluxDB 1.x, and two collectors (``epcwatch collector run``) sharing one group.

For ``--duration`` seconds a seeded random schedule injects faults, in rounds that take each
component down once in random order, with random outages (up to ``--max-down``) and random gaps
(mean ``--mean-gap``):

- edge agents, one collector or both, and InfluxDB (mid-write: the collectors write every
  half second) with SIGKILL, as a power cut or the OOM killer would;
- the broker with SIGKILL (``--broker-signal term`` for SIGTERM), and once per round the broker
  SIGKILLed *while both collectors are down*, so that everything it queued for them is lost;
- the cap site's uplink cut until its outbox is full and the ``drop_oldest`` policy has
  dropped readings (counted by the outbox; the audit reports them apart).

With ``--overlap`` a fault does not wait for the previous one to end: faults run in threads of
their own and overlap (the broker may die while both collectors are down for another reason).
Then the simulated devices go silent, everything is brought up, the pipeline drains (every
outbox empty: every reading acknowledged end to end), and the audit compares every reading the
edge outboxes committed with what InfluxDB holds.

What "produced" means: a trigger installed in each outbox (SQLite) copies every committed
reading's (device, seq, ts) into a table of its own, in the same transaction as the edge's
insert: a reading counts as produced exactly when the edge has committed it, which is the
moment the delivery guarantee starts (docs/delivery.md).

Printed at the end: produced, stored, dropped by policy (the cap site's outbox counter), lost
(beyond the policy), duplicated, unexpected, max and median delivery delay (reading timestamp
→ first seen in InfluxDB by an observer polling every second), the longest injected outage for
comparison, the kills per component and the Modbus function codes the devices received (only
reads: 1–4); the last two lines are ``lost N`` and ``duplicated N``. Exit status 0 only for 0
lost, 0 duplicated, 0 unexpected and no write function code.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EPCWATCH = str(ROOT / ".venv" / "bin" / "epcwatch")

from epcwatch.broker import acl as mqtt_acl
from epcwatch.broker import credentials, lab_ca
from epcwatch.devservices.process import ChildProcess
from epcwatch.devservices.services import (
    Influxd,
    SecureMosquitto,
    free_port,
    influx_query,
)
from epcwatch.testing.loss_audit import AuditReport, Produced, Stored, audit
from epcwatch.testing.modbus_recorder import READ_CODES, RecordingDevice

GROUP = "chaos"
CAP_SITE = "cap-1"
CAP_BYTES = 64 * 1024
DATABASE = "epcwatch"
TELEMETRY_MEASUREMENTS = ("meter",)

PRODUCED_SQL = """
CREATE TABLE IF NOT EXISTS chaos_produced (device TEXT NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS chaos_produced_insert AFTER INSERT ON readings
BEGIN
    INSERT INTO chaos_produced (device, seq, ts) VALUES (NEW.device, NEW.seq, NEW.ts);
END;
"""


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------------------------
class CuttableProxy:
    """A TCP proxy to the broker whose link can be cut: :meth:`cut` closes every connection and
    refuses new ones until :meth:`restore` (TLS passes through untouched)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            src.settimeout(None)
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            conns, self._open = self._open, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        self.sock.close()


@dataclass
class Component:
    """Something the chaos schedule can take down and bring back."""

    name: str
    down: Callable[[], object]
    up: Callable[[], object]
    kills: int = 0
    #: an outage that ends on a condition, not on the drawn duration (returns when it holds)
    hold: Callable[[float], object] | None = None
    busy: threading.Lock = field(default_factory=threading.Lock)


# --------------------------------------------------------------------------------------------
# the pipeline
# --------------------------------------------------------------------------------------------
@dataclass
class Pipeline:
    work: Path
    sites: list[str]
    devices: int
    poll_interval: float
    broker_signal: int
    max_queued: int | None = None
    cap_devices: int = 0
    broker: SecureMosquitto | None = None
    proxy: CuttableProxy | None = None
    influx: Influxd | None = None
    modbus: dict[str, RecordingDevice] = field(default_factory=dict)
    edges: dict[str, ChildProcess] = field(default_factory=dict)
    collectors: list[ChildProcess] = field(default_factory=list)

    def setup(self) -> None:
        w = self.work
        pki = lab_ca.create(w / "pki")
        passwd, acl = w / "broker" / "passwd", w / "broker" / "acl"
        secrets = w / "secrets"
        secrets.mkdir(parents=True, exist_ok=True)
        for site in self.all_sites():
            issued = credentials.issue(mqtt_acl.site_block(site), passwd, acl)
            credentials.write_secret_file(secrets / site, issued.password)
        for name in ("collector-1", "collector-2"):
            issued = credentials.issue(mqtt_acl.collector_block(name, GROUP), passwd, acl)
            credentials.write_secret_file(secrets / name, issued.password)

        self.broker = SecureMosquitto(
            state_dir=w / "broker",
            port=free_port(),
            cafile=pki.ca_cert,
            certfile=pki.server_cert,
            keyfile=pki.server_key,
            password_file=passwd,
            acl_file=acl,
            overrides={} if self.max_queued is None else {"max_queued_messages": str(self.max_queued)},
        )
        self.broker.start()
        self.proxy = CuttableProxy(self.broker.port)
        self.influx = Influxd(state_dir=w, port=free_port(), database=DATABASE)
        self.influx.start()

        for site in self.all_sites():
            dev = RecordingDevice(free_port())
            dev.start()
            self.modbus[site] = dev
            sdir = w / "sites" / site
            sdir.mkdir(parents=True, exist_ok=True)
            (sdir / "site.yaml").write_text(self.site_yaml(site, dev.port, pki.ca_cert, secrets / site))
            self.install_produced_log(sdir / "outbox.sqlite")
            self.edges[site] = ChildProcess(
                f"edge-{site}",
                [EPCWATCH, "--log-json", "edge", "run", "--config", str(sdir / "site.yaml")],
                sdir / "edge.log",
                mark_starts=True,
            )
        for name in ("collector-1", "collector-2"):
            cdir = w / name
            cdir.mkdir(parents=True, exist_ok=True)
            (cdir / "collector.yaml").write_text(self.collector_yaml(name, pki.ca_cert, secrets / name))
            self.collectors.append(
                ChildProcess(
                    name,
                    [EPCWATCH, "--log-json", "collector", "run", "--config", str(cdir / "collector.yaml")],
                    cdir / "collector.log",
                    mark_starts=True,
                )
            )
        for p in (*self.collectors, *self.edges.values()):
            p.start()

    def all_sites(self) -> list[str]:
        return [*self.sites, CAP_SITE] if self.cap_devices else list(self.sites)

    def site_yaml(self, site: str, modbus_port: int, ca: Path, secret: Path) -> str:
        assert self.broker is not None and self.proxy is not None
        cap = site == CAP_SITE
        n, interval = self.devices, self.poll_interval
        if cap:
            n, interval = self.cap_devices, self.poll_interval / 5
        devices = "\n".join(
            f"  - {{id: m{i}, bus: gw, unit: {i}, profile: eastron-sdm630, "
            f"poll_interval_s: {interval}, timeout_s: 1.0, backoff_max_s: 2}}"
            for i in range(1, n + 1)
        )
        port = self.proxy.port if cap else self.broker.port
        outbox = f"{{path: outbox.sqlite, max_bytes: {CAP_BYTES}, full_policy: drop_oldest}}" if cap else (
            "{path: outbox.sqlite}"
        )
        return f"""\
site: {site}
buses:
  - {{type: tcp, id: gw, host: 127.0.0.1, port: {modbus_port}}}
devices:
{devices}
mqtt:
  host: 127.0.0.1
  port: {port}
  username: {site}
  password: {{file: {secret}}}
  tls: {{ca_file: {ca}}}
  reconnect_min_s: 1
  reconnect_max_s: 2
  ack_timeout_s: 5
  ack_timeout_max_s: 20
outbox: {outbox}
health:
  interval_s: 5
"""

    def collector_yaml(self, name: str, ca: Path, secret: Path) -> str:
        assert self.broker is not None and self.influx is not None
        return f"""\
mqtt:
  host: 127.0.0.1
  port: {self.broker.port}
  client_id: chaos-{name}
  group: {GROUP}
  username: {name}
  password: {{file: {secret}}}
  tls: {{ca_file: {ca}}}
  reconnect_min_s: 0.5
  reconnect_max_s: 2
influx:
  url: {self.influx.url}
  database: {DATABASE}
  timeout_s: 10
batch:
  max_wait_s: 0.5
retry:
  initial_s: 0.2
  max_s: 2
health:
  interval_s: 5
rollup:
  enabled: false
"""

    @staticmethod
    def install_produced_log(path: Path) -> None:
        """Create the outbox with the edge's own schema, then add the produced-log trigger."""
        from epcwatch.edge.outbox import Outbox

        box = Outbox(path)
        box.close()
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(PRODUCED_SQL)
            db.commit()

    # -- the schedule's components ------------------------------------------------------------
    def components(self) -> list[Component]:
        assert self.broker is not None and self.influx is not None
        broker, influx = self.broker, self.influx

        def collectors_down() -> None:
            for c in self.collectors:
                c.kill()

        def collectors_up() -> None:
            for c in self.collectors:
                c.start()

        def broker_while_collectors_away() -> None:
            collectors_down()
            time.sleep(1.0)  # the edges go on publishing: the broker queues for the sessions
            broker.stop(timeout=60, sig=signal.SIGKILL)

        def back_after_broker() -> None:
            broker.start()
            collectors_up()

        out = [
            Component("broker", lambda: broker.stop(timeout=60, sig=self.broker_signal), broker.start),
            Component("broker SIGKILL, collectors away", broker_while_collectors_away, back_after_broker),
            Component("influxdb", influx.kill, influx.start),
            Component("both collectors", collectors_down, collectors_up),
        ]
        for c in self.collectors:
            out.append(Component(c.name, c.kill, c.start))
        for site, e in self.edges.items():
            out.append(Component(f"edge {site}", e.kill, e.start))
        if self.cap_devices and self.proxy is not None:
            proxy = self.proxy

            def until_dropping(limit: float) -> None:
                start = self.dropped().get(CAP_SITE, 0)
                deadline = time.monotonic() + limit
                while time.monotonic() < deadline and self.dropped().get(CAP_SITE, 0) <= start:
                    time.sleep(0.5)

            out.append(Component("outbox cap", proxy.cut, proxy.restore, hold=until_dropping))
        return out

    def ensure_all_up(self) -> None:
        assert self.broker is not None and self.influx is not None
        if self.proxy is not None:
            self.proxy.restore()
        if not self.broker.running():
            self.broker.start()
        if not self.influx.running():
            self.influx.start()
        for p in (*self.collectors, *self.edges.values()):
            if not p.alive():
                log(f"{p.name} was not running (exit {p.returncode if p.popen else '-'}); restarting")
                p.start()

    def teardown(self) -> None:
        for p in (*self.edges.values(), *self.collectors):
            p.kill(signal.SIGTERM)
        if self.proxy is not None:
            self.proxy.close()
        for dev in self.modbus.values():
            dev.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.influx is not None:
            self.influx.stop()

    # -- what the edge produced, what the database holds ---------------------------------------
    def dropped(self) -> dict[str, int]:
        """Readings each site's outbox dropped by its full policy (its own counter)."""
        out = {}
        for site in self.all_sites():
            path = self.work / "sites" / site / "outbox.sqlite"
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
                row = db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
                out[site] = int(row[0]) if row else 0
        return out

    def produced(self) -> list[Produced]:
        out = []
        for site in self.all_sites():
            path = self.work / "sites" / site / "outbox.sqlite"
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
                out += [
                    Produced(site, d, s, t)
                    for d, s, t in db.execute("SELECT device, seq, ts FROM chaos_produced")
                ]
        return out

    def outbox_depth(self) -> int:
        n = 0
        for site in self.all_sites():
            path = self.work / "sites" / site / "outbox.sqlite"
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
                n += int(db.execute("SELECT COUNT(*) FROM readings").fetchone()[0])
        return n


def stored_points(url: str, since_ms: int) -> list[tuple[str, str, int, str]]:
    """(site, device, ts, series) of every telemetry point since ``since_ms``."""
    out = []
    for m in TELEMETRY_MEASUREMENTS:
        doc = influx_query(url, f'SELECT * FROM "{m}" WHERE time >= {since_ms}ms GROUP BY *', db=DATABASE)
        for res in doc.get("results", []) or []:  # type: ignore[union-attr]
            for series in res.get("series", []) or []:
                tags = series.get("tags", {})
                key = m + "," + ",".join(f"{k}={v}" for k, v in sorted(tags.items()))
                for row in series["values"]:
                    out.append((tags.get("site", ""), tags.get("device", ""), int(row[0]), key))
    return out


class Observer(threading.Thread):
    """Polls InfluxDB and remembers when each point was first seen (wall time)."""

    def __init__(self, url: str, since_ms: int, every_s: float = 1.0) -> None:
        super().__init__(name="observer", daemon=True)
        self.url, self.since_ms, self.every_s = url, since_ms, every_s
        self.first_seen: dict[tuple[str, str, int, str], float] = {}
        self.polls = self.failed = 0
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stop_event.wait(self.every_s):
            self.poll()

    def poll(self) -> None:
        try:
            points = stored_points(self.url, self.since_ms)
        except Exception:  # InfluxDB is down on purpose now and then
            self.failed += 1
            return
        now = time.time()
        with self._lock:
            self.polls += 1
            for p in points:
                self.first_seen.setdefault(p, now)

    def seen(self) -> int:
        with self._lock:
            return len(self.first_seen)

    def snapshot(self) -> dict[tuple[str, str, int, str], float]:
        with self._lock:
            return dict(self.first_seen)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
@dataclass
class Outage:
    component: str
    start: float
    seconds: float


def chaos(
    pipe: Pipeline,
    rnd: random.Random,
    duration: float,
    mean_gap: float,
    max_down: float,
    overlap: bool = False,
) -> list[Outage]:
    comps = pipe.components()
    outages: list[Outage] = []
    lock = threading.Lock()
    threads: list[threading.Thread] = []
    end = time.monotonic() + duration
    # let everything connect once before the first fault
    time.sleep(min(10.0, duration / 6))

    def fault(victim: Component, down_for: float) -> None:
        with victim.busy:
            t0 = time.monotonic()
            log(f"kill {victim.name} for {down_for:.1f} s")
            victim.down()
            if victim.hold is not None:
                victim.hold(max(down_for, 60.0))
            else:
                time.sleep(down_for)
            victim.up()
            with lock:
                victim.kills += 1
                outages.append(Outage(victim.name, t0, time.monotonic() - t0))

    rounds: list[Component] = []
    while time.monotonic() < end:
        # rounds: every component once per round, in a seeded random order, so even a short
        # run takes each one down before any goes down twice
        if not rounds:
            rounds = rnd.sample(comps, len(comps))
        victim = rounds.pop(0)
        down_for = rnd.uniform(0.5, max_down)
        gap = min(max(rnd.expovariate(1.0 / mean_gap), 1.0), max(0.0, end - time.monotonic()))
        if overlap:
            if victim.busy.locked():  # the same component is still down: next one
                rounds.append(victim)
            else:
                t = threading.Thread(target=fault, args=(victim, down_for), daemon=True)
                t.start()
                threads.append(t)
        else:
            fault(victim, down_for)
        time.sleep(gap)
    for t in threads:
        t.join()
    return outages


def drain(pipe: Pipeline, observer: Observer, expected: int, timeout: float) -> bool:
    """Wait until the outboxes are empty (every reading acknowledged end to end) and the
    observer sees every produced reading but those the outbox cap dropped."""
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while time.monotonic() < deadline:
        pipe.ensure_all_up()
        depth = pipe.outbox_depth()
        seen = observer.seen()
        dropped = sum(pipe.dropped().values())
        if time.monotonic() - last_report > 10:
            log(f"draining: outbox depth {depth}, stored {seen} of {expected} ({dropped} dropped by policy)")
            last_report = time.monotonic()
        if depth == 0 and seen >= expected - dropped:
            return True
        time.sleep(1.0)
    return False


def run(args: argparse.Namespace) -> dict[str, Any]:
    rnd = random.Random(args.seed)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="epcwatch-chaos-"))
    work.mkdir(parents=True, exist_ok=True)
    sites = [f"site-{i + 1}" for i in range(args.sites)]
    pipe = Pipeline(
        work,
        sites,
        args.devices,
        args.poll_interval,
        signal.SIGKILL if args.broker_signal == "kill" else signal.SIGTERM,
        max_queued=args.max_queued,
        cap_devices=0 if args.no_cap_site else args.cap_devices,
    )
    log(f"work dir {work}; {len(sites)} sites x {args.devices} meters, poll every {args.poll_interval} s")
    started_ms = int(time.time() * 1000) - 60_000
    observer: Observer | None = None
    try:
        pipe.setup()
        assert pipe.influx is not None
        observer = Observer(pipe.influx.url, started_ms)
        observer.start()
        outages = chaos(pipe, rnd, args.duration, args.mean_gap, args.max_down, args.overlap)
        log("chaos over: devices go silent, everything comes back up, the pipeline drains")
        for dev in pipe.modbus.values():
            dev.stop()
        pipe.ensure_all_up()
        time.sleep(max(2.0, args.poll_interval * 2))  # a poll in progress may still commit
        produced = pipe.produced()
        drained = drain(pipe, observer, len(produced), args.drain_timeout)
        observer.poll()
        final = stored_points(pipe.influx.url, started_ms)
        seen = observer.snapshot()
        stored = [Stored(s, d, ts, None, seen.get((s, d, ts, k))) for s, d, ts, k in final]
        report = audit(pipe.produced(), stored)
        dropped = pipe.dropped()
        codes: dict[int, int] = {}
        for dev in pipe.modbus.values():
            for code, n in dev.snapshot()[1].items():
                codes[code] = codes.get(code, 0) + n
        result = summary(report, outages, pipe, codes, drained, args, dropped)
    finally:
        if observer is not None:
            observer.stop()
        pipe.teardown()
    return result


def summary(
    report: AuditReport,
    outages: list[Outage],
    pipe: Pipeline,
    codes: dict[int, int],
    drained: bool,
    args: argparse.Namespace,
    dropped: dict[str, int],
) -> dict[str, Any]:
    # readings the cap site's outbox dropped by its policy are counted, not lost; a dropped
    # reading may also have been stored before the drop, so the policy explains at most that
    # many of the site's missing readings. Any other site must have lost nothing at all.
    lost_by_site: dict[str, int] = {}
    for (site, _), n in report.lost_by_device.items():
        lost_by_site[site] = lost_by_site.get(site, 0) + n
    lost = sum(max(0, n - dropped.get(site, 0)) for site, n in lost_by_site.items())
    kills: dict[str, int] = {}
    for o in outages:
        kills[o.component] = kills.get(o.component, 0) + 1
    longest = max((o.seconds for o in outages), default=0.0)
    writes = {c: n for c, n in codes.items() if c not in READ_CODES}
    return {
        "sites": args.sites,
        "devices_per_site": args.devices,
        "duration_s": args.duration,
        "seed": args.seed,
        "broker_signal": args.broker_signal,
        "max_queued": args.max_queued,
        "overlap": args.overlap,
        "produced": report.produced,
        "stored": report.stored,
        "dropped_by_policy": sum(dropped.values()),
        "missing": report.lost,
        "lost": lost,
        "duplicated": report.duplicated,
        "unexpected": report.unexpected,
        "max_delay_s": report.max_delay_s,
        "median_delay_s": report.median_delay_s,
        "longest_outage_s": longest,
        "faults": len(outages),
        "kills": kills,
        "edge_restarts": sum(p.starts - 1 for p in pipe.edges.values()),
        "collector_restarts": sum(p.starts - 1 for p in pipe.collectors),
        "function_codes": codes,
        "write_codes": writes,
        "drained": drained,
        "lost_examples": [list(k) for k in report.lost_examples],
        "report_lines": [
            line.replace("lost e.g.   ", "missing e.g. ")
            for line in report.lines()
            if not line.startswith(("produced  ", "stored  ", "lost  ", "duplicated  "))
        ],
        "ok": lost == 0 and report.duplicated == 0 and report.unexpected == 0 and not writes and drained,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--duration", type=float, default=180, help="seconds of chaos (default 180)")
    ap.add_argument("--sites", type=int, default=3, help="simulated sites, one edge agent each (default 3)")
    ap.add_argument("--devices", type=int, default=2, help="meters per site (default 2)")
    ap.add_argument("--poll-interval", type=float, default=1.0, help="seconds between polls of a meter")
    ap.add_argument("--seed", type=int, default=1, help="seed of the kill schedule")
    ap.add_argument("--mean-gap", type=float, default=8.0, help="mean seconds between faults")
    ap.add_argument("--max-down", type=float, default=8.0, help="longest outage of one fault, seconds")
    ap.add_argument(
        "--broker-signal", choices=["term", "kill"], default="kill", help="how the broker is stopped"
    )
    ap.add_argument(
        "--overlap", action="store_true", help="let faults overlap (each runs in a thread of its own)"
    )
    ap.add_argument("--max-queued", type=int, help="the broker's max_queued_messages for this run")
    ap.add_argument("--cap-devices", type=int, default=4, help="meters of the cap site (default 4)")
    ap.add_argument("--no-cap-site", action="store_true", help="run without the outbox-cap site")
    ap.add_argument("--drain-timeout", type=float, default=180.0)
    ap.add_argument("--workdir", help="keep logs and data here (default: a new temp dir)")
    ap.add_argument("--json", help="also write the figures as JSON to this file")
    args = ap.parse_args(argv)

    result = run(args)
    print()
    print(
        f"chaos run: {args.sites} sites x {args.devices} meters"
        + ("" if args.no_cap_site else f" + {CAP_SITE} x {args.cap_devices}")
        + f", {args.duration:.0f} s, seed {args.seed}"
        + (", overlapping faults" if args.overlap else "")
        + (f", broker queue {args.max_queued}" if args.max_queued else "")
    )
    print(
        f"faults       {result['faults']} ("
        + ", ".join(f"{k} {v}" for k, v in sorted(result["kills"].items()))
        + f"; broker by SIG{'KILL' if args.broker_signal == 'kill' else 'TERM'})"
    )
    print(f"produced     {result['produced']}")
    print(f"stored       {result['stored']}")
    print(
        f"dropped-by-policy {result['dropped_by_policy']} "
        f"(outbox cap, drop_oldest; readings missing in all {result['missing']})"
    )
    for line in result["report_lines"]:
        print(line)
    print(f"longest outage {result['longest_outage_s']:.1f} s")
    if result["max_delay_s"] is not None and result["longest_outage_s"]:
        print(f"max delay / longest outage {result['max_delay_s'] / result['longest_outage_s']:.2f}")
    print(
        "modbus function codes " + ", ".join(f"{c}: {n}" for c, n in sorted(result["function_codes"].items()))
    )
    if not result["drained"]:
        print("NOT DRAINED within the drain timeout")
    print("RESULT " + ("OK: 0 lost, 0 duplicated" if result["ok"] else "FAILED"))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"lost {result['lost']}")
    print(f"duplicated {result['duplicated']}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
