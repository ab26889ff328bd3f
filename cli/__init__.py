"""The ``epcwatch`` command line. Each component registers its own commands.

The components' commands are registered when ``app`` is first used (``from epcwatch.cli import
app`` or :func:`main`), and each command imports its heavy libraries (numpy, pandas, pydantic,
rich, …) when it runs, so ``epcwatch --version`` and ``--help`` start fast.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Annotated

import typer

from epcwatch import __version__
from epcwatch.cli_root import add_root_options, run

_app = typer.Typer(
    name="epcwatch",
    help="Building energy monitoring for energy-performance contracts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # the top-level help in plain text: rich (and the markdown parser it pulls in) would double
    # the start-up of `epcwatch --help`; the commands' own help keeps rich formatting
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

add_root_options(_app)


@_app.command("schema")
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

_registered = False


def _load_components() -> typer.Typer:
    global _registered
    if not _registered:
        _registered = True
        for name in COMPONENTS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:  # a component not built yet
                if exc.name != name:
                    raise
                continue
            module.register(_app)
    return _app


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
    # through the module attribute: ``app`` loads the components on first use (or is the one a
    # caller put in its place)
    run(sys.modules[__name__].app)
