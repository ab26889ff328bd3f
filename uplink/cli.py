"""``epcwatch uplink run|receiver|show``."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from epcwatch.config import ConfigError

log = logging.getLogger("epcwatch.uplink")

uplink_app = typer.Typer(
    help="Upload interval energy to the energy-monitoring platform (XML over TCP, MD5 login, AES).",
    no_args_is_help=True,
)


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", fg="red", err=True)
    return typer.Exit(1)


def _ms(text: str | None) -> int | None:
    if text is None:
        return None
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


@uplink_app.command("run")
def run(
    config: Annotated[Path, typer.Option("--config", help="uplink.yaml")],
    until: Annotated[
        str | None,
        typer.Option("--until", help="stop once every period before this ISO time is acknowledged"),
    ] = None,
    sim_start: Annotated[
        str | None, typer.Option("--sim-start", help="simulated start time (ISO 8601)")
    ] = None,
    speed: Annotated[float, typer.Option("--speed", help="simulated seconds per wall second")] = 1.0,
    anchor: Annotated[
        float | None, typer.Option("--anchor", help="wall epoch seconds of --sim-start")
    ] = None,
) -> None:
    """Send each period's interval energy to the platform; catch up in order after an outage."""
    from epcwatch import logs
    from epcwatch.clock import build_clock
    from epcwatch.influx import InfluxClient
    from epcwatch.uplink.cursor import Cursor
    from epcwatch.uplink.service import Uplink, state_path
    from epcwatch.uplink.settings import load_uplink_config
    from epcwatch.uplink.source import InfluxSource

    try:
        cfg = load_uplink_config(config)
        clock = build_clock(sim_start, speed, anchor)
        for s in (cfg.auth_key, cfg.aes_key, cfg.aes_iv):
            if s is not None:
                logs.redact(s.resolve())
        ix = cfg.influx
        source = InfluxSource(InfluxClient(ix.url, ix.database, ix.username, ix.password), cfg.meters)
        cursor = Cursor(state_path(cfg, config.resolve().parent))
        uplink = Uplink(cfg, clock, source, cursor, start_ms=_ms(cfg.start), until_ms=_ms(until))
    except (ConfigError, ValueError) as exc:
        raise _fail(exc) from None

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        typer.echo(f"uplink {uplink.key} -> {cfg.platform.host}:{cfg.platform.port} started", err=True)
        await uplink.run(stop)

    asyncio.run(main())
    cursor.close()
    c = uplink.counters
    typer.echo(
        f"uplink stopped: {c.reports} report, {c.continuous} continuous acknowledged, "
        f"{c.heartbeats} heartbeats, {c.errors} errors"
    )


@uplink_app.command("receiver")
def receiver(  # noqa: PLR0917 - typer options
    db: Annotated[Path, typer.Option("--db", help="SQLite file the received values go into")],
    auth_key: Annotated[str, typer.Option("--auth-key", envvar="EPCWATCH_UPLINK_AUTH_KEY", help="login key")],
    aes_key: Annotated[
        str, typer.Option("--aes-key", envvar="EPCWATCH_UPLINK_AES_KEY", help="16-byte AES key")
    ],
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free one)")] = 0,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    aes_iv: Annotated[str | None, typer.Option("--aes-iv", help="AES IV (default: the key)")] = None,
    padding: Annotated[str, typer.Option("--padding", help="pkcs7 or zeros")] = "pkcs7",
) -> None:
    """The reference platform: verifies logins, decodes uploads and stores them (tests, demo)."""
    from epcwatch.uplink.codec import Cipher, Codec
    from epcwatch.uplink.receiver import ReferenceReceiver, Store

    if padding not in ("pkcs7", "zeros"):
        raise _fail(ValueError("--padding must be pkcs7 or zeros"))
    pad: Literal["pkcs7", "zeros"] = "pkcs7" if padding == "pkcs7" else "zeros"
    try:
        codec = Codec(Cipher(aes_key.encode(), aes_iv.encode() if aes_iv else None, pad))
    except ValueError as exc:
        raise _fail(exc) from None
    db.parent.mkdir(parents=True, exist_ok=True)
    store = Store(db)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        rx = ReferenceReceiver(store, codec, auth_key, host=host, port=port)
        bound = await rx.start()
        typer.echo(f"receiver listening on {host}:{bound}")
        await stop.wait()
        await rx.stop()

    asyncio.run(main())
    store.close()


