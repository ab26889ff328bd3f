"""The uplink against the reference receiver, with interval energy in a real InfluxDB:
every 15-minute value of a reporting window arrives once; a receiver outage and a SIGKILL of
the uplink lose nothing and store nothing twice; a wrong key is refused with a clear error."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from epcwatch.clock import ManualClock
from epcwatch.devservices.services import Influxd, free_port
from epcwatch.influx import InfluxClient
from epcwatch.uplink.codec import Cipher, Codec, FrameFormat
from epcwatch.uplink.cursor import Cursor
from epcwatch.uplink.receiver import ReferenceReceiver, Store
from epcwatch.uplink.service import Uplink
from epcwatch.uplink.settings import UplinkConfig
from epcwatch.uplink.source import InfluxSource
from tests.support import Child, spawn, wait_for

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Asia/Shanghai")
START = int(datetime(2025, 3, 3, tzinfo=TZ).timestamp() * 1000)
Q = 900_000
AUTH, AES = "auth-key-of-b1", "0123456789abcdef"


def value(device: str, t: int) -> float:
    """A simulated 15-minute energy (kWh), different in every period and meter."""
    k = (t - START) // Q
    return round((12.0 if device == "b1-main" else 3.0) + (k % 17) * 0.25, 2)


def write_quarters(client: InfluxClient, n: int) -> None:
    lines = [
        f"energy_interval,site=civic-centre,device={d},interval=15m "
        f"energy_import={value(d, t)},coverage=1 {t}"
        for d in ("b1-main", "b1-light")
        for t in range(START, START + n * Q, Q)
    ]
    client.write(lines)


def config(influx_url: str, database: str, port: int, state: Path, **over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "platform": {"host": "127.0.0.1", "port": port, "answer_timeout_s": 10},
        "building_id": "510100A001",
        "gateway_id": "01",
        "auth_key": {"value": AUTH},
        "aes_key": {"value": AES},
        "heartbeat_s": 300,
        "delay_s": 60,
        "start": datetime.fromtimestamp(START / 1000, TZ).isoformat(),
        "state_dir": str(state),
        "backoff_max_s": 120,
        "influx": {"url": influx_url, "database": database},
        "meters": [
            {
                "id": "1",
                "site": "civic-centre",
                "device": "b1-main",
                "functions": [{"id": "1", "field": "energy_import", "coding": "01000"}],
            },
            {
                "id": "2",
                "site": "civic-centre",
                "device": "b1-light",
                "functions": [{"id": "1", "field": "energy_import", "coding": "01A00"}],
            },
        ],
    }
    doc.update(over)
    return doc


def stored(db: Path) -> dict[tuple[str, str], float]:
    con = sqlite3.connect(db)
    try:
        return {(m, t): v for m, t, v in con.execute("SELECT meter, time, value FROM readings")}
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def expected(n: int) -> dict[tuple[str, str], float]:
    out = {}
    for t in range(START, START + n * Q, Q):
        stamp = datetime.fromtimestamp(t / 1000, TZ).strftime("%Y%m%d%H%M%S")
        out[("1", stamp)] = value("b1-main", t)
        out[("2", stamp)] = value("b1-light", t)
    return out


def test_every_quarter_of_a_day_arrives_as_report(influxdb: Influxd, database: str, tmp_path: Path) -> None:
    client = InfluxClient(influxdb.url, database)
    write_quarters(client, 96)
    cfg = UplinkConfig.model_validate(config(influxdb.url, database, 1, tmp_path / "state"))

    async def main() -> tuple[Uplink, ReferenceReceiver]:
        store = Store(tmp_path / "rx.sqlite")
        rx = ReferenceReceiver(store, Codec(Cipher(AES.encode())), AUTH)
        port = await rx.start()
        c = cfg.model_copy(update={"platform": cfg.platform.model_copy(update={"port": port})})
        clock = ManualClock(START / 1000)
        up = Uplink(
            c,
            clock,
            InfluxSource(client, c.meters),
            Cursor(tmp_path / "state" / "c.sqlite"),
            start_ms=START,
            until_ms=START + 96 * Q,
        )
        await asyncio.wait_for(up.run(asyncio.Event()), 120)
        await rx.stop()
        store.close()
        return up, rx

    up, rx = asyncio.run(main())
    assert stored(tmp_path / "rx.sqlite") == expected(96)
    assert (up.counters.reports, up.counters.continuous, up.counters.errors) == (96, 0, 0)
    assert up.counters.heartbeats > 0 and rx.rejected == 0
    con = sqlite3.connect(tmp_path / "rx.sqlite")
    codings = dict(con.execute("SELECT DISTINCT meter, coding FROM readings"))
    assert codings == {"1": "01000", "2": "01A00"}
    con.close()


def run_wrong(cfg: UplinkConfig, rx_auth: str, rx_aes: str, tmp_path: Path) -> tuple[Uplink, Path]:
    async def main() -> Uplink:
        store = Store(tmp_path / "rx.sqlite")
        rx = ReferenceReceiver(store, Codec(Cipher(rx_aes.encode())), rx_auth)
        port = await rx.start()
        c = cfg.model_copy(update={"platform": cfg.platform.model_copy(update={"port": port})})
        up = Uplink(
            c, ManualClock(START / 1000 + 86_400), _NoData(), Cursor(tmp_path / "c.sqlite"), start_ms=START
        )
        stop = asyncio.Event()
        task = asyncio.create_task(up.run(stop))
        while up.counters.errors < 3:  # retried with backoff, never crashed
            assert not task.done(), task
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 10)
        await rx.stop()
        store.close()
        return up

    return asyncio.run(main()), tmp_path / "rx.sqlite"


class _NoData:
    def fetch(self, start_ms: int, end_ms: int) -> dict[int, dict[tuple[str, str], float]]:
        return {}


def test_wrong_auth_key_is_refused_clearly(tmp_path: Path) -> None:
    cfg = UplinkConfig.model_validate(config("http://127.0.0.1:1", "x", 1, tmp_path))
    up, db = run_wrong(cfg, "another-key", AES, tmp_path)
    assert "refused the login" in up.counters.last_error
    assert "authentication key differs" in up.counters.last_error
    assert up.counters.logins == 0 and stored(db) == {}
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*), sum(ok) FROM logins").fetchone()[0] >= 3
    con.close()


def test_wrong_aes_key_is_a_clear_error(tmp_path: Path) -> None:
    cfg = UplinkConfig.model_validate(config("http://127.0.0.1:1", "x", 1, tmp_path))
    up, db = run_wrong(cfg, AUTH, "fedcba9876543210", tmp_path)
    assert "check aes_key" in up.counters.last_error
    assert up.counters.logins == 0 and stored(db) == {}


@pytest.mark.slow
def test_outage_and_sigkill_lose_nothing_and_duplicate_nothing(
    influxdb: Influxd, database: str, tmp_path: Path, children: list[Child]
) -> None:
    n = 24  # six hours of quarters; at 1800x one quarter passes every 0.5 s
    write_quarters(InfluxClient(influxdb.url, database), n)
    port = free_port()
    cfg_path = tmp_path / "uplink.yaml"
    cfg_path.write_text(
        yaml.safe_dump(config(influxdb.url, database, port, tmp_path / "state")), encoding="utf-8"
    )
    db = tmp_path / "rx.sqlite"
    env = {"EPCWATCH_UPLINK_AUTH_KEY": AUTH, "EPCWATCH_UPLINK_AES_KEY": AES}

    def receiver() -> Child:
        c = spawn(["uplink", "receiver", "--db", str(db), "--port", str(port)], tmp_path, env)
        children.append(c)
        c.wait_for("receiver listening", 30)
        return c

    anchor = time.time() + 1.0
    until = datetime.fromtimestamp((START + n * Q) / 1000, TZ).isoformat()
    clock = [
        "--sim-start",
        datetime.fromtimestamp(START / 1000, TZ).isoformat(),
        "--speed",
        "1800",
        "--anchor",
        str(anchor),
    ]

    def uplink() -> Child:
        c = spawn(["uplink", "run", "--config", str(cfg_path), "--until", until, *clock], tmp_path)
        children.append(c)
        return c

    def quarters() -> int:
        return len({t for _, t in stored(db)})

    rx = receiver()
    up = uplink()
    wait_for(lambda: quarters() >= 4, 60, "four quarters stored", [up])
    rx.stop()  # the platform goes away for about three simulated hours
    time.sleep(3.0)
    at_outage_end = quarters()
    rx = receiver()
    wait_for(lambda: quarters() >= at_outage_end + 6, 60, "catching up after the outage", [up])
    os.kill(up.proc.pid, signal.SIGKILL)
    up.proc.wait(10)
    up = uplink()  # same clock, same cursor
    wait_for(lambda: up.proc.poll() is not None, 120, "the uplink to finish the window")
    assert up.proc.returncode == 0, "".join(up.output)

    got = stored(db)
    assert got == expected(n)  # nothing missing, every value as measured
    con = sqlite3.connect(db)
    per = con.execute("SELECT meter, time, count(*) FROM readings GROUP BY meter, time").fetchall()
    assert len(per) == 2 * n and all(c == 1 for *_, c in per)
    ops = dict(con.execute("SELECT operation, count(*) FROM arrivals GROUP BY operation").fetchall())
    received, new = con.execute("SELECT sum(values_received), sum(values_new) FROM arrivals").fetchone()
    con.close()
    assert ops.get("continuous", 0) >= 1, ops  # the outage was caught up with continuous messages
    assert new == 2 * n
    # a SIGKILL between the platform's ack and the cursor commit resends one period (2 values) at
    # most; the platform recognises it by its sequence and stores it once
    assert received - new <= 2


def test_demo_command_uploads_a_day(influxdb: Influxd, database: str, tmp_path: Path) -> None:
    import subprocess

    from tests.support import EPCWATCH

    write_quarters(InfluxClient(influxdb.url, database), 96)
    r = subprocess.run(
        [
            EPCWATCH,
            "uplink",
            "demo",
            "--day",
            "2025-03-03",
            "--buildings",
            "b1",
            "--influx-url",
            influxdb.url,
            "--database",
            database,
            "--state",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "uplink: 96 report messages acknowledged" in r.stdout
    assert "meter b1-main function 1: 96 periods 20250303000000..20250303234500" in r.stdout
    got = {(m, t): v for (m, t), v in stored(tmp_path / "demo" / "received.sqlite").items() if v is not None}
    assert got == {(("b1-main" if m == "1" else "b1-light"), t): v for (m, t), v in expected(96).items()}


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (FrameFormat().encode(bytes(range(32))), "platform answer does not decrypt"),
        (
            FrameFormat().encode(b"hello")[:-1] + b"X",
            "malformed answer from the platform: frame tail missing",
        ),
        (b"not a frame at all", "no identity sequence"),
        ("heart_beat", "malformed answer from the platform: expected id_validate sequence, got time"),
    ],
)
def test_malformed_answers_are_clear_errors_and_retried(
    tmp_path: Path, answer: bytes | str, error: str
) -> None:
    """A platform answering garbage, an undecryptable frame or the wrong message."""
    from epcwatch.uplink.codec import HeartBeat, Message

    codec = Codec(Cipher(AES.encode()))

    async def main() -> Uplink:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(65536)
            if answer == "heart_beat":
                writer.write(
                    codec.encode(Message("510100A001", "01", HeartBeat("time", time="20250303000000")))
                )
            else:
                assert isinstance(answer, bytes)
                writer.write(answer)
            await writer.drain()
            await reader.read(65536)  # until the uplink gives up and closes
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        raw = config("http://127.0.0.1:1", "x", port, tmp_path)
        raw["platform"] = {"host": "127.0.0.1", "port": port, "answer_timeout_s": 0.3}
        cfg = UplinkConfig.model_validate(raw)
        up = Uplink(cfg, ManualClock(START / 1000), _NoData(), Cursor(tmp_path / "c.sqlite"), start_ms=START)
        stop = asyncio.Event()
        task = asyncio.create_task(up.run(stop))
        while up.counters.errors < 2:
            assert not task.done(), task
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 10)
        server.close()
        await server.wait_closed()
        return up

    up = asyncio.run(main())
    assert error in up.counters.last_error
    assert up.counters.logins == 0
