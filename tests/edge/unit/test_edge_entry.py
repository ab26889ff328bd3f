"""``epcwatch-edge`` (``python -m epcwatch.edge``): the agent's own entry point has the edge
commands and keeps the heavy libraries of the other components out of the agent process."""

from __future__ import annotations

import subprocess
import sys

#: cryptography too: it loads only for a site that signs its readings (provenance)
HEAVY = ("numpy", "pandas", "scipy", "matplotlib", "rich", "pymodbus", "influxdb_client", "cryptography")


def test_the_agent_entry_point_imports_no_heavy_library() -> None:
    code = (
        "import sys; import epcwatch.edge.__main__, epcwatch.edge.agent, epcwatch.edge.profile_plan; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""


def test_the_agent_entry_point_has_the_edge_commands() -> None:
    cmd = [sys.executable, "-m", "epcwatch.edge", "--help"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    for command in ("read", "run", "status"):
        assert command in out.stdout
