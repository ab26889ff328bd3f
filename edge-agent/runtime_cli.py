"""``epcwatch edge read | run | status``: commission a meter, run the agent, inspect a running one."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from epcwatch import logs, measurements
from epcwatch.config import ConfigError
from epcwatch.edge.errors import EdgeError
from epcwatch.errors import EpcwatchError
from epcwatch.procs import pid_alive

log = logging.getLogger(__name__)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


def _plan(profile: str) -> Any:
    from epcwatch.edge.profile_plan import device_plan

    try:
        return device_plan(profile)
    except EpcwatchError as exc:
        raise _fail(f"profile {profile!r}: {exc}") from None


def read_cmd(
    *,
    profile: Annotated[str, typer.Option(help="profile id (see `epcwatch profiles list`) or YAML path")],
    host: Annotated[str | None, typer.Option(help="Modbus TCP device, or gateway address")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 502; 8899 for DL/T 645)")] = None,
    unit: Annotated[int, typer.Option(help="Modbus unit (slave) id")] = 1,
    address: Annotated[
        str | None,
        typer.Option(help="DL/T 645 meter address, 12 digits; without it the one meter on the line is asked"),
    ] = None,
    serial: Annotated[str | None, typer.Option(help="serial port (RS-485), e.g. /dev/ttyUSB0")] = None,
    baud: Annotated[int | None, typer.Option(help="baud rate (default 9600; 2400 for DL/T 645)")] = None,
    parity: Annotated[str | None, typer.Option(help="parity N, E or O (default N; E for DL/T 645)")] = None,
    stop_bits: Annotated[int, typer.Option(help="serial stop bits: 1 or 2")] = 1,
    rtu_over_tcp: Annotated[
        bool, typer.Option("--rtu-over-tcp", help="--host is a serial converter passing raw RTU frames")
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 1.0,
    retries: Annotated[int, typer.Option(help="extra attempts per read after a timeout")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object: name → value")] = False,
    partial_ok: Annotated[
        bool, typer.Option("--partial-ok", help="exit 0 when some points could be read but not all")
    ] = False,
) -> None:
    """Read a device once and print its decoded values (commissioning a meter).

    Modbus: --host (TCP) or --serial (RTU) with --unit. DL/T 645 (a DL/T 645 profile): --host of a
    transparent serial-over-TCP gateway or --serial, with --address; without --address the
    meter's address is read first with the wildcard address (one meter on the line only).

    Modbus reads the device refuses as a whole (exception 2, illegal data address, e.g. a bridged
    gap outside its register map) are split to find its holes, so every readable point is read.
    Exits 1 when any point of the profile has no value (the reasons go to stderr), unless
    --partial-ok and at least one point was read.
    """
    import asyncio

    from pydantic import ValidationError

    from epcwatch.edge.poller import poll_learning
    from epcwatch.edge.site import AnyBus, Dlt645SerialBus, Dlt645TcpBus, RtuBus, RtuOverTcpBus, TcpBus
    from epcwatch.edge.transport import ModbusTransport, transport_for_bus

    if (host is None) == (serial is None):
        raise _fail("give either --host (TCP) or --serial (RS-485)", 2)
    plan = _plan(profile)
    is_dlt645 = plan.protocol == "dlt645"
    if address is not None and not is_dlt645:
        raise _fail(f"--address is for DL/T 645 meters; {plan.profile} is a Modbus profile (use --unit)", 2)
    try:
        bus: AnyBus
        if serial is not None:
            line = {
                "id": "cli",
                "port": serial,
                "baud": baud or (2400 if is_dlt645 else 9600),
                "parity": parity or ("E" if is_dlt645 else "N"),
                "stop_bits": stop_bits,
            }
            if is_dlt645:
                bus = Dlt645SerialBus.model_validate({"type": "dlt645_serial", **line})
            else:
                bus = RtuBus.model_validate({"type": "rtu", **line})
        elif is_dlt645:
            bus = Dlt645TcpBus(type="dlt645_tcp", id="cli", host=str(host), port=port or 8899)
        elif rtu_over_tcp:
            bus = RtuOverTcpBus(type="rtu_over_tcp", id="cli", host=str(host), port=port or 502)
        else:
            bus = TcpBus(type="tcp", id="cli", host=str(host), port=port or 502)
    except ValidationError as exc:
        raise _fail(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), 2
        ) from None
    target = unit
    if address is not None:
        from epcwatch.profiles import dlt645

        try:
            target = dlt645.address_number(address)
        except dlt645.Dlt645Error as exc:
            raise _fail(f"--address: {exc}", 2) from None

    async def main() -> Any:
        nonlocal target, address
        transport: ModbusTransport
        if isinstance(bus, Dlt645SerialBus | Dlt645TcpBus):
            from epcwatch.edge.dlt645_bus import Dlt645Transport
            from epcwatch.profiles import dlt645

            dlt = Dlt645Transport.for_bus(bus)
            transport = dlt
            if address is None:
                try:
                    address = await dlt.discover(timeout)
                except EdgeError:
                    await dlt.close()
                    raise
                target = dlt645.address_number(address)
        else:
            transport = transport_for_bus(bus)
        try:
            return await poll_learning(transport, plan, target, timeout, retries)
        finally:
            await transport.close()

    try:
        outcome, plan = asyncio.run(main())
    except EdgeError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(outcome.values, sort_keys=True))
    else:
        from rich.console import Console
        from rich.table import Table

        who = f"meter {address}" if is_dlt645 else f"unit {unit}"
        table = Table(title=f"{plan.profile} {who}: {outcome.quality}, {outcome.latency_s * 1000:.0f} ms")
        table.add_column("measurement")
        table.add_column("value", justify="right")
        table.add_column("unit")
        for name, value in outcome.values.items():
            m = measurements.VOCABULARY.get(name)
            table.add_row(name, str(value), m.unit if m else "")
        Console().print(table)
    if is_dlt645 and address is not None:
        typer.secho(f"meter address {address}", err=True)
    if plan.holes:
        typer.secho(
            "note: the device refuses registers "
            + ", ".join(str(h) for h in sorted(plan.holes))
            + " (exception 2); read around them",
            fg="yellow",
            err=True,
        )
    total = len(outcome.values) + len(outcome.failures)
    if outcome.failures:
        colour = "yellow" if partial_ok else "red"
        typer.secho(f"{len(outcome.failures)} of {total} points failed:", fg=colour, err=True)
        for name, why in sorted(outcome.failures.items()):
            typer.secho(f"  {name}: {why}", err=True)
    elif outcome.error:
        typer.secho(f"warning: {outcome.error}", fg="yellow", err=True)
    if not outcome.ok or (outcome.failures and not partial_ok):
        raise typer.Exit(1)


def _arm_stop_watchdog(timeout: float) -> None:
    """Exit hard if a graceful stop hangs (a wedged network thread, a device that never answers).

    The hang once seen came from ``asyncio.wait_for`` on Python 3.11, which swallows a cancel
    arriving in the loop iteration where the awaited event fires: the forwarder's loop (and a
    poller's connect) ran on after SIGTERM. They use ``asyncio.timeout`` now; this stays as the
    safety net.

    Nothing is lost by it: every polled reading was committed to the outbox before it could be
    published, so a hard exit is the same as the SIGKILL the agent is built to survive; it only
    saves systemd's (or an operator's) stop timeout from waiting on us.
    """

    def hard_exit() -> None:
        log.error("graceful stop did not finish; exiting", extra=logs.fields(timeout_s=timeout))
        logging.shutdown()
        os._exit(70)

    timer = threading.Timer(timeout, hard_exit)
    timer.daemon = True
    timer.start()


def run_cmd(
    *,
    config: Annotated[Path, typer.Option("--config", "-c", help="site.yaml")],
    sim_start: Annotated[
        str | None, typer.Option(help="simulated time at the anchor, ISO 8601 (shared with the simulator)")
    ] = None,
    speed: Annotated[float, typer.Option(help="simulated seconds per wall second")] = 1.0,
    anchor: Annotated[
        float | None, typer.Option(help="wall-clock epoch seconds at which simulated time = --sim-start")
    ] = None,
    check: Annotated[
        bool,
        typer.Option("--check", help="validate the site file and its profiles (not secrets), then exit"),
    ] = False,
    stop_timeout: Annotated[
        float,
        typer.Option(
            help="seconds a graceful stop may take after SIGTERM/SIGINT before the agent exits hard"
        ),
    ] = 30.0,
) -> None:
    """Run the edge agent: poll every device on its interval, store, publish (QoS 1) until stopped."""
    import asyncio

    from epcwatch.clock import build_clock
    from epcwatch.edge.agent import Agent
    from epcwatch.edge.site import load_site, resolve_password

    try:
        cfg = load_site(config)
        # --check validates files only; secrets are read by the running agent (its user may be
        # the only one allowed to read them)
        password = None if check else resolve_password(cfg, config)
        clock = build_clock(sim_start, speed, anchor)
    except ConfigError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(2) from None
    except EpcwatchError as exc:
        raise _fail(str(exc), 2) from None
    logs.redact(password)
    plans = {}
    by_profile: dict[str, Any] = {}  # one plan per profile, shared by its devices (start-up, memory)
    for d in cfg.devices:
        if d.enabled:
            key = str(d.profile)
            if key not in by_profile:
                by_profile[key] = _plan(key)
            plans[d.id] = by_profile[key]
    if check:
        from epcwatch.edge.agent import check_protocols

        try:
            check_protocols(cfg, plans)
        except EdgeError as exc:
            raise _fail(str(exc), 2) from None
        reads = sum(len(p.reads) for p in plans.values())
        typer.echo(
            f"{config}: site {cfg.site}, {len(plans)} devices, {len(cfg.buses)} buses, {reads} reads/cycle"
        )
        return

    async def main() -> None:
        try:
            agent = Agent(cfg, plans, clock, password=password)
        except EdgeError as exc:
            raise _fail(str(exc)) from None
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if task is not None:
                task.cancel()
            _arm_stop_watchdog(stop_timeout)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop)
        with contextlib.suppress(asyncio.CancelledError):
            await agent.run()

    asyncio.run(main())


def status_cmd(
    *,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="site.yaml of the agent")] = None,
    status_file: Annotated[
        Path | None, typer.Option(help="status file (default: from the site config)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the health document as JSON")] = False,
    max_age: Annotated[float, typer.Option(help="seconds after which a status is stale")] = 120.0,
) -> None:
    """Print the health of a running agent; exit 1 if it is not running or its status is stale."""
    from epcwatch.edge.health import read_status_file
    from epcwatch.edge.site import load_site

    if status_file is None:
        if config is None:
            raise _fail("give --config site.yaml or --status-file PATH", 2)
        try:
            status_file = load_site(config).status_file()
        except ConfigError as exc:
            typer.secho(str(exc), fg="red", err=True)
            raise typer.Exit(2) from None
    try:
        doc = read_status_file(status_file)
    except (OSError, ValueError) as exc:
        raise _fail(f"no agent status at {status_file}: {exc}") from None
    age = time.time() - float(doc.get("written", 0))
    pid = int(doc.get("pid", 0))
    alive = pid > 0 and pid_alive(pid)
    if as_json:
        typer.echo(json.dumps({**doc, "age_s": round(age, 1), "running": alive}, indent=2))
    else:
        _print_status(doc, age, alive)
    if not alive or age > max_age:
        raise typer.Exit(1)


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.0f} s"


def _print_status(doc: dict[str, Any], age: float, alive: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    h = doc["health"]
    state = "running" if alive else "NOT RUNNING"
    console = Console()
    console.print(
        f"agent {h['agent']} site {h['site']}: {state} (pid {doc.get('pid')}), status {age:.0f} s old, "
        f"uptime {h['uptime_s']:.0f} s, mqtt {'connected' if h['connected'] else 'DISCONNECTED'}"
    )
    console.print(
        f"outbox: {h['outbox_depth']} readings, {h['outbox_bytes']} bytes, "
        f"{doc.get('outbox_in_flight', 0)} messages in flight, "
        f"{h.get('outbox_unacked', 0)} readings awaiting acknowledgement, "
        f"oldest {_age(h.get('outbox_oldest_age_s'))}, "
        f"{h['outbox_dropped']} dropped/refused; published {h['published']} readings"
    )
    table = Table()
    cols = ("device", "online", "polls ok", "failed", "consecutive", "bad frames / error replies",
            "latency ms", "last error")
    for col in cols:
        table.add_column(col)
    for d in h["devices"]:
        table.add_row(
            d["device"],
            "yes" if d["online"] else "NO",
            str(d["polls_ok"]),
            str(d["polls_failed"]),
            str(d["consecutive_failures"]),
            f"{d.get('frame_errors', 0)} / {d.get('error_replies', 0)}",
            "" if d.get("last_latency_ms") is None else f"{d['last_latency_ms']:.1f}",
            d.get("last_error") or "",
        )
    console.print(table)
    for d in h["devices"]:
        if d.get("read_holes") or d.get("refused_points"):
            never = d.get("refused_points")
            console.print(
                f"{d['device']}: refuses registers {', '.join(d.get('read_holes') or [])} (learned, read "
                "around them)" + (f"; points never read: {', '.join(never)}" if never else "")
            )


def register(app: typer.Typer, edge_app: typer.Typer) -> None:
    edge_app.command("read")(read_cmd)
    edge_app.command("run")(run_cmd)
    edge_app.command("status")(status_cmd)
