"""A tenth of the city on one box: Mosquitto → collectors on a shared subscription → InfluxDB.

    .venv/bin/python bench/city.py                 # 1,300 sites x 30 meters every 15 s, 10 minutes
    .venv/bin/python bench/city.py --minutes 1 --sites 100      # a short smoke run

What runs (all on 127.0.0.1, private instances on free ports in a temp dir):

- Mosquitto from the shipped production config (TLS listener, password file, ACL), with one
  credential per site (``epc/v1/{site}/…`` only) and one per collector, issued by the broker
  tooling (``epcwatch.broker``: ACL blocks; hashes by ``mosquitto_passwd``);
- InfluxDB 1.x;
- ``epcwatch collector run`` × ``--collectors`` (default 2) in one shared-subscription group;
- the load: every site is its own MQTT client over TLS with its own credential, and every
  15 s (each site at its own phase) it publishes exactly what an agent with 30 meters and
  default settings sends: one schema-2 site message with the poll cycle of its 30 meters (the
  demo's meter profiles, 15-30 values each), built by the agent's own packing functions
  (``epcwatch.edge.batching``) from reading bodies encoded as its outbox encodes them, at QoS 1.

Printed at the end: produced (PUBACKed readings), stored (points in InfluxDB after a drain),
lost; p50/p99 delivery delay (poll time → point visible in InfluxDB, sampled by polling the
newest point of every site every second, so ±1 s); CPU (cores) and peak RSS per component; the
machine's headroom.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

from epcwatch.broker import acl as mqtt_acl
from epcwatch.broker import lab_ca
from epcwatch.broker.credentials import generate_password
from epcwatch.devservices.services import Influxd, SecureMosquitto, free_port, influx_query

EPCWATCH = str(Path(sys.executable).with_name("epcwatch"))
GROUP = "city"
DATABASE = "city"
POLL_S = 15.0
PROFILES = (
    "eastron-sdm630",
    "schneider-pm5100",
    "abb-b23",
    "carlo-gavazzi-em24",
    "chint-dtsu666",
    "schneider-iem3000",
)


def site_id(i: int) -> str:
    return f"inst-{i:05d}"


def meters() -> list[tuple[str, str, bytes, list[str]]]:
    """The 30 meters of a site: device id, profile, block prefix, measurement names."""
    from epcwatch.edge.batching import block_prefix
    from epcwatch.profiles.model import load_profile

    out = []
    for k in range(30):
        profile = PROFILES[k % len(PROFILES)]
        names = [p.name for p in load_profile(profile).points]
        tags = {
            "building": f"b{k // 10 + 1}",
            "floor": str(k % 10 + 1),
            "category": "ABCD"[k % 4],
            "profile": profile,
        }
        device = f"m{k:02d}"
        out.append((device, profile, block_prefix(device, "meter", orjson.dumps(tags)), names))
    return out


# -- the load: one process per slice of sites, one MQTT client (thread) per site ----------------
def generator(
    first: int,
    count: int,
    port: int,
    ca: str,
    secrets: dict[str, str],
    go: Any,
    start: Any,
    seconds: float,
    phase0: int,
    total_sites: int,
    out: Any,
) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from epcwatch.edge.batching import Row, batch_site_rows, site_message_body
    from epcwatch.topics import site_telemetry

    mtrs = meters()
    prefixes = {d: p for d, _, p, _ in mtrs}
    rnd = random.Random(first)
    lock = threading.Lock()
    acked = [0]
    refused = [0]
    sent = [0]
    pending: dict[tuple[int, int], int] = {}
    early: dict[tuple[int, int], bool] = {}
    clients = []
    for i in range(first, first + count):
        site = site_id(i)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"epcwatch-edge-{site}", protocol=mqtt.MQTTv5)
        c.username_pw_set(site, secrets[site])
        c.tls_set(ca_certs=ca)
        c.max_inflight_messages_set(20)

        def on_publish(client: Any, userdata: Any, mid: int, rc: Any, props: Any, i: int = i) -> None:
            ok = not getattr(rc, "is_failure", False) and getattr(rc, "value", 0) != 0x10
            with lock:  # never held while calling paho (it calls back holding its own locks)
                n = pending.pop((i, mid), None)
                if n is None:
                    early[(i, mid)] = ok  # the PUBACK came before publish() returned
                elif ok:
                    acked[0] += n
                else:
                    refused[0] += n

        c.on_publish = on_publish
        c.connect_async("127.0.0.1", port, keepalive=60)
        c.loop_start()
        clients.append((i, site, c))
        if len(clients) % 20 == 0:  # connect in waves: a herd of TLS handshakes times out
            wave_deadline = time.time() + 60
            while not all(c.is_connected() for _, _, c in clients[-20:]) and time.time() < wave_deadline:
                time.sleep(0.05)
    deadline = time.time() + 900  # 1,300 TLS handshakes take a while on a busy 2-core machine
    while not all(c.is_connected() for _, _, c in clients):
        if time.time() > deadline:
            out.put({"error": f"{sum(not c.is_connected() for _, _, c in clients)} sites did not connect"})
            return
        time.sleep(0.2)
    out.put({"connected": count})
    go.wait()  # every site of every generator is connected: the load starts for all at once
    t_start = start.value
    t_end = t_start + seconds
    seqs = dict.fromkeys(range(first, first + count), 0)
    while time.time() < t_start:
        time.sleep(0.05)
    # site i polls at t_start + phase + k*15 s, phases spread evenly over the 15 s
    due = {i: t_start + (i - phase0) * POLL_S / total_sites for i in range(first, first + count)}
    while True:
        now = time.time()
        if now >= t_end:
            break
        for i, site, c in clients:
            if due[i] > now:
                continue
            ts = int(due[i] * 1000)
            s = seqs[i]
            rows = []
            for k, (device, _, _, names) in enumerate(mtrs):
                values = {n: round(rnd.uniform(0, 500), 3) for n in names}
                body = orjson.dumps({"seq": s, "ts": ts, "values": values, "quality": "good"})
                rows.append(Row(s * 30 + k + 1, device, body))
            seqs[i] = s + 1
            (batch,) = batch_site_rows(rows, 100, 256 * 1024)
            payload = site_message_body(site, prefixes, batch)
            info = c.publish(site_telemetry(site), payload, qos=1)
            with lock:
                sent[0] += len(rows)
                ok = early.pop((i, info.mid), None)
                if ok is None:
                    pending[(i, info.mid)] = len(rows)
                elif ok:
                    acked[0] += len(rows)
                else:
                    refused[0] += len(rows)
            due[i] += POLL_S
        time.sleep(0.01)
    deadline = time.time() + 60
    while pending and time.time() < deadline:
        time.sleep(0.1)
    for _, _, c in clients:
        c.disconnect()
        c.loop_stop()
    out.put({"sent": sent[0], "acked": acked[0], "refused": refused[0], "unacked": sum(pending.values())})


# -- observation ---------------------------------------------------------------------------------
class Delays(threading.Thread):
    """Polls the newest stored point of every site's first meter; the first time a poll time
    appears, its delay is ``seen - poll time``."""

    def __init__(self, url: str, every_s: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.every_s = every_s
        self.latest: dict[str, int] = {}
        self.delays: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        q = (
            'SELECT last("energy_import") FROM "meter" '
            'WHERE time > now() - 2m AND "device" = \'m00\' GROUP BY "site"'
        )
        while not self.stop.wait(self.every_s):
            try:
                doc = influx_query(self.url, q, db=DATABASE)
            except Exception:
                continue
            seen = time.time() * 1000
            for s in doc["results"][0].get("series") or []:  # type: ignore[index,union-attr]
                site = s["tags"]["site"]
                ts = int(s["values"][0][0])
                prev = self.latest.get(site)
                if prev is None or ts > prev:
                    if prev is not None:  # the first sighting may be of an old point
                        self.delays.append((seen - ts) / 1000)
                    self.latest[site] = ts


class Usage(threading.Thread):
    """CPU seconds and peak RSS of each component's processes."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.procs = {g: [psutil.Process(p) for p in pids] for g, pids in groups.items()}
        self.cpu0 = {g: self._cpu(g) for g in groups}
        self.rss = dict.fromkeys(groups, 0.0)
        self.stop = threading.Event()
        self.t0 = time.monotonic()
        psutil.cpu_percent(None)

    def _cpu(self, g: str) -> float:
        total = 0.0
        for p in self.procs[g]:
            try:
                t = p.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
                for ch in p.children(recursive=True):
                    ct = ch.cpu_times()
                    total += ct.user + ct.system
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        while not self.stop.wait(2.0):
            for g, ps in self.procs.items():
                rss = 0.0
                for p in ps:
                    try:
                        rss += p.memory_info().rss
                        rss += sum(ch.memory_info().rss for ch in p.children(recursive=True))
                    except psutil.Error:
                        pass
                self.rss[g] = max(self.rss[g], rss / 2**20)

    def result(self) -> tuple[float, dict[str, tuple[float, float]], float]:
        wall = time.monotonic() - self.t0
        machine = psutil.cpu_percent(None) / 100 * (os.cpu_count() or 1)
        return wall, {g: ((self._cpu(g) - self.cpu0[g]) / wall, self.rss[g]) for g in self.groups}, machine


