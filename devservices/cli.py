"""``epcwatch services up|down|status``: the local Mosquitto and InfluxDB for a lab or the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from epcwatch.devservices.services import Influxd, Mosquitto, ServiceError
from epcwatch.local import (
    DEFAULT_DATABASE,
    DEFAULT_INFLUX_PORT,
    DEFAULT_MQTT_PORT,
    LocalPorts,
    default_state_dir,
    load_ports,
    save_ports,
)

services_app = typer.Typer(
    help="Start, stop and inspect the local Mosquitto and InfluxDB.", no_args_is_help=True
)

StateDir = Annotated[
    Path | None,
    typer.Option("--state-dir", help="where configs, data, logs and PIDs live [env EPCWATCH_STATE_DIR]"),
]


def register(app: typer.Typer) -> None:
    app.add_typer(services_app, name="services")


def load_services(state_dir: Path | None = None) -> tuple[Mosquitto, Influxd]:
    """The services as ``services up`` last started them (ports remembered in the state dir)."""
    sd = state_dir or default_state_dir()
    ports = load_ports(sd)
    return Mosquitto(state_dir=sd, port=ports.mqtt), Influxd(state_dir=sd, port=ports.influx)


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
    save_ports(sd, LocalPorts(mqtt_port, influx_port))
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
        raise typer.Exit(2) from None
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