@uplink_app.command("show")
def show(db: Annotated[Path, typer.Option("--db", help="the receiver's SQLite file")]) -> None:
    """What a receiver stored: values per meter and function, resends, logins."""
    con = sqlite3.connect(db)
    for b, g, m, f, n, t0, t1 in con.execute(
        "SELECT building, gateway, meter, function, count(*), min(time), max(time) FROM readings "
        "GROUP BY building, gateway, meter, function ORDER BY 1, 2, 3, 4"
    ):
        typer.echo(f"{b}/{g} meter {m} function {f}: {n} periods {t0}..{t1}")
    rec, new = con.execute(
        "SELECT coalesce(sum(values_received),0), coalesce(sum(values_new),0) FROM arrivals"
    ).fetchone()
    ok, bad = con.execute("SELECT coalesce(sum(ok),0), coalesce(sum(1-ok),0) FROM logins").fetchone()
    typer.echo(f"values received {rec}, stored {new}, resent {rec - new}; logins {ok} passed, {bad} refused")
    con.close()


#: the demo site's category sub-meters and their item codes (分项编码: 01000 electricity total,
#: 01A00 lighting and sockets, 01B00 HVAC, 01C00 power, 01D00 special use)
DEMO_ROLES = (
    ("main", "01000"),
    ("light", "01A00"),
    ("hvac", "01B00"),
    ("power", "01C00"),
    ("special", "01D00"),
)


@uplink_app.command("demo")
def demo(  # noqa: PLR0917 - typer options
    day: Annotated[str, typer.Option("--day", help="the local day to upload (YYYY-MM-DD)")] = "2025-03-03",
    site: Annotated[str, typer.Option("--site")] = "civic-centre",
    buildings: Annotated[str, typer.Option("--buildings", help="comma-separated building ids")] = "b1,b2,b3",
    influx_url: Annotated[
        str | None,
        typer.Option("--influx-url", envvar="EPCWATCH_INFLUX_URL", help="default: `epcwatch services up`'s"),
    ] = None,
    database: Annotated[str, typer.Option("--database", envvar="EPCWATCH_INFLUX_DATABASE")] = "epcwatch",
    state: Annotated[
        Path, typer.Option("--state", help="folder for the cursor and the receiver's store")
    ] = Path("uplink-demo"),
) -> None:
    """Upload one day of the demo's 15-minute energy to an in-process reference platform and show
    what it stored (run after `epcwatch demo`, with its InfluxDB still up)."""
    import secrets
    from zoneinfo import ZoneInfo

    from epcwatch.clock import ManualClock
    from epcwatch.influx import InfluxClient
    from epcwatch.local import load_ports
    from epcwatch.uplink.codec import Cipher, Codec
    from epcwatch.uplink.cursor import Cursor
    from epcwatch.uplink.receiver import ReferenceReceiver, Store
    from epcwatch.uplink.service import Uplink
    from epcwatch.uplink.settings import UplinkConfig
    from epcwatch.uplink.source import InfluxSource

    tz = ZoneInfo("Asia/Shanghai")
    try:
        start = datetime.fromisoformat(day).replace(tzinfo=tz)
    except ValueError as exc:
        raise _fail(exc) from None
    url = influx_url or load_ports().influx_url
    auth, aes = secrets.token_hex(8), secrets.token_hex(8)
    meters = [
        {
            "id": f"{b}-{role}",
            "site": site,
            "device": f"{b}-{role}",
            "functions": [{"id": "1", "field": "energy_import", "coding": code}],
        }
        for b in buildings.split(",")
        for role, code in DEMO_ROLES
    ]
    state.mkdir(parents=True, exist_ok=True)
    t0 = int(start.timestamp() * 1000)

    async def main() -> Uplink:
        store = Store(state / "received.sqlite")
        rx = ReferenceReceiver(store, Codec(Cipher(aes.encode())), auth)
        port = await rx.start()
        cfg = UplinkConfig.model_validate(
            {
                "platform": {"port": port},
                "building_id": "510100A001",
                "gateway_id": "01",
                "auth_key": {"value": auth},
                "aes_key": {"value": aes},
                "give_up_s": 0,
                "influx": {"url": url, "database": database},
                "meters": meters,
            }
        )
        up = Uplink(
            cfg,
            ManualClock(t0 / 1000),
            InfluxSource(InfluxClient(url, database), cfg.meters),
            Cursor(state / f"cursor-{secrets.token_hex(4)}.sqlite"),
            start_ms=t0,
            until_ms=t0 + 86_400_000,
        )
        await up.run(asyncio.Event())
        await rx.stop()
        store.close()
        return up

    up = asyncio.run(main())
    c = up.counters
    typer.echo(
        f"uplink: {c.reports} report messages acknowledged, {c.heartbeats} heartbeats, {c.errors} errors"
    )
    show(state / "received.sqlite")


def register(app: typer.Typer) -> None:
    app.add_typer(uplink_app, name="uplink")