def stored(url: str) -> int:
    doc = influx_query(url, 'SELECT count("energy_import") FROM "meter"', db=DATABASE)
    series = doc["results"][0].get("series")  # type: ignore[index,union-attr]
    return int(series[0]["values"][0][1]) if series else 0


# -- main ----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="duration of the load (default 10)")
    ap.add_argument("--sites", type=int, default=1300, help="institutions (sites of 30 meters)")
    ap.add_argument("--collectors", type=int, default=2, help="collectors in the shared group")
    ap.add_argument(
        "--generators",
        type=int,
        default=0,
        help="load-generator processes (default: one per 250 sites; paho's select() takes file "
        "descriptors below 1024, three per client)",
    )
    args = ap.parse_args()
    args.generators = args.generators or -(-args.sites // 250)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.sites + 1024)), hard))
    with tempfile.TemporaryDirectory(prefix="epc-city-") as tmp:
        w = Path(tmp)
        print(
            f"{args.sites} sites x 30 meters every {POLL_S:g} s for {args.minutes:g} min, "
            f"{args.collectors} collectors; setting up ...",
            flush=True,
        )
        pki = lab_ca.create(w / "pki")
        # per-site credentials: ACL blocks from the broker tooling, hashed in one mosquitto_passwd -U
        secrets = {site_id(i): generate_password() for i in range(args.sites)}
        collectors = {f"collector-{k + 1}": generate_password() for k in range(args.collectors)}
        passwd, acl = w / "passwd", w / "acl"
        passwd.write_text("".join(f"{u}:{p}\n" for u, p in {**secrets, **collectors}.items()))
        passwd.chmod(0o600)
        subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True, capture_output=True)
        blocks = [mqtt_acl.site_block(s) for s in secrets] + [
            mqtt_acl.collector_block(c, GROUP) for c in collectors
        ]
        acl.write_text("\n\n".join("\n".join(b.lines()) for b in blocks) + "\n")
        broker = SecureMosquitto(
            state_dir=w / "broker",
            port=free_port(),
            cafile=pki.ca_cert,
            certfile=pki.server_cert,
            keyfile=pki.server_key,
            password_file=passwd,
            acl_file=acl,
        )
        influx = Influxd(state_dir=w, port=free_port(), database=DATABASE)
        broker.start()
        influx.start()
        procs: list[subprocess.Popen[bytes]] = []
        gens: list[mp.Process] = []
        try:
            for name, password in collectors.items():
                (w / f"{name}.secret").write_text(password)
                (w / f"{name}.yaml").write_text(
                    orjson.dumps(
                        {
                            "mqtt": {
                                "host": "127.0.0.1",
                                "port": broker.port,
                                "client_id": f"city-{name}",
                                "group": GROUP,
                                "username": name,
                                "password": {"file": str(w / f"{name}.secret")},
                                "tls": {"ca_file": str(pki.ca_cert)},
                            },
                            "influx": {"url": influx.url, "database": DATABASE},
                            "batch": {"max_wait_s": 0.5},
                            "rollup": {"enabled": False, "at_ingest": False},
                        }
                    ).decode()
                )
                with open(w / f"{name}.log", "ab") as log:
                    procs.append(
                        subprocess.Popen(
                            [EPCWATCH, "collector", "run", "--config", str(w / f"{name}.yaml")],
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            deadline = time.time() + 60
            while not all(
                "MQTT connected" in (w / f"{n}.log").read_text(errors="replace") for n in collectors
            ):
                if time.time() > deadline or any(p.poll() is not None for p in procs):
                    sys.exit(
                        "collectors did not connect:\n"
                        + "\n".join((w / f"{n}.log").read_text(errors="replace")[-2000:] for n in collectors)
                    )
                time.sleep(0.2)
            time.sleep(1.0)  # their SUBACKs
            queue: Any = mp.Queue()
            go = mp.Event()
            start = mp.Value("d", 0.0)
            per = -(-args.sites // args.generators)
            for g in range(args.generators):
                first = g * per
                n = min(per, args.sites - first)
                if n <= 0:
                    continue
                sec = {site_id(i): secrets[site_id(i)] for i in range(first, first + n)}
                p = mp.Process(
                    target=generator,
                    args=(
                        first,
                        n,
                        broker.port,
                        str(pki.ca_cert),
                        sec,
                        go,
                        start,
                        args.minutes * 60,
                        0,
                        args.sites,
                        queue,
                    ),
                )
                p.start()
                gens.append(p)
            for _ in gens:
                msg = queue.get(timeout=1000)
                if "error" in msg:
                    sys.exit(msg["error"])
            t_start = time.time() + 2.0
            start.value = t_start
            go.set()
            print(
                f"all {args.sites} sites connected; load from "
                f"{time.strftime('%H:%M:%S', time.gmtime(t_start))} UTC",
                flush=True,
            )
            while time.time() < t_start:
                time.sleep(0.1)
            delays = Delays(influx.url)
            delays.start()
            usage = Usage(
                {
                    "mosquitto": [broker.pid() or 0],
                    "influxd": [influx.pid() or 0],
                    "collectors": [p.pid for p in procs],
                    "load generator": [p.pid for p in gens if p.pid],
                }
            )
            usage.start()
            results = [queue.get(timeout=args.minutes * 60 + 300) for _ in gens]
            wall, per_component, machine = usage.result()
            usage.stop.set()
            produced = sum(r["acked"] for r in results)
            sent = sum(r["sent"] for r in results)
            t_drain = time.time()
            last = -1
            while time.time() - t_drain < 120:
                n = stored(influx.url)
                if n >= produced or n == last:
                    break
                last = n
                time.sleep(2.0)
            time.sleep(2.0)
            delays.stop.set()
            n_stored = stored(influx.url)
        finally:
            for gp in gens:
                gp.join(10)
                if gp.is_alive():
                    gp.kill()
            for cp in procs:
                cp.terminate()
                try:
                    cp.wait(30)
                except subprocess.TimeoutExpired:
                    cp.kill()
            broker.stop()
            influx.stop()

    d = sorted(delays.delays)
    print(
        f"\n== city bench {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
        f"{args.sites} sites x 30 meters "
        f"every {POLL_S:g} s, {args.minutes:g} min, {args.collectors} collectors =="
    )
    print(
        f"rate: {args.sites / POLL_S:,.1f} messages/s, {args.sites * 30 / POLL_S:,.0f} readings/s "
        f"({args.sites * 30 * 20 / POLL_S:,.0f} values/s)"
    )
    print(
        f"produced (PUBACKed): {produced:,} readings (sent {sent:,}; refused "
        f"{sum(r['refused'] for r in results)}, unacked {sum(r['unacked'] for r in results)})"
    )
    print(f"stored:   {n_stored:,}")
    print(f"lost:     {max(0, produced - n_stored):,}")
    if d:
        print(
            f"delivery delay (poll → visible in InfluxDB, ±1 s): p50 {statistics.median(d):.2f} s, "
            f"p99 {d[min(len(d) - 1, int(0.99 * len(d)))]:.2f} s, max {d[-1]:.2f} s ({len(d)} samples)"
        )
    used = 0.0
    for g, (cpu, rss) in per_component.items():
        used += cpu if g != "load generator" else 0.0
        print(f"  {g:15s} CPU {cpu:5.2f} cores  peak RSS {rss:7.0f} MiB")
    cores = os.cpu_count() or 1
    print(
        f"pipeline (broker + collectors + database): {used:.2f} of {cores} cores; machine busy {machine:.2f} "
        f"cores over {wall:.0f} s (other users included)"
    )
    print(
        f"headroom: {max(0.0, cores - used):.2f} cores free for the pipeline, about "
        f"{cores / max(used, 1e-9):.1f}x this load if the pipeline had the machine alone"
    )


if __name__ == "__main__":
    main()
