"""``epcwatch demo``: the whole system on the simulated civic-centre office district.

Services up (Mosquitto, InfluxDB) -> collector running -> a baseline year and a reporting year
after the retrofits: fast history straight from the model over MQTT for most of it, then a live
stretch through the real Modbus and DL/T 645 pipeline (``sim serve`` -> ``edge run`` -> Mosquitto ->
``collector run`` -> InfluxDB) on the shared accelerated clock -> interval energy at ingest ->
dashboards -> M&V report, each step as far as the component exists. Child processes are stopped
by PID at the end; the services stay up for the user to query.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from epcwatch.devservices.process import ChildProcess
from epcwatch.errors import EpcwatchError
from epcwatch.local import DEFAULT_INFLUX_PORT, DEFAULT_MQTT_PORT

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: the command-line entry of this installation (the demo runs its components as processes)
EPCWATCH = str(Path(sys.executable).with_name("epcwatch"))
#: the demo's portfolio and contracts, shipped as package data
DEMO_FILES = Path(str(resources.files("epcwatch.demo") / "data"))


#: the demo collector's MQTT client id (its persistent session; see fresh_start)
COLLECTOR_CLIENT_ID = "epcwatch-demo-collector"


class DemoError(EpcwatchError):
    """A step of the demo that failed; the message says which and where its log is."""


def has_command(*words: str) -> bool:
    """Whether this installation's CLI has ``epcwatch WORDS…`` (components land independently)."""
    res = subprocess.run([EPCWATCH, *words, "--help"], capture_output=True, timeout=60)
    return res.returncode == 0


def run_step(name: str, argv: list[str], log: Path, timeout: float = 1800) -> str:
    """Run a component command to completion; its output goes to ``log`` and is returned."""
    log.parent.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    log.write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
        raise DemoError(f"{name} failed (exit {res.returncode}); see {log}:\n{tail}")
    return res.stdout


@dataclass
class Plan:
    """What the demo covers: local days ``first``..``last``; the last ``live_days`` of them go
    through the Modbus pipeline at ``speed``, the rest is fast history every ``interval_s``."""

    first: dt.date
    last: dt.date
    live_days: int
    speed: float
    interval_s: int
    poll_interval_s: float
    seed: int = 0
    mqtt_port: int = DEFAULT_MQTT_PORT
    influx_port: int = DEFAULT_INFLUX_PORT
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def live_first(self) -> dt.date:
        return self.last - dt.timedelta(days=self.live_days - 1)

    @property
    def history_last(self) -> dt.date:
        return self.live_first - dt.timedelta(days=1)


def collector_yaml(mqtt_port: int, influx_url: str, portfolio: Path, keyring: Path | None = None) -> str:
    import yaml

    doc = {
        "mqtt": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "client_id": COLLECTOR_CLIENT_ID,
            "group": "demo",
        },
        "influx": {"writer": "v1", "url": influx_url, "database": "epcwatch"},
        "batch": {"max_points": 20_000, "max_wait_s": 0.5},
        "health": {"interval_s": 5},
        # interval energy is computed as the readings arrive (state in collector-intervals.sqlite
        # beside this file); no periodic recompute during the demo
        "rollup": {"enabled": False, "portfolio": str(portfolio), "at_ingest": True},
    }
    if keyring is not None:  # signed readings are checked on the way in (docs/provenance.md)
        doc["keyring"] = str(keyring)
    return yaml.safe_dump(doc, sort_keys=False)


def site_key(work: Path) -> tuple[Ed25519PrivateKey, Path, Path]:
    """The demo site's signing key (its file created once, 0600) and a keyring trusting it:
    the key, its file and the keyring's file."""
    import base64

    import yaml

    from epcwatch import provenance
    from epcwatch.broker.signing import create_site_key, load_site_key

    key_file, ring = work / "site.key", work / "keyring.yaml"
    key = load_site_key(key_file) if key_file.exists() else create_site_key(key_file)
    public = base64.b64encode(provenance.public_bytes(key.public_key())).decode()
    ring.write_text(
        yaml.safe_dump({"keys": [{"site": SITE, "public_key": public, "note": "the demo site's key"}]}),
        encoding="utf-8",
    )
    return key, key_file, ring


