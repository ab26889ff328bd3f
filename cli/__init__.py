"""The ``epcwatch`` command line. Each component registers its own commands.

The components' commands are registered when ``app`` is first used (``from epcwatch.cli import
app`` or :func:`main`), and each command imports its heavy libraries (numpy, pandas, pydantic,
rich, …) when it runs, so ``epcwatch --version`` and ``--help`` start fast.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Annotated

import typer

from epcwatch import __version__
from epcwatch.cli_root import add_root_options, run


def _new_app() -> typer.Typer:
    app = typer.Typer(
        name="epcwatch",
        help="Building energy monitoring for energy-performance contracts.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        # the top-level help in plain text: rich (and the markdown parser it pulls in) would double
        # the start-up of `epcwatch --help`; the commands' own help keeps rich formatting
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    add_root_options(app)
    app.command("schema")(schema)
    return app


def schema(
    model: Annotated[
        str | None,
        typer.Argument(help="a wire model (TelemetryMessage, HealthMessage, Ack …); all if omitted"),
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


_app = _new_app()


COMPONENTS = (
    "epcwatch.devservices.cli",
    "epcwatch.edge.cli",
    "epcwatch.collector.cli",
    "epcwatch.sim.cli",
    "epcwatch.savings.cli",
    "epcwatch.dashboards.cli",
    "epcwatch.reporting.cli",
    "epcwatch.uplink.cli",
    "epcwatch.broker.cli",
    "epcwatch.demo.run",
    "epcwatch.verify.cli",
)

#: the components a top-level command needs: ``epcwatch savings fit`` builds the savings commands
#: only, not the other ten components' (their imports are a tenth of a second of a fresh process);
#: a name not listed here (``--help``, a typo) loads them all
ROUTES: dict[str, tuple[str, ...]] = {
    "services": ("epcwatch.devservices.cli",),
    "edge": ("epcwatch.edge.cli",),
    "profiles": ("epcwatch.edge.cli",),  # registered by the edge component
    "collector": ("epcwatch.collector.cli",),
    "sim": ("epcwatch.sim.cli",),
    "savings": ("epcwatch.savings.cli",),
    "dashboards": ("epcwatch.dashboards.cli",),
    "stats": ("epcwatch.dashboards.cli", "epcwatch.reporting.cli"),
    "reporting": ("epcwatch.reporting.cli",),
    "uplink": ("epcwatch.uplink.cli",),
    "security": ("epcwatch.broker.cli",),
    "demo": ("epcwatch.demo.run",),
    "verify": ("epcwatch.verify.cli",),
}

#: the top-level commands as ``epcwatch --help`` lists them (commands, then groups, in the order
#: the components register them) with the first sentence of their help: the top-level help is
#: printed from this table without loading the components; a test checks it against them
SUMMARY: dict[str, str] = {
    "demo": "Run the whole system on the simulated office complex (a baseline and a reporting year).",
    "verify": "Check that the stored readings of a period are the ones the sites signed: report verified, "
    "altered, missing, unsigned, invalid and replayed readings per device.",
    "services": "Start, stop and inspect the local Mosquitto and InfluxDB.",
    "edge": "Edge agent: read, plan and poll Modbus devices; publish over MQTT.",
    "profiles": "The device profile library: list, show and validate register maps.",
    "collector": "Collector: MQTT → validation → InfluxDB, dead letters, interval energy.",
    "sim": "Simulated office complex: serve its devices over Modbus, export its truth, publish history.",
    "savings": "Measurement and verification: baselines, ASHRAE Guideline 14 statistics, savings, reports.",
    "dashboards": "Grafana dashboards as code: build the JSON, publish it, write building metadata.",
    "stats": "Energy statistics per site and building (no subcommand), or per institution (institutions).",
    "reporting": "Institution register, virtual meters and non-metered imports of the statistics report.",
    "uplink": "Upload interval energy to the energy-monitoring platform (XML over TCP, MD5 login, AES).",
    "security": "MQTT credentials per site and per collector, a lab CA, and a lab broker config.",
}
_COMMANDS = ("demo", "verify")  # commands; the others are groups


def _summary_app() -> typer.Typer:
    """An app that only lists the top-level commands (for ``epcwatch --help``)."""
    app = _new_app()

    def stub() -> None:  # pragma: no cover - never run: only listed
        raise typer.Exit(2)

    for name, text in SUMMARY.items():
        if name in _COMMANDS:
            app.command(name, help=text)(stub)
        else:
            app.add_typer(typer.Typer(), name=name, help=text)
    return app


_registered: set[str] = set()


def _load_components(names: tuple[str, ...] = COMPONENTS) -> typer.Typer:
    for name in names:
        if name in _registered:
            continue
        _registered.add(name)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a component not built yet
            if exc.name != name:
                raise
            continue
        module.register(_app)
    return _app


def _route(argv: list[str]) -> tuple[str, ...]:
    """The components the command line in ``argv`` (without the program name) needs."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--log-level":
            skip = True
        elif not arg.startswith("-"):
            return ROUTES.get(arg, COMPONENTS)
    return COMPONENTS


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        return _load_components()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Run the CLI. A project error (:class:`epcwatch.errors.EpcwatchError`) that a command did
    not handle is shown as one line and exits 2; anything else is a bug and keeps its traceback
    (:func:`epcwatch.cli_root.run`, shared with ``epcwatch-edge``)."""
    if sys.argv[1:] == ["--version"]:  # answered before the components load
        print(__version__)
        return
    # one BLAS thread unless the user says otherwise: the M&V designs are small (≤ 8,784 × 180),
    # where OpenBLAS's second thread gains little on a quiet machine and, on a busy one, spins
    # against the other processes (a TOWT fit took 7.1 s with two threads, 1.5 s with one, at
    # load 5 on 2 cores); set before numpy loads, in the commands that use it
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # the one a caller put in place as the module's ``app``, else ours with the components the
    # command needs
    target: typer.Typer | None = globals().get("app")
    if target is None:
        if sys.argv[1:] in ([], ["--help"], ["-h"]):
            target = _summary_app()
        else:
            target = _load_components(_route(sys.argv[1:]))
    run(target)
