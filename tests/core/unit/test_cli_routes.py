"""`epcwatch <command> …` builds only the components that command needs (cli.ROUTES): the table
must name every top-level command, and each route must build its command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer.main

from epcwatch import cli
from tests.support import EPCWATCH


def _top_level(app: typer.Typer) -> set[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.main.TyperGroup)
    return set(group.commands)


def test_every_top_level_command_has_a_route() -> None:
    names = _top_level(cli.app)  # all components
    assert names - {"schema"} == set(cli.ROUTES)


@pytest.mark.parametrize("command", sorted(cli.ROUTES))
def test_a_route_builds_its_command_alone(command: str) -> None:
    # a fresh interpreter: the routed components only, and the command among them
    probe = (
        "import json, typer.main\n"
        "from epcwatch import cli\n"
        f"app = cli._load_components(cli._route([{command!r}, '--help']))\n"
        "print(json.dumps(sorted(typer.main.get_command(app).commands)))"
    )
    res = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    built = set(json.loads(res.stdout.strip().splitlines()[-1]))
    assert command in built
    assert len(built) < len(cli.ROUTES)  # not everything


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["savings", "fit"], cli.ROUTES["savings"]),
        (["--log-level", "debug", "collector", "run"], cli.ROUTES["collector"]),
        (["--log-json", "stats", "institutions"], cli.ROUTES["stats"]),
        (["--help"], cli.COMPONENTS),
        ([], cli.COMPONENTS),
        (["no-such-command"], cli.COMPONENTS),
    ],
)
def test_route_reads_the_command_after_the_root_options(argv: list[str], expected: tuple[str, ...]) -> None:
    assert cli._route(argv) == expected


@pytest.mark.parametrize("columns", ["80", "200"])
def test_top_level_help_from_the_table_equals_the_components_own(columns: str) -> None:
    # `epcwatch --help` lists the commands from cli.SUMMARY without loading the components
    env = {**os.environ, "COLUMNS": columns}
    quick = subprocess.run(
        [EPCWATCH, "--help"], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    full = subprocess.run(
        [
            sys.executable,
            "-c",
            "from epcwatch import cli\n"
            "cli._load_components()\n"
            "cli._app(args=['--help'], prog_name='epcwatch')",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert quick.stdout == full.stdout
    assert "savings" in quick.stdout
    assert set(cli.SUMMARY) == set(cli.ROUTES)
