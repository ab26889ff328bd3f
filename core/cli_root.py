"""What the ``epcwatch`` command and the edge agent's ``epcwatch-edge`` share at their root: the
global options (``--log-level``, ``--log-json``, ``--version``) and the wrapper that runs a
command line (Ctrl-C exits 130; a project error a command did not handle is one line on stderr
and exit 2; anything else is a bug and keeps its traceback).

Light on purpose (typer and the logging setup only): the edge agent's process imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer

from epcwatch import __version__, logs
from epcwatch.errors import EpcwatchError


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


def root_options(
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
    log_json: Annotated[bool, typer.Option("--log-json", help="log one JSON object per line")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", help="print the version and exit", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    """The root callback: sets up logging before any command runs."""
    logs.setup(log_level, log_json)


def add_root_options(app: typer.Typer) -> None:
    """Give ``app`` the shared global options."""
    app.callback()(root_options)


def run(app: Callable[[], object]) -> None:
    """Run a command line (a :class:`typer.Typer`) with the shared error handling."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except EpcwatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
