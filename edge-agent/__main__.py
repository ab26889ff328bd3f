"""``epcwatch-edge`` (or ``python -m epcwatch.edge``): the edge agent's own commands.

The same ``read``, ``run`` and ``status`` as ``epcwatch edge …``, without the other components'
commands, so the process an edge box runs for months imports only what the agent needs (no
numpy, pandas or rich at run time): its resident memory is the agent's, not the
whole tool's (docs/edge.md "CPU and memory").
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from epcwatch import __version__, logs

app = typer.Typer(
    name="epcwatch-edge",
    help="Edge agent: read a Modbus device, run the agent, show a running agent's status.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


def _register() -> None:
    from epcwatch.edge import runtime_cli

    runtime_cli.register(app, app)


_register()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
