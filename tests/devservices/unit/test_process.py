"""The one child-process class: started in its own session, logged, stopped by PID with
SIGTERM then SIGKILL, a premature exit reported with the log's last lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from epcwatch.devservices.errors import ChildExitedError, ServiceError
from epcwatch.devservices.process import ChildProcess, alive
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


def test_a_niced_child_runs_under_its_own_pid_at_that_niceness(tmp_path: Path) -> None:
    script = "import os, time; print('nice', os.nice(0), flush=True); time.sleep(60)"
    child = ChildProcess("batch", [PY, "-c", script], tmp_path / "batch.log", nice=7).start()
    try:
        child.wait_log("nice ", 30)
        base = os.nice(0)
        assert f"nice {min(19, base + 7)}" in child.tail()
        # ``nice`` execs the program: the PID stopped at the end is the program's own
        assert child.pid is not None and "-c" in Path(f"/proc/{child.pid}/cmdline").read_text()
    finally:
        child.stop(timeout=10)
    assert child.returncode == -signal.SIGTERM


def test_our_child_is_reaped_through_its_popen_which_records_the_exit() -> None:
    p = subprocess.Popen([PY, "-c", "import time; time.sleep(60)"])
    os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while alive(p.pid, p) and time.monotonic() < deadline:
        time.sleep(0.05)
    # reaped by the Popen itself: it knows the exit and will not warn "still running" when collected
    assert p.returncode == -signal.SIGKILL


def test_wait_log_sees_only_what_this_start_logged(tmp_path: Path) -> None:
    """A log kept from an earlier run (the demo run again in the same folder) must not satisfy a
    wait for the new run's line: the caller would go on before the child is ready."""
    log = tmp_path / "sim.log"
    log.write_text("serving (an earlier run)\n")
    script = "import time; time.sleep(0.5); print('serving', flush=True); time.sleep(60)"
    child = ChildProcess("sim", [PY, "-c", script], log).start()
    try:
        child.wait_log("serving", 30)
        assert log.read_text().count("serving") == 2  # returned on the new line, not the old one
    finally:
        child.stop(timeout=10)
