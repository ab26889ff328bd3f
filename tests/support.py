"""Helpers shared by every test folder: the installed CLI, waiting on a condition, and child
processes whose output is kept for the failure message."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: the ``epcwatch`` command of the environment running the tests (a venv's, or a wheel's)
EPCWATCH = str(Path(sys.executable).with_name("epcwatch"))
REPO = Path(__file__).resolve().parents[1]


def poll_until(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds; False on timeout (the caller then reports the state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


@dataclass
class Child:
    """A child process whose merged output is pumped into a queue and kept."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[str]
    output: list[str]
    pump: threading.Thread

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        """The first output line containing ``text``; fails with the output if the child dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r}; output:\n" + "".join(self.output))

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.pump.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def wait_for(
    condition: Callable[[], object],
    timeout: float = 120.0,
    what: str | Callable[[], object] = "condition",
    children: Sequence[Child] = (),
    interval: float = 0.05,
) -> bool:
    """Poll until ``condition`` holds, or fail with ``what`` (a text, or a callable giving the
    state worth seeing) and the children's last output. Fails at once if a child exits.

    The timeout is a safety net against a hang, not a measurement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in children:
            assert c.proc.poll() is None, f"{c.proc.args} exited:\n" + "".join(c.output)
        if condition():
            return True
        time.sleep(interval)
    if condition():
        return True
    said = what() if callable(what) else what
    outputs = "\n".join(
        f"--- {' '.join(map(str, c.proc.args[1:4]))}:\n" + "".join(c.output[-30:]) for c in children
    )
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {said}\n{outputs}")


def spawn(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Child:
    """Start ``epcwatch ARGS`` with its output pumped into a :class:`Child`."""
    proc = subprocess.Popen(
        [EPCWATCH, *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return Child(proc, lines, output, thread)
