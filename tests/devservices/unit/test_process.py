"""The one child-process class: started in its own session, logged, stopped by PID with
SIGTERM then SIGKILL, a premature exit reported with the log's last lines."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from epcwatch.devservices.errors import ChildExitedError, ServiceError
from epcwatch.devservices.process import ChildProcess
from epcwatch.errors import EpcwatchError

PY = sys.executable


def test_runs_logs_and_stops_with_sigterm(tmp_path: Path) -> None:
    script = (
        "import sys, time; print('ready', flush=True); print('oops', file=sys.stderr, flush=True); "
        "time.sleep(60)"
    )
    child = ChildProcess("sleeper", [PY, "-c", script], tmp_path / "logs" / "sleeper.log").start()
    try:
        child.wait_log("ready", 30)
        assert child.alive() and child.pid is not None
        assert child.start() is child and child.starts == 1  # a no-op while it runs
    finally:
        child.stop(timeout=10)
    assert not child.alive() and child.returncode == -signal.SIGTERM
    assert "oops" in child.tail()  # stderr goes to the same log


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); "
        "time.sleep(60)"
    )
    child = ChildProcess("stubborn", [PY, "-c", script], tmp_path / "stubborn.log").start()
    child.wait_log("up", 30)
    child.stop(timeout=0.5)
    assert child.returncode == -signal.SIGKILL


def test_an_early_exit_is_a_project_error_with_the_log(tmp_path: Path) -> None:
    child = ChildProcess(
        "crasher",
        [PY, "-c", "print('config broken'); raise SystemExit(3)"],
        tmp_path / "c.log",
        mark_starts=True,
    ).start()
    with pytest.raises(ChildExitedError, match=r"crasher exited with code 3(.|\n)*config broken") as info:
        child.wait_log("never printed", 30)
    assert isinstance(info.value, ServiceError) and isinstance(info.value, EpcwatchError)
    assert child.tail().splitlines()[1].startswith("--- start 1 at ")  # restarts are marked in the log


def test_env_is_added_to_the_parents(tmp_path: Path) -> None:
    child = ChildProcess(
        "env",
        [PY, "-c", "import os; print(os.environ['EPC_T_CHILD'], 'PATH' in os.environ)"],
        tmp_path / "e.log",
        env={"EPC_T_CHILD": "value-from-parent"},
    ).start()
    child.wait_log("value-from-parent True", 30)
    child.stop()
