"""Command-line start-up stays light: the numeric, plotting, rich-text, model and TLS libraries
load inside the commands that use them, never when the CLI is imported (``--help`` and
``--version`` must not pay for them). Speed itself is measured in bench/cli.py."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import EPCWATCH

#: (asyncio, standard library and light, is still imported by the uplink commands' module)
HEAVY = ("numpy", "pandas", "scipy", "matplotlib", "rich", "pydantic", "yaml", "cryptography")


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    argv = [sys.executable, "-c", probe]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(res.stdout.strip().splitlines()[-1]))


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import epcwatch.cli") == []


def test_building_every_command_loads_no_heavy_library() -> None:
    # typer resolves every command's signature when it builds the tree (as for --help)
    code = "import typer.main, epcwatch.cli\ntyper.main.get_command(epcwatch.cli.app)"
    assert _loaded_after(code) == []


def test_version_answers_without_building_the_commands() -> None:
    from epcwatch import __version__

    res = subprocess.run([EPCWATCH, "--version"], capture_output=True, text=True, timeout=120, check=True)
    assert res.stdout.strip() == __version__