def sign_site_config(
    site: Path, key_file: Path, heads: dict[str, tuple[int, bytes]], *, ack_timeout_s: float | None = None
) -> None:
    """Make the live agent sign with the history's key and continue each device's chain where
    the signed history ended (its outbox numbers the next reading ``last seq + 1``).
    ``ack_timeout_s``: how long it waits for the end-to-end ack before publishing again."""
    import yaml

    from epcwatch.edge.outbox import Outbox
    from epcwatch.edge.site import MqttConfig

    doc = yaml.safe_load(site.read_text(encoding="utf-8"))
    doc["signing"] = {"key_file": str(key_file)}
    if ack_timeout_s is not None:
        mqtt = doc.setdefault("mqtt", {})
        mqtt["ack_timeout_s"] = ack_timeout_s
        ceiling = mqtt.get("ack_timeout_max_s", MqttConfig.model_fields["ack_timeout_max_s"].default)
        mqtt["ack_timeout_max_s"] = max(ack_timeout_s, float(ceiling))
    site.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    path = Path(doc["outbox"]["path"])
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    outbox = Outbox(path, site=doc["site"])
    try:
        outbox.continue_chains(heads)
    finally:
        outbox.close()


def portfolio_yaml(seed: int = 0) -> str:
    """The demo portfolio (as demo/data/portfolio.yaml) from the simulated complex."""
    import yaml

    from epcwatch.sim.spec import demo_complex

    spec = demo_complex(seed)
    site = {
        "id": spec.site,
        "name": "Civic Centre office district",
        "timezone": spec.timezone,
        "buildings": [
            {
                "id": b.id,
                "name": b.name,
                "floor_area_m2": b.floor_area_m2,
                "occupants": b.occupants,
                "floors": b.floors,
                **({"code": b.code} if b.code else {}),
            }
            for b in spec.buildings
        ],
    }
    return yaml.safe_dump({"sites": [site]}, sort_keys=False)


