"""``epcwatch sim …``: the simulated office complex on the command line."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from epcwatch.errors import EpcwatchError

sim_app = typer.Typer(
    help="Simulated office complex: serve its devices over Modbus, export its truth, publish history.",
    no_args_is_help=True,
)

#: the one-device spine mode: an Eastron SDM630 carrying a tenant meter's load
SDM630_ALIAS = "sdm630"
SDM630_SOURCE = "b1-t-finance"

SimStart = Annotated[
    str | None,
    typer.Option(help="simulated time at the anchor, ISO 8601 (naive = UTC); shared with the edge agent"),
]
Speed = Annotated[float, typer.Option(help="simulated seconds per wall-clock second")]
Anchor = Annotated[
    float | None, typer.Option(help="wall-clock epoch seconds at which simulated time = --sim-start [now]")
]
Seed = Annotated[int, typer.Option(help="seed of the synthetic weather and noise")]


def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {msg}", fg="red", err=True)
    return typer.Exit(code)


def _date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _fail(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None


@sim_app.command("devices")
def devices_cmd(seed: Seed = 0) -> None:
    """List the complex's devices: unit id when served together, kind, profile and tags."""
    from rich.console import Console
    from rich.table import Table

    from epcwatch.sim.spec import demo_complex

    spec = demo_complex(seed)
    table = Table("unit", "device", "kind", "profile", "building", "category", "item code", "tenant")
    for i, d in enumerate(spec.devices()):
        table.add_row(
            str(i + 1), d.id, d.kind, d.profile, d.building or "", d.category or "", d.item_code or "",
            d.tenant or "",
        )  # fmt: skip
    Console().print(table)


@sim_app.command("truth")
def truth_cmd(
    *,
    from_: Annotated[str, typer.Option("--from", help="first site-local day, YYYY-MM-DD")],
    to: Annotated[str, typer.Option("--to", help="last site-local day (inclusive), YYYY-MM-DD")],
    out: Annotated[Path, typer.Option(help="CSV file to write")],
    seed: Seed = 0,
) -> None:
    """Export actual, counterfactual (no retrofit) and saved kWh per meter per site-local day."""
    from epcwatch.sim.truth import daily_truth

    first, last = _date(from_, "--from"), _date(to, "--to")
    if last < first:
        raise _fail("--to is before --from")
    df = daily_truth(first, last, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False, float_format="%.6f")
    total = df.groupby("device")[["actual_kwh", "counterfactual_kwh", "savings_kwh"]].sum()
    mains = total[total.index.str.endswith("-main")]
    typer.echo(
        f"wrote {len(df)} rows ({df['date'].nunique()} days x {df['device'].nunique()} meters) to {out}"
    )
    for dev, row in mains.iterrows():
        typer.echo(
            f"  {dev:10s} actual {row.actual_kwh:14,.0f} kWh"
            f"  counterfactual {row.counterfactual_kwh:14,.0f} kWh  savings {row.savings_kwh:12,.0f} kWh"
        )


def site_yaml(
    served: list[dict[str, Any]],
    *,
    site: str,
    host: str,
    port: int,
    mqtt_host: str,
    mqtt_port: int,
    poll_interval_s: float,
    outbox: str,
    rtu_port: str | None = None,
    dlt645: list[dict[str, Any]] | None = None,
    dlt645_port: int | None = None,
) -> str:
    """An edge ``site.yaml`` polling exactly what ``sim serve`` serves (``dlt645``: the meters
    served on the DL/T 645 gateway at ``dlt645_port``, as ``{device, address, profile}``)."""
    import yaml

    from epcwatch.sim.spec import demo_complex

    spec = demo_complex()
    by_id = {d.id: d for d in spec.devices()}
    bus: dict[str, Any] = (
        {"type": "rtu", "id": "sim", "port": rtu_port, "baud": 19200}
        if rtu_port
        else {"type": "tcp", "id": "sim", "host": host, "port": port, "max_concurrency": 4}
    )

    def tags_of(device_id: str) -> dict[str, str]:
        d = by_id.get(device_id)
        tags: dict[str, str] = {}
        if d is not None:
            for k in ("building", "floor", "category", "tenant", "item_code"):
                v = getattr(d, k)
                if v is not None:
                    tags[k] = v
        return tags

    devices = [
        {
            "id": s["device"],
            "bus": "sim",
            "unit": s["unit"],
            "profile": s["profile"],
            "tags": tags_of(s["source"]),
            "poll_interval_s": poll_interval_s,
            "timeout_s": 2.0,
        }
        for s in served
    ]
    buses = [bus]
    if dlt645:
        buses.append(
            {"type": "dlt645_tcp", "id": "sim645", "host": host, "port": dlt645_port, "inter_frame_gap_ms": 0}
        )
        devices += [
            {
                "id": m["device"],
                "bus": "sim645",
                "address": m["address"],
                "profile": m["profile"],
                "tags": tags_of(m["device"]),
                "poll_interval_s": poll_interval_s,
                "timeout_s": 2.0,
            }
            for m in dlt645
        ]
    doc = {
        "site": site,
        "agent": "sim-edge",
        "buses": buses,
        "devices": devices,
        "mqtt": {"host": mqtt_host, "port": mqtt_port, "protocol": "5", "client_id": f"epcwatch-edge-{site}"},
        "outbox": {"path": outbox},
        "health": {"interval_s": 2},
    }
    return yaml.safe_dump(doc, sort_keys=False)


