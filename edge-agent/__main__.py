"""``epcwatch-edge`` (or ``python -m epcwatch.edge``): the edge agent's own commands.

The same ``read``, ``run`` and ``status`` as ``epcwatch edge …``, without the other components'
commands, so the process an edge box runs for months imports only what the agent needs (no
numpy, pandas or rich at run time): its resident memory is the agent's, not the
whole tool's (docs/edge.md "CPU and memory").
"""

from __future__ import annotations

import typer

from epcwatch import cli_root

app = typer.Typer(
    name="epcwatch-edge",
    help="Edge agent: read a Modbus device, run the agent, show a running agent's status.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# the same global options and error handling as ``epcwatch`` (--log-level, --log-json, --version;
# a project error is one line and exit 2)
cli_root.add_root_options(app)


def _register() -> None:
    from epcwatch.edge import runtime_cli

    runtime_cli.register(app, app)


_register()


def main() -> None:
    cli_root.run(app)


if __name__ == "__main__":
    main()
