"""Fixtures of the simulator tests: ``epcwatch sim serve`` as a child process, stopped by PID."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

EPCWATCH = str(Path(sys.executable).with_name("epcwatch"))


@dataclass
class Child:
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


def spawn(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> Child:
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


@pytest.fixture
def children(tmp_path: Path) -> Iterator[list[Child]]:
    """Child processes started by a test; each is stopped (by PID) at teardown."""
    started: list[Child] = []
    yield started
    for c in reversed(started):
        c.stop()