@sim_app.command("serve")
def serve_cmd(
    *,
    port: Annotated[
        int, typer.Option(help="Modbus TCP port on the host (one gateway, unit ids 1..N)")
    ] = 1502,
    host: Annotated[str, typer.Option(help="address to listen on (loopback by default)")] = "127.0.0.1",
    device: Annotated[
        list[str] | None,
        typer.Option(
            help=f"serve only this device (repeatable); '{SDM630_ALIAS}' serves one Eastron SDM630 "
            f"carrying {SDM630_SOURCE}'s load"
        ),
    ] = None,
    unit: Annotated[int, typer.Option(help="unit id of the first served device")] = 1,
    rtu: Annotated[
        bool, typer.Option(help="Modbus RTU on a socat pseudo-terminal pair instead of TCP")
    ] = False,
    baud: Annotated[int, typer.Option(help="RTU baud rate")] = 19200,
    sim_start: SimStart = None,
    speed: Speed = 1.0,
    anchor: Anchor = None,
    update_s: Annotated[
        float | None, typer.Option(help="simulated seconds between register refreshes [60; 1 with --device]")
    ] = None,
    served_log: Annotated[Path | None, typer.Option(help="append every served image as a JSON line")] = None,
    site_config: Annotated[
        Path | None, typer.Option(help="also write an edge site.yaml that polls what is served")
    ] = None,
    mqtt_host: Annotated[str, typer.Option(help="broker for the written site.yaml")] = "127.0.0.1",
    mqtt_port: Annotated[int, typer.Option(help="broker port for the written site.yaml")] = 11883,
    poll_interval: Annotated[float, typer.Option(help="poll interval (simulated s) in the site.yaml")] = 60.0,
    dlt645_port: Annotated[
        int | None,
        typer.Option(
            help="serve the DL/T 645 meters (those whose profile is DL/T 645: the tenant meters of "
            "b1) on a transparent gateway at this TCP port"
        ),
    ] = None,
    dlt645_building: Annotated[
        str | None,
        typer.Option(help="also serve this building's tenant meters over DL/T 645 (with --dlt645-port)"),
    ] = None,
    dlt645_profile: Annotated[
        str, typer.Option(help="DL/T 645 profile of the --dlt645-building meters")
    ] = "chint-dtsu666-dlt645",
    seed: Seed = 0,
) -> None:
    """Serve the complex's devices over Modbus with values from the model at the simulated time
    (and, with --dlt645-port, its DL/T 645 meters on a transparent TCP gateway)."""
    import asyncio
    import dataclasses

    from epcwatch.clock import AcceleratedClock, build_clock
    from epcwatch.sim.ledger import Counters
    from epcwatch.sim.model import ComplexModel
    from epcwatch.sim.serve import ImageContext, SiteImages, describe, rtu_server, run_servers, served_devices
    from epcwatch.sim.spec import Device, demo_complex

    try:
        clock = build_clock(sim_start, speed, anchor)
    except EpcwatchError as exc:
        raise _fail(str(exc)) from None
    spec = demo_complex(seed)
    now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
    origin = spec.counter_origin
    if now.date() < origin or (now.date() - origin).days > 800:
        # counters start at local midnight of the simulated day when the clock is far from the
        # demo years (wall time), so start-up does not integrate years of history first
        spec = dataclasses.replace(spec, counter_origin=now.date() - dt.timedelta(days=1))
    model = ComplexModel(spec)
    chosen: list[Device] | None = None
    if device:
        chosen = []
        for name in device:
            if name == SDM630_ALIAS:
                src = model.device(SDM630_SOURCE)
                chosen.append(dataclasses.replace(src, id=SDM630_ALIAS, profile="eastron-sdm630"))
            else:
                try:
                    chosen.append(model.device(name))
                except KeyError:
                    raise _fail(f"no device {name!r}; see 'epcwatch sim devices'") from None
    from epcwatch.profiles.dlt645_profile import is_dlt645_profile

    pool = chosen if chosen is not None else model.devices
    # meters whose model profile is DL/T 645 (a building with dlt645_tenants), and with
    # --dlt645-building that building's tenant meters speaking --dlt645-profile
    dlt_devices = [d for d in pool if is_dlt645_profile(d.profile)]
    if dlt645_building is not None:
        if dlt645_port is None:
            raise _fail("--dlt645-building needs --dlt645-port")
        moved = [
            dataclasses.replace(d, profile=dlt645_profile)
            for d in pool
            if d.role == "tenant" and d.building == dlt645_building
        ]
        if not moved:
            raise _fail(f"building {dlt645_building!r} has no tenant meters; see 'epcwatch sim devices'")
        ids = {d.id for d in moved}
        dlt_devices = [d for d in dlt_devices if d.id not in ids] + moved
    dlt_ids = {d.id for d in dlt_devices}
    chosen = [d for d in pool if d.id not in dlt_ids]
    if dlt645_port is None and dlt_devices:
        typer.echo(
            f"left out {len(dlt_devices)} DL/T 645 meter(s) ({', '.join(sorted(dlt_ids))}): "
            "give --dlt645-port to put them on a gateway",
            err=True,
        )
        dlt_devices = []
    served = served_devices(model, chosen, first_unit=unit)
    if not served and not dlt_devices:
        raise _fail("nothing to serve")
    source = {sd.unit: SDM630_SOURCE for sd in served if sd.device.id == SDM630_ALIAS}
    log_file = served_log.open("a") if served_log else None
    images = SiteImages(
        model=model,
        counters=Counters(model),
        devices=served,
        clock=clock,
        update_s=update_s if update_s is not None else (1.0 if device else 60.0),
        served_log=log_file,
        source=source,
        extra=tuple(d.id for d in dlt_devices),
    )
    if served:
        images.values(served[0].unit)  # integrate the counters up to now before answering anyone
    context = ImageContext(images)
    dlt_slave = None
    dlt_served: list[dict[str, Any]] = []
    if dlt_devices:
        from epcwatch.profiles.dlt645 import address_text
        from epcwatch.profiles.dlt645_profile import load_dlt645_profile
        from epcwatch.profiles.model import ProfileError
        from epcwatch.sim.dlt645 import Dlt645Meter, Dlt645Slave

        try:
            dprofs = {p: load_dlt645_profile(p) for p in sorted({d.profile for d in dlt_devices})}
        except ProfileError as exc:
            raise _fail(str(exc)) from None
        from epcwatch.sim.values import for_profile

        def source_of(device_id: str, names: set[str]) -> Any:
            # the Modbus images' instant and model evaluation, shared (one evaluation per instant)
            return lambda: for_profile(images.model_values(device_id), names)

        images.model_values(dlt_devices[0].id)  # integrate the counters up to now
        meters = [
            Dlt645Meter(
                address_text(i + 1),
                dprofs[d.profile],
                source_of(d.id, {p.name for p in dprofs[d.profile].points}),
            )
            for i, d in enumerate(dlt_devices)
        ]
        dlt_slave = Dlt645Slave(meters)
        dlt_served = [
            {"device": d.id, "address": m.address, "profile": d.profile}
            for d, m in zip(dlt_devices, meters, strict=True)
        ]
    tmp = Path(tempfile.mkdtemp(prefix="epcwatch-sim-"))
    socat: subprocess.Popen[bytes] | None = None
    edge_port: str | None = None
    sim_pty: Path | None = None
    if rtu:
        socat, sim_pty, edge_pty = _pty_pair(tmp)
        edge_port = str(edge_pty)

    def make_servers() -> list[Any]:  # pymodbus servers must be created inside the event loop
        from epcwatch.sim.serve import tcp_server

        return (
            [rtu_server(context, str(sim_pty), baud)]
            if sim_pty is not None
            else [tcp_server(context, host, port)]
        )

    if site_config is not None:
        site_config.write_text(
            site_yaml(
                describe(images),
                site=spec.site,
                host=host,
                port=port,
                mqtt_host=mqtt_host,
                mqtt_port=mqtt_port,
                poll_interval_s=poll_interval,
                outbox=str(site_config.parent / "outbox.sqlite"),
                rtu_port=edge_port,
                dlt645=dlt_served,
                dlt645_port=dlt645_port,
            )
        )

    def ready() -> None:
        where = f"RTU on {edge_port} ({baud} baud, 8N1)" if rtu else f"Modbus TCP on {host}:{port}"
        typer.echo(f"serving {len(served)} device(s), {where}")
        for s in describe(images):
            typer.echo(f"  unit {s['unit']:3d}  {s['device']:16s} {s['profile']}")
        if dlt_served:
            typer.echo(f"and {len(dlt_served)} DL/T 645 meter(s) on a gateway at {host}:{dlt645_port}")
            for m in dlt_served:
                typer.echo(f"  address {m['address']}  {m['device']:16s} {m['profile']}")
        if isinstance(clock, AcceleratedClock):
            typer.echo(f"clock: --sim-start {sim_start} --speed {clock.speed:g} --anchor {clock.anchor:.3f}")
        sys.stdout.flush()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        dlt_server = None
        if dlt_slave is not None:
            from epcwatch.sim.dlt645 import serve_tcp

            dlt_server = await serve_tcp(dlt_slave, host, int(dlt645_port or 0))
        try:
            await run_servers(make_servers(), stop, ready)
        finally:
            if dlt_server is not None:
                dlt_server.close()

    try:
        asyncio.run(main())
    finally:
        if socat is not None:
            socat.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                socat.wait(5)
        if log_file is not None:
            log_file.close()
        shutil.rmtree(tmp, ignore_errors=True)


