"""The ``epcwatch`` command line. Each component registers its own commands."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from epcwatch import __version__, logs
from epcwatch.services import (
    DEFAULT_DATABASE,
    DEFAULT_INFLUX_PORT,
    DEFAULT_MQTT_PORT,
    Influxd,
    Mosquitto,
    ServiceError,
    default_state_dir,
)

app = typer.Typer(
    name="epcwatch",
    help="Building energy monitoring for energy-performance contracts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
services_app = typer.Typer(
    help="Start, stop and inspect the local Mosquitto and InfluxDB.", no_args_is_help=True
)
app.add_typer(services_app, name="services")

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="where configs, data, logs and PIDs live [env EPCWATCH_STATE_DIR]"),
]


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    log_json: Annotated[bool, typer.Option("--log-json", help="log one JSON object per line")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="print the version and exit", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    logs.setup(log_level, log_json)


def _services_file(state_dir: Path) -> Path:
    return state_dir / "services.json"


def load_services(state_dir: Path | None = None) -> tuple[Mosquitto, Influxd]:
    """The services as ``services up`` last started them (ports remembered in the state dir)."""
    sd = state_dir or default_state_dir()
    mqtt_port, influx_port = DEFAULT_MQTT_PORT, DEFAULT_INFLUX_PORT
    try:
        saved = json.loads(_services_file(sd).read_text())
        mqtt_port, influx_port = int(saved["mqtt_port"]), int(saved["influx_port"])
    except (OSError, ValueError, KeyError):
        pass
    return Mosquitto(state_dir=sd, port=mqtt_port), Influxd(state_dir=sd, port=influx_port)


def services_up(
    state_dir: Path | None = None,
    mqtt_port: int = DEFAULT_MQTT_PORT,
    influx_port: int = DEFAULT_INFLUX_PORT,
    database: str = DEFAULT_DATABASE,
) -> tuple[Mosquitto, Influxd]:
    sd = state_dir or default_state_dir()
    sd.mkdir(parents=True, exist_ok=True)
    old_mqtt, old_influx = load_services(sd)
    if old_mqtt.running() or old_influx.running():
        mqtt_port, influx_port = old_mqtt.port, old_influx.port
    mosq = Mosquitto(state_dir=sd, port=mqtt_port)
    influx = Influxd(state_dir=sd, port=influx_port, database=database)
    _services_file(sd).write_text(json.dumps({"mqtt_port": mqtt_port, "influx_port": influx_port}))
    mosq.start()
    influx.start()
    return mosq, influx


@services_app.command("up")
def up(
    state_dir: StateDir = None,
    mqtt_port: Annotated[int, typer.Option(help="Mosquitto port on 127.0.0.1")] = DEFAULT_MQTT_PORT,
    influx_port: Annotated[int, typer.Option(help="InfluxDB HTTP port on 127.0.0.1")] = DEFAULT_INFLUX_PORT,
    database: Annotated[str, typer.Option(help="InfluxDB database to create")] = DEFAULT_DATABASE,
) -> None:
    """Start Mosquitto and InfluxDB 1.x in the background and wait until both answer."""
    try:
        mosq, influx = services_up(state_dir, mqtt_port, influx_port, database)
    except ServiceError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"mosquitto  {mosq.url}  pid {mosq.pid()}  (config {mosq.dir / 'mosquitto.conf'})")
    typer.echo(f"influxdb   {influx.url}  pid {influx.pid()}  database {database}")


@services_app.command("down")
def down(state_dir: StateDir = None) -> None:
    """Stop the services started by ``services up`` (by PID)."""
    for svc in load_services(state_dir):
        typer.echo(f"{svc.name}: {'stopped' if svc.stop() else 'was not running'}")


@services_app.command("status")
def status(state_dir: StateDir = None) -> None:
    """Show whether each service runs and answers; exit 1 if one does not."""
    ok = True
    for svc in load_services(state_dir):
        pid = svc.pid()
        answering = pid is not None and svc.ready()
        ok &= answering
        state = "up" if answering else ("not answering" if pid else "down")
        typer.echo(f"{svc.name:10s} {state:14s} port {svc.port}  pid {pid or '-'}")
    if not ok:
        raise typer.Exit(1)


@app.command("schema")
def schema(
    model: Annotated[
        str | None,
        typer.Argument(help="TelemetryMessage, StatusMessage, HealthMessage or DeadLetter; all if omitted"),
    ] = None,
) -> None:
    """Print the JSON Schema of the wire contract."""
    from epcwatch.wire import json_schemas

    schemas = json_schemas()
    if model is not None:
        if model not in schemas:
            typer.secho(
                f"error: unknown model {model!r}; choose from {', '.join(schemas)}", fg="red", err=True
            )
            raise typer.Exit(2)
        typer.echo(json.dumps(schemas[model], indent=2))
    else:
        typer.echo(json.dumps(schemas, indent=2))


COMPONENTS = (
    "epcwatch.edge.cli",
    "epcwatch.collector.cli",
    "epcwatch.sim.cli",
    "epcwatch.savings.cli",
    "epcwatch.dashboards.cli",
    "epcwatch.security",
    "epcwatch.demo",
)

for _mod in COMPONENTS:
    try:
        _module = importlib.import_module(_mod)
    except ModuleNotFoundError as _exc:  # a component not built yet
        if _exc.name != _mod:
            raise
        continue
    _module.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
