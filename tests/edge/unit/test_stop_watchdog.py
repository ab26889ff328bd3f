"""A graceful stop that hangs ends in a hard exit (committed readings are safe in the outbox)."""

from __future__ import annotations

import subprocess
import sys


def test_watchdog_exits_a_hung_stop() -> None:
    code = (
        "from epcwatch import logs; logs.setup('info')\n"
        "from epcwatch.edge.runtime_cli import _arm_stop_watchdog\n"
        "import threading\n"
        "_arm_stop_watchdog(0.2)\n"
        "threading.Event().wait()  # a stop that never finishes\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 70
    assert "graceful stop did not finish" in done.stderr