@sim_app.command("serve-dlt645")
def serve_dlt645_cmd(
    *,
    port: Annotated[int, typer.Option(help="TCP port of the simulated transparent gateway")] = 8899,
    host: Annotated[str, typer.Option(help="address to listen on (loopback by default)")] = "127.0.0.1",
    pty: Annotated[
        bool, typer.Option(help="serve on a socat pseudo-terminal pair (an RS-485 line) instead of TCP")
    ] = False,
    baud: Annotated[int, typer.Option(help="serial baud rate (with --pty)")] = 2400,
    device: Annotated[
        list[str] | None, typer.Option(help="serve this device (repeatable) [every tenant sub-meter]")
    ] = None,
    profile: Annotated[str, typer.Option(help="DL/T 645 profile every served meter speaks")] = (
        "chint-dtsu666-dlt645"
    ),
    first_address: Annotated[int, typer.Option(help="address of the first meter (then +1 each)")] = 1,
    sim_start: SimStart = None,
    speed: Speed = 1.0,
    anchor: Anchor = None,
    update_s: Annotated[float, typer.Option(help="simulated seconds between value refreshes")] = 60.0,
    seed: Seed = 0,
) -> None:
    """Serve the complex's meters as DL/T 645 meters (a transparent gateway on TCP, or a pty line)."""
    import asyncio
    import dataclasses

    from epcwatch.clock import build_clock
    from epcwatch.profiles.dlt645 import address_text
    from epcwatch.profiles.dlt645_profile import load_dlt645_profile
    from epcwatch.profiles.model import ProfileError
    from epcwatch.sim.dlt645 import Dlt645Meter, Dlt645Slave, ModelValues, serve_serial, serve_tcp
    from epcwatch.sim.ledger import Counters
    from epcwatch.sim.model import ComplexModel
    from epcwatch.sim.spec import demo_complex

    try:
        clock = build_clock(sim_start, speed, anchor)
        prof = load_dlt645_profile(profile)
    except (ValueError, ProfileError) as exc:
        raise _fail(str(exc)) from None
    spec = demo_complex(seed)
    now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
    if now.date() < spec.counter_origin or (now.date() - spec.counter_origin).days > 800:
        spec = dataclasses.replace(spec, counter_origin=now.date() - dt.timedelta(days=1))
    model = ComplexModel(spec)
    try:
        chosen = (
            [model.device(d) for d in device] if device else [d for d in model.devices if d.role == "tenant"]
        )
    except KeyError as exc:
        raise _fail(f"no device {exc}; see 'epcwatch sim devices'") from None
    values = ModelValues(model, Counters(model), chosen, clock, update_s)
    values.at_instant()  # integrate the counters up to now before answering anyone
    meters = [
        Dlt645Meter(address_text(first_address + i), prof, values.source(d.id, prof))
        for i, d in enumerate(chosen)
    ]
    slave = Dlt645Slave(meters)
    tmp = Path(tempfile.mkdtemp(prefix="epcwatch-sim-"))
    socat: subprocess.Popen[bytes] | None = None
    edge_pty: Path | None = None
    sim_pty: Path | None = None
    if pty:
        socat, sim_pty, edge_pty = _pty_pair(tmp)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if sim_pty is not None:
            close = await serve_serial(slave, str(sim_pty), baud)
            where = f"DL/T 645 on {edge_pty} ({baud} baud, 8E1)"
        else:
            server = await serve_tcp(slave, host, port)
            close = server.close
            where = f"DL/T 645 gateway on {host}:{port}"
        typer.echo(f"serving {len(meters)} meter(s) ({prof.id}), {where}")
        for m, d in zip(meters, chosen, strict=True):
            typer.echo(f"  address {m.address}  {d.id}")
        sys.stdout.flush()
        try:
            await stop.wait()
        finally:
            close()

    try:
        asyncio.run(main())
    finally:
        if socat is not None:
            socat.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                socat.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


