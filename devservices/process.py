"""The one child-process class of the development tools: the dev servers, the demo and the
chaos harness each start programs with it.

A child runs in its own session (a terminal's Ctrl-C does not reach it), writes stdout and
stderr to a log file, and is stopped by its PID: SIGTERM, then SIGKILL after a timeout. Nothing
is ever stopped by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from epcwatch.devservices.errors import ChildExitedError
from epcwatch.procs import pid_alive


def terminate(
    pid: int,
    *,
    timeout: float = 20.0,
    sig: int = signal.SIGTERM,
    popen: subprocess.Popen[bytes] | None = None,
) -> None:
    """Send ``sig`` to ``pid``, wait up to ``timeout`` for it to end, then SIGKILL it.

    ``popen`` (when the process is our child) is waited on, so no zombie or ResourceWarning
    is left behind.
    """
    own = popen if popen is not None and popen.pid == pid else None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pid, own):
        if own is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                own.wait(0.1)
        else:
            time.sleep(0.1)
    if alive(pid, own):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if own is not None:
            own.wait(10)


def alive(pid: int, popen: subprocess.Popen[bytes] | None = None) -> bool:
    """True while ``pid`` runs. Our own child is asked through its ``Popen`` (which then reaps it
    and records its exit code: a child reaped behind its ``Popen``'s back leaves an object that
    warns "still running" when it is collected)."""
    if popen is not None and popen.pid == pid:
        return popen.poll() is None
    return pid_alive(pid)


@dataclass
class ChildProcess:
    """A program run as a child in its own session, logging to ``log_file``, stopped by PID."""

    name: str
    argv: list[str]
    log_file: Path
    #: added to the parent's environment
    env: dict[str, str] = field(default_factory=dict)
    #: write a ``--- start N at HH:MM:SS`` line to the log before each start (restarted children)
    mark_starts: bool = False
    #: its scheduling niceness (0-19; run through ``nice`` when above 0 and the command exists):
    #: a batch job that must not starve a real-time one beside it
    nice: int = 0
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: where this start's output begins in the log (earlier runs' lines come before it)
    log_offset: int = 0

    def start(self) -> Self:
        """Start it (a no-op while it runs)."""
        if self.alive():
            return self
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.log_offset = out.tell()
            if self.mark_starts:
                out.write(f"\n--- start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
                out.flush()
            nice = shutil.which("nice") if self.nice > 0 else None
            self.popen = subprocess.Popen(
                [nice, "-n", str(self.nice), *self.argv] if nice else self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self.env} if self.env else None,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check(self) -> None:
        """Raise :class:`ChildExitedError` (with the log's last lines) if it has exited."""
        if self.popen is not None and self.popen.poll() is not None:
            raise ChildExitedError(
                f"{self.name} exited with code {self.popen.returncode}; see {self.log_file}:\n{self.tail()}"
            )

    def wait_log(self, text: str, timeout: float) -> None:
        """Wait until ``text`` appears in what this start logged (a log kept from an earlier run
        does not count); raise if the child exits or time runs out."""
        deadline = time.monotonic() + timeout
        needle = text.encode()
        while time.monotonic() < deadline:
            exited = not self.alive()  # before reading: what it logged before exiting counts
            with contextlib.suppress(OSError), open(self.log_file, "rb") as f:
                f.seek(self.log_offset)
                if needle in f.read():
                    return
            if exited:
                self.check()
            time.sleep(0.2)
        raise ChildExitedError(
            f"{self.name} did not log {text!r} within {timeout:.0f} s; see {self.log_file}"
        )

    def stop(self, timeout: float = 30.0, sig: int = signal.SIGTERM) -> None:
        """SIGTERM (or ``sig``), then SIGKILL after ``timeout``; a no-op when not running."""
        if self.popen is None or self.popen.poll() is not None:
            return
        terminate(self.popen.pid, timeout=timeout, sig=sig, popen=self.popen)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Kill it as a power cut or an OOM kill would (SIGKILL unless told otherwise)."""
        self.stop(timeout=30.0, sig=sig)

    def tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"
