"""``epcwatch edge …`` and ``epcwatch profiles …`` commands."""

from __future__ import annotations

import importlib

import typer

edge_app = typer.Typer(
    help="Edge agent: read, plan and poll Modbus devices; publish over MQTT.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(edge_app, name="edge")
    # profile commands (library, planner) and runtime commands (read, run, status) live in
    # their own modules; each adds itself to the root app and to the ``edge`` group
    for name in ("epcwatch.profiles.cli", "epcwatch.edge.runtime_cli"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(app, edge_app)