def _pty_pair(tmp: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """A socat pseudo-terminal pair: the simulator serves one end, the edge opens the other."""
    exe = shutil.which("socat")
    if exe is None:
        raise _fail("socat not found: install the Debian package 'socat' (or run scripts/install.sh)", 1)
    a, b = tmp / "sim-pty", tmp / "edge-pty"
    proc = subprocess.Popen(
        [exe, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (a.exists() and b.exists()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise _fail("socat did not create the pseudo-terminal pair", 1)
        time.sleep(0.05)
    return proc, Path(os.path.realpath(a)), Path(os.path.realpath(b))


@sim_app.command("history")
def history_cmd(
    *,
    from_: Annotated[str, typer.Option("--from", help="first site-local day, YYYY-MM-DD")],
    to: Annotated[str, typer.Option("--to", help="last site-local day (inclusive), YYYY-MM-DD")],
    interval: Annotated[int, typer.Option(help="seconds between readings (multiple of 60)")] = 900,
    mqtt_host: Annotated[str, typer.Option(help="broker host")] = "127.0.0.1",
    mqtt_port: Annotated[int | None, typer.Option(help="broker port [the one 'services up' started]")] = None,
    device: Annotated[list[str] | None, typer.Option(help="only this device (repeatable)")] = None,
    seed: Seed = 0,
) -> None:
    """Publish a period's readings computed straight from the model (no Modbus), as telemetry."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from epcwatch.sim.history import (
        PublishError,
        history_batches,
        profile_points,
        profile_quantizers,
        publish,
    )
    from epcwatch.sim.model import ComplexModel
    from epcwatch.sim.spec import demo_complex

    first, last = _date(from_, "--from"), _date(to, "--to")
    if last < first:
        raise _fail("--to is before --from")
    if interval <= 0 or interval % 60:
        raise _fail("--interval must be a positive multiple of 60")
    if mqtt_port is None:
        from epcwatch.local import load_ports

        mqtt_port = load_ports().mqtt
    model = ComplexModel(demo_complex(seed))
    chosen = None
    if device:
        try:
            chosen = [model.device(d) for d in device]
        except KeyError as exc:
            raise _fail(f"{exc.args[0]}; see 'epcwatch sim devices'") from None
    names = profile_points(model, chosen)
    days = (last - first).days + 1
    with Progress(
        TextColumn("history"), BarColumn(), MofNCompleteColumn(), TextColumn("days"), TimeElapsedColumn()
    ) as progress:
        task = progress.add_task("history", total=days)
        per_day = 86_400 // interval
        n_dev = len(chosen) if chosen is not None else len(model.devices)

        def step(b: Any) -> None:
            progress.advance(task, b.readings / (per_day * n_dev))

        try:
            msgs, readings = publish(
                history_batches(
                    model,
                    first,
                    last,
                    interval_s=interval,
                    point_names=names,
                    quantizers=profile_quantizers(model, chosen),
                    devices=chosen,
                ),
                mqtt_host,
                mqtt_port,
                on_batch=step,
            )
        except PublishError as exc:
            raise _fail(str(exc)) from None
    typer.echo(f"published {readings} readings in {msgs} messages to {mqtt_host}:{mqtt_port}")


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")