def true_savings(contract: Path, truth_csv: Path) -> float | None:
    """The simulator's true savings over the contract's reporting period on its metered devices."""
    import pandas as pd
    import yaml

    try:
        doc = yaml.safe_load(contract.read_text())
        devices = {m["device"] for m in doc["meters"] if "device" in m}
        start, end = str(doc["reporting"]["start"]), str(doc["reporting"]["end"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    df = pd.read_csv(truth_csv, dtype={"date": str})
    sel = df[df.device.isin(devices) & (df.date >= start) & (df.date <= end)]
    return float(sel.savings_kwh.sum()) if len(sel) else None


def write_building_info(influx_url: str, portfolio: Path) -> int:
    """``building_info`` points (docs/data-model.md) from the portfolio, at time 0 (idempotent)."""
    from epcwatch.dashboards.metadata import building_info_lines
    from epcwatch.influx import InfluxClient, InfluxError
    from epcwatch.portfolio import load_portfolio

    lines = building_info_lines(load_portfolio(portfolio))
    try:
        InfluxClient(influx_url, "epcwatch", timeout=30).write(lines, precision="s")
    except InfluxError as exc:
        raise DemoError(f"InfluxDB refused building_info: {exc}") from None
    return len(lines)


def count_readings(influx_url: str, t0_ms: int, t1_ms: int, *, device: str | None = None) -> int:
    """Readings stored in [t0, t1): counted on each kind's always-present field (a meter's
    counter: electricity, water or gas, exactly one per reading). ``device``: only that meter's
    (its ``energy_import``)."""
    from epcwatch.influx import InfluxClient
    from epcwatch.influx.influxql import literal
    from epcwatch.influx.schema import HVAC, LIGHTING, METER, SENSOR

    db = InfluxClient(influx_url, "epcwatch")
    total = 0
    where = f"time >= {t0_ms}ms AND time < {t1_ms}ms"
    fields: tuple[tuple[str, str], ...] = (
        (METER, "energy_import"),
        (METER, "water_volume"),
        (METER, "gas_volume"),
        (HVAC, "active_power"),
        (LIGHTING, "active_power"),
        (SENSOR, "outdoor_temp"),
    )
    if device is not None:
        where += f' AND "device" = {literal(device)}'
        fields = fields[:1]
    for measurement, fld in fields:
        for series in db.query(f'SELECT count("{fld}") FROM "{measurement}" WHERE {where}'):
            total += int(series.values[0][1])
    return total


def run_verify(influx_url: str, keyring: Path, first: dt.date, last: dt.date, log: Path) -> dict[str, object]:
    """``epcwatch verify`` over the demo's days (its JSON report; it exits 1 when anything fails)."""
    argv = [
        EPCWATCH, "verify", "--keyring", str(keyring), "--site", SITE,
        "--from", _local_midnight(first).isoformat(),
        "--to", _local_midnight(last + dt.timedelta(days=1)).isoformat(),
        "--influx-url", influx_url, "--database", "epcwatch", "--json",
    ]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    log.write_text(res.stdout + res.stderr)
    if res.returncode not in (0, 1):
        raise DemoError(f"verify failed (exit {res.returncode}); see {log}")
    doc: dict[str, object] = json.loads(res.stdout)
    return doc


def verify_summary(doc: dict[str, object]) -> str:
    """One line: passed or failed, and the totals."""
    total = doc.get("total")
    counts = ", ".join(f"{k} {v:,}" for k, v in total.items() if v) if isinstance(total, dict) else ""
    return ("passed" if doc.get("ok") else "FAILED") + (f" ({counts})" if counts else "")


def wait_until(pred: Callable[[], bool], timeout: float, what: str, children: list[ChildProcess]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in children:
            c.check()
        if pred():
            return
        time.sleep(1.0)
    raise DemoError(f"timed out waiting for {what}")


SITE = "civic-centre"
#: the demo contract's baseline start and reporting end (demo/data/contract.yaml)
CONTRACT_YEARS = (dt.date(2024, 1, 1), dt.date(2025, 12, 31))
TZ_NAME = "Asia/Shanghai"

EXAMPLE_QUERIES = (
    "SELECT last(active_power) FROM meter WHERE device = 'b1-main'",
    "SELECT sum(energy_import) FROM energy_interval WHERE interval = '1d' AND category != '' "
    "AND tenant = '' AND time >= '2025-01-01T00:00:00+08:00' AND time < '2026-01-01T00:00:00+08:00' "
    "GROUP BY building, category",
    "SELECT mean(outdoor_temp) FROM sensor WHERE time >= '2025-07-01' AND time < '2025-08-01' "
    "GROUP BY time(1d) tz('Asia/Shanghai')",
    # b1's national item codes: electricity items, water (02000) and gas (03000)
    "SELECT sum(energy_import), sum(water_volume), sum(gas_volume) FROM energy_interval "
    "WHERE interval = '1d' AND building = 'b1' AND tenant = '' AND item_code != '' GROUP BY item_code",
)


def _local_midnight(day: dt.date) -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(TZ_NAME))


def fresh_start(mqtt_port: int, influx_url: str, database: str = "epcwatch") -> None:
    """Start from nothing an earlier run left behind. The demo's database is dropped and made
    again (a run's live stretch has other timestamps than the last one's, and the verifier would
    report the last one's readings beside this one's chains). The persistent MQTT sessions of
    its collector and edge agent are ended: a message the last collector never stored, or an
    acknowledgement the last agent never read (it names seqs this run's outbox uses again),
    would otherwise reach this run."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from epcwatch.influx.client import InfluxClient
    from epcwatch.influx.influxql import ident

    db = InfluxClient(influx_url, database)
    db.execute(f"DROP DATABASE {ident(database)}")
    db.create_database()
    for client_id in (COLLECTOR_CLIENT_ID, f"epcwatch-edge-{SITE}"):
        done = threading.Event()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.on_connect = lambda *_, done=done: done.set()
        c.connect("127.0.0.1", mqtt_port, clean_start=True)  # no session expiry: gone on disconnect
        c.loop_start()
        try:
            if not done.wait(30):
                raise DemoError(f"the broker did not answer {client_id}'s clean start")
        finally:
            c.disconnect()
            c.loop_stop()


def run_demo(plan: Plan, state_dir: Path | None = None) -> dict[str, object]:
    """Run every step of the demo; returns what was done (paths, counts, timings)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    from epcwatch.devservices.cli import services_up
    from epcwatch.devservices.services import ServiceError, free_port
    from epcwatch.local import default_state_dir
    from epcwatch.sim.history import (
        HistorySigner,
        PublishError,
        history_batches,
        profile_points,
        profile_quantizers,
        publish,
    )
    from epcwatch.sim.model import ComplexModel
    from epcwatch.sim.spec import demo_complex
    from epcwatch.sim.truth import daily_truth

    console = Console()
    started = time.monotonic()
    sd = state_dir or default_state_dir()
    work = sd / "demo"
    logs_dir = work / "logs"
    work.mkdir(parents=True, exist_ok=True)
    portfolio = DEMO_FILES / "portfolio.yaml"
    if not portfolio.exists():  # an installation without the repository's deploy/ folder
        portfolio = work / "portfolio.yaml"
        portfolio.write_text(portfolio_yaml(plan.seed))
    contract = DEMO_FILES / "contract.yaml"
    result: dict[str, object] = {"work": str(work), "state_dir": str(state_dir) if state_dir else ""}
    children: list[ChildProcess] = []

    def lap(name: str, t0: float) -> None:
        plan.timings[name] = round(time.monotonic() - t0, 1)

    columns = (TextColumn("{task.description:38s}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress, ThreadPoolExecutor(1) as background:
            # 1. services ------------------------------------------------------------------------
            t0 = time.monotonic()
            task = progress.add_task("services: Mosquitto + InfluxDB", total=1)
            try:
                mosq, influx = services_up(sd, plan.mqtt_port, plan.influx_port)
            except ServiceError as exc:
                raise DemoError(str(exc)) from None
            fresh_start(mosq.port, influx.url)
            if has_command("dashboards", "metadata"):
                run_step(
                    "dashboards metadata",
                    [
                        EPCWATCH,
                        "dashboards",
                        "metadata",
                        "--portfolio",
                        str(portfolio),
                        "--influx-url",
                        influx.url,
                    ],
                    logs_dir / "metadata.log",
                )
            else:
                write_building_info(influx.url, portfolio)
            result.update(mqtt=mosq.url, influx=influx.url)
            progress.update(task, completed=1)
            lap("services", t0)

            # 2. collector -----------------------------------------------------------------------
            t0 = time.monotonic()
            task = progress.add_task("collector: MQTT -> InfluxDB", total=1)
            if not has_command("collector", "run"):
                raise DemoError(
                    "this installation has no 'epcwatch collector run'; nothing would store the data"
                )
            key, key_file, keyring = site_key(work)
            result["keyring"] = str(keyring)
            (work / "collector.yaml").write_text(collector_yaml(mosq.port, influx.url, portfolio, keyring))
            for stale in work.glob("collector-intervals.sqlite*"):  # a previous run's state
                stale.unlink()
            # niced: while it still stores the history, the live stretch's simulator and edge agent
            # (real-time polling on the accelerated clock) come first
            collector = ChildProcess(
                "collector",
                [EPCWATCH, "collector", "run", "--config", str(work / "collector.yaml")],
                logs_dir / "collector.log",
                nice=10,
            ).start()
            children.append(collector)
            collector.wait_log("MQTT connected", 60)
            time.sleep(1.5)  # its SUBACK: from here on the broker queues for the demo group
            progress.update(task, completed=1)
            lap("collector start", t0)

            # 3. fast history --------------------------------------------------------------------
            t0 = time.monotonic()
            model = ComplexModel(demo_complex(plan.seed))
            names = profile_points(model)
            days = (plan.history_last - plan.first).days + 1
            task = progress.add_task(f"history {plan.first} .. {plan.history_last}", total=days)
            per_day = len(model.devices) * (86_400 // plan.interval_s)

            def advance(b: object) -> None:
                progress.advance(task, getattr(b, "readings", 0) / per_day)

            # signed as a signing edge would have: per device a chain the live agent continues
            signer = HistorySigner(key)

            try:
                msgs, readings = publish(
                    history_batches(
                        model,
                        plan.first,
                        plan.history_last,
                        interval_s=plan.interval_s,
                        point_names=names,
                        quantizers=profile_quantizers(model),
                        signer=signer,
                    ),
                    "127.0.0.1",
                    mosq.port,
                    client_id="epcwatch-demo-history",
                    on_batch=advance,
                )
            except PublishError as exc:
                raise DemoError(str(exc)) from None
            progress.update(task, completed=days)
            result.update(history_messages=msgs, history_readings=readings)
            lap("history publish", t0)

            # 4. live stretch through Modbus, while the collector still stores the history -------------
            # (the broker queues the live messages behind the history's, so every series' readings
            # reach the collector in time order)
            t0 = time.monotonic()
            stored_task = progress.add_task("history stored in InfluxDB", total=readings)
            h0 = int(_local_midnight(plan.first).timestamp() * 1000)
            # the history lies on its grid up to the last interval before the live stretch; the
            # agent's first poll lands after that
            h1 = int(_local_midnight(plan.live_first).timestamp() * 1000) - plan.interval_s * 1000 + 1
            history_done = [False]
            # the progress follows one series (counting all of two years is ~1 CPU-s of InfluxDB,
            # taken from the live stretch); the exact count runs once that series is complete
            # (the collector stores the history in time order), and every 30 s regardless
            main_expected = days * (86_400 // plan.interval_s)
            exact_at = [time.monotonic() + 30.0]

            def stored() -> bool:
                if history_done[0]:
                    return True
                n_main = count_readings(influx.url, h0, h1, device="b1-main")
                progress.update(stored_task, completed=min(readings, readings * n_main // main_expected))
                if n_main < main_expected and time.monotonic() < exact_at[0]:
                    return False
                exact_at[0] = time.monotonic() + 30.0
                n = count_readings(influx.url, h0, h1)
                progress.update(stored_task, completed=min(n, readings))
                history_done[0] = n >= readings
                if history_done[0]:
                    result["history_stored_s"] = round(time.monotonic() - t0, 1)
                return history_done[0]

            live_s = plan.live_days * 86_400
            task = progress.add_task(
                f"live {plan.live_first} .. {plan.last} (Modbus, DL/T 645)", total=live_s
            )
            if has_command("edge", "run"):
                sim_start = _local_midnight(plan.live_first).isoformat()
                anchor = time.time() + 8.0
                clock_args = [
                    "--sim-start",
                    sim_start,
                    "--speed",
                    f"{plan.speed:g}",
                    "--anchor",
                    f"{anchor:.3f}",
                ]
                modbus_port = free_port()
                dlt645_port = free_port()  # b1's DL/T 645 tenant sub-meters, behind a TCP gateway
                site = work / "site.yaml"
                (work / "outbox.sqlite").unlink(missing_ok=True)
                sim = ChildProcess(
                    "simulator",
                    [
                        EPCWATCH,
                        "sim",
                        "serve",
                        "--port",
                        str(modbus_port),
                        "--dlt645-port",
                        str(dlt645_port),
                        *clock_args,
                        "--update-s",
                        "300",
                        "--site-config",
                        str(site),
                        "--mqtt-port",
                        str(mosq.port),
                        "--poll-interval",
                        f"{plan.poll_interval_s:g}",
                        "--seed",
                        str(plan.seed),
                    ],
                    logs_dir / "simulator.log",
                ).start()
                children.append(sim)
                sim.wait_log("serving", 120)
                # the live messages wait behind the history in the collector's queue (minutes, at the
                # start): a resend after the default 60 s would be stored twice, and the verifier
                # reports a message received twice as a replay
                sign_site_config(site, key_file, signer.heads, ack_timeout_s=900.0)
                # the agent's first poll is due at once: start it just before the anchor, so it
                # lands in the last minutes of the history (same model, same counters)
                lead = min(0.5, 0.5 * plan.interval_s / plan.speed)  # after the history's last reading
                while time.time() < anchor - lead:
                    sim.check()
                    time.sleep(0.1)
                edge = ChildProcess(
                    "edge agent",
                    [EPCWATCH, "edge", "run", "--config", str(site), *clock_args],
                    logs_dir / "edge.log",
                ).start()
                children.append(edge)
                end_wall = anchor + (live_s + 0.5 * plan.poll_interval_s) / plan.speed
                next_count = 0.0
                while time.time() < end_wall:
                    sim.check()
                    edge.check()
                    collector.check()
                    progress.update(
                        task, completed=min(live_s, max(0.0, (time.time() - anchor) * plan.speed))
                    )
                    if time.monotonic() >= next_count:  # the history's progress, every few seconds
                        stored()
                        next_count = time.monotonic() + 5.0
                    time.sleep(0.5)
                progress.update(task, completed=live_s)
                wait_until(stored, 1800, "the collector to store the history", [collector, edge])
                # the devices go quiet (the simulator stops), then the agent's outbox drains
                sim.stop()
                status_file = work / "status.json"

                def drained() -> bool:
                    try:
                        h = json.loads(status_file.read_text())["health"]
                    except (OSError, ValueError, KeyError):
                        return False
                    return bool(h["outbox_depth"] == 0 and h["published"] > 0)

                wait_until(drained, 300, "the edge agent's outbox to drain", [edge])
                edge.stop()
                l0 = int(_local_midnight(plan.live_first).timestamp() * 1000)
                l1 = int(_local_midnight(plan.last + dt.timedelta(days=2)).timestamp() * 1000)
                last_count = [-1]

                def settled() -> bool:
                    n = count_readings(influx.url, l0, l1)
                    done = n == last_count[0] and n > 0
                    last_count[0] = n
                    return done

                wait_until(settled, 300, "the live readings to reach InfluxDB", [collector])
                result.update(live_readings=last_count[0], site_config=str(site))
            else:
                wait_until(stored, 1800, "the collector to store the history", [collector])
                result.update(live_readings=0)
                progress.update(
                    task, description="live: skipped ('edge run' not installed)", completed=live_s
                )
            lap("live stretch", t0)
            collector.stop()

            # 5. interval energy: computed at ingest; the days where fast history and the live
            # stretch meet are recomputed from the stored readings (the two paths overlap by a
            # few minutes there), which is what `collector rollup` is for: backfill and repair
            t0 = time.monotonic()
            task = progress.add_task("collector rollup (live stretch)", total=1)
            out = run_step(
                "collector rollup",
                [
                    EPCWATCH,
                    "collector",
                    "rollup",
                    "--config",
                    str(work / "collector.yaml"),
                    "--from",
                    _local_midnight(plan.live_first - dt.timedelta(days=1)).isoformat(),
                    "--to",
                    _local_midnight(plan.last + dt.timedelta(days=1)).isoformat(),
                ],
                logs_dir / "rollup.log",
            )
            result["rollup"] = out.strip().splitlines()[-1] if out.strip() else ""
            progress.update(task, completed=1)
            lap("rollup", t0)

            # provenance: the live stretch and the day before it (where the live agent's chains
            # continue the signed history) checked against the site's public key alone, in the
            # background while step 6 runs (each mostly waits on InfluxDB or computes on its own)
            since = max(plan.first, plan.live_first - dt.timedelta(days=1))
            verifying = (
                background.submit(run_verify, influx.url, keyring, since, plan.last, logs_dir / "verify.log")
                if has_command("verify")
                else None
            )

            # 6. truth, dashboards, savings ---------------------------------------------------------------
            t0 = time.monotonic()
            task = progress.add_task("truth, dashboards, M&V report", total=3)
            truth = work / "truth.csv"
            daily_truth(plan.first, plan.last, seed=plan.seed).to_csv(truth, index=False, float_format="%.6f")
            result["truth"] = str(truth)
            progress.advance(task)
            if has_command("dashboards", "build"):
                dash = work / "dashboards"
                run_step(
                    "dashboards build",
                    [EPCWATCH, "dashboards", "build", "--out", str(dash)],
                    logs_dir / "dashboards.log",
                )
                result["dashboards"] = str(dash)
            progress.advance(task)
            covers = plan.first <= CONTRACT_YEARS[0] and plan.last >= CONTRACT_YEARS[1]
            if not covers:
                result["report_skipped"] = (
                    "the simulated days do not cover the contract's baseline and reporting years"
                )
            elif has_command("savings", "report") and contract.exists():
                report = work / "report"
                out = run_step(
                    "savings report",
                    [
                        EPCWATCH,
                        "savings",
                        "report",
                        "--contract",
                        str(contract),
                        "--influx-url",
                        influx.url,
                        "--keyring",
                        str(keyring),
                        "--out",
                        str(report),
                    ],
                    logs_dir / "savings.log",
                )
                result["report"] = str(report)
                lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
                verified = [ln for ln in lines if ln.endswith("kWh verified") or "verified (not" in ln]
                result["verified_share"] = verified[-1] if verified else ""
                lines = [ln for ln in lines if ln not in verified]
                result["savings"] = lines[-1] if lines else ""
                result["true_savings"] = true_savings(contract, truth)
            progress.advance(task)
            lap("reports", t0)

            # 7. provenance (started before step 6, beside it): the M&V report checks the contract
            # meters' readings over both of its periods; verify waits for its result here
            t0 = time.monotonic()
            if verifying is not None:
                result["verify"] = verify_summary(verifying.result())
                result["verify_from"] = since.isoformat()
            lap("verify", t0)
    finally:
        for c in reversed(children):
            c.stop()
    plan.timings["total"] = round(time.monotonic() - started, 1)
    result["timings"] = plan.timings
    _summary(console, plan, result)
    return result


def _summary(console: object, plan: Plan, r: dict[str, object]) -> None:
    from rich.console import Console

    assert isinstance(console, Console)

    def p(*args: object, **kw: object) -> None:
        console.print(*args, soft_wrap=True, **kw)  # type: ignore[arg-type]

    p()
    p(
        f"[bold]Demo done in {plan.timings['total'] / 60:.1f} min[/bold] "
        f"({plan.first} .. {plan.last}; retrofits installed 2025-01-01)"
    )
    p(
        f"  fast history : {r.get('history_readings', 0):,} readings ({plan.first} .. {plan.history_last}, "
        f"every {plan.interval_s // 60} min) via MQTT -> collector -> InfluxDB"
        + (f"; stored {r['history_stored_s']:g} s into the live stretch" if "history_stored_s" in r else "")
    )
    p(
        f"  live stretch : {r.get('live_readings', 0):,} readings ({plan.live_first} .. {plan.last}) via "
        f"Modbus + DL/T 645 -> edge -> MQTT -> collector -> InfluxDB at {plan.speed:g}x"
    )
    p(f"  InfluxDB     : {r.get('influx')}  (database epcwatch, InfluxQL), e.g.")
    for q in EXAMPLE_QUERIES:
        p(
            f'      curl -G {r.get("influx")}/query --data-urlencode db=epcwatch --data-urlencode "q={q}"',
            markup=False,
            highlight=False,
        )
    p(f"  MQTT         : {r.get('mqtt')}  (topics epc/v1/{SITE}/+/telemetry)")
    p(f"  true savings : {r.get('truth')}  (actual vs counterfactual kWh per meter per day)")
    if "dashboards" in r:
        p(f"  dashboards   : {r['dashboards']}  (Grafana provisioning)")
    if "report" in r:
        p(f"  M&V report   : {r['report']}/report.html")
        if r.get("savings"):
            p(f"  M&V result   : {r['savings']}")
        if r.get("verified_share"):
            p(f"  M&V evidence : {r['verified_share']} (readings signed at the edge)")
        if r.get("true_savings") is not None:
            p(f"  true savings of the contract's meters (simulator): {r['true_savings']:,.0f} kWh")
    if "verify" in r:
        p(
            f"  provenance   : epcwatch verify {r['verify']} ({r.get('verify_from')} .. {plan.last}); "
            f"keyring {r.get('keyring')}"
        )
    if "report_skipped" in r:
        p(f"  M&V report   : skipped: {r['report_skipped']}")
    p(f"  logs         : {r.get('work')}/logs")
    p("  timings (s)  : " + ", ".join(f"{k} {v:g}" for k, v in plan.timings.items()))
    sd = f" --state-dir {r['state_dir']}" if r.get("state_dir") else ""
    p(f"  services stay up; stop them with: .venv/bin/epcwatch services down{sd}")


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        *,
        state_dir: Annotated[
            Path | None,
            typer.Option(
                "--state-dir",
                help="services and demo files (default: env EPCWATCH_STATE_DIR or ~/.local/state/epcwatch)",
            ),
        ] = None,
        from_: Annotated[
            str, typer.Option("--from", help="first simulated day (baseline year start)")
        ] = "2024-01-01",
        to: Annotated[
            str, typer.Option("--to", help="last simulated day (reporting year end)")
        ] = "2025-12-31",
        live_days: Annotated[int, typer.Option(help="last days run live through Modbus -> edge -> MQTT")] = 2,
        speed: Annotated[
            float, typer.Option(help="simulated seconds per wall second in the live stretch")
        ] = 1440.0,
        interval: Annotated[int, typer.Option(help="seconds between fast-history readings")] = 900,
        poll_interval: Annotated[
            float, typer.Option(help="edge poll interval in the live stretch (sim s)")
        ] = 900.0,
        seed: Annotated[int, typer.Option(help="seed of the simulated weather and noise")] = 0,
        mqtt_port: Annotated[
            int, typer.Option(help="Mosquitto port when the demo starts it")
        ] = DEFAULT_MQTT_PORT,
        influx_port: Annotated[
            int, typer.Option(help="InfluxDB port when the demo starts it")
        ] = DEFAULT_INFLUX_PORT,
    ) -> None:
        """Run the whole system on the simulated office complex (a baseline and a reporting year)."""
        try:
            first, last = dt.date.fromisoformat(from_), dt.date.fromisoformat(to)
        except ValueError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        if last < first or live_days < 1 or (last - first).days + 1 <= live_days:
            typer.secho("error: need --from before --to and more days than --live-days", fg="red", err=True)
            raise typer.Exit(2)
        plan = Plan(first, last, live_days, speed, interval, poll_interval, seed, mqtt_port, influx_port)
        try:
            run_demo(plan, state_dir)
        except EpcwatchError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
