"""The root options and run wrapper shared by ``epcwatch`` and ``epcwatch-edge``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from epcwatch import __version__, cli_root
from epcwatch.errors import EpcwatchError
from tests.support import EPCWATCH


def _app(exc: BaseException) -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False)
    cli_root.add_root_options(app)

    @app.command()
    def boom() -> None:
        raise exc

    @app.command()
    def fine() -> None:
        typer.echo("fine")

    return app


def test_a_project_error_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["x", "boom"])
    with pytest.raises(SystemExit) as exit_:
        cli_root.run(_app(EpcwatchError("the broker refused the password")))
    assert exit_.value.code == 2
    assert capsys.readouterr().err == "error: the broker refused the password\n"


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["x", "boom"])
    with pytest.raises(ZeroDivisionError):
        cli_root.run(_app(ZeroDivisionError("bug")))


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["x", "boom"])
    with pytest.raises(SystemExit) as exit_:
        cli_root.run(_app(KeyboardInterrupt()))
    assert exit_.value.code == 130


def test_root_options_log_level_and_version(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["x", "--log-level", "debug", "--log-json", "fine"])
    with pytest.raises(SystemExit) as exit_:
        cli_root.run(_app(RuntimeError()))
    assert exit_.value.code == 0 and capsys.readouterr().out == "fine\n"
    monkeypatch.setattr(sys, "argv", ["x", "--version"])
    with pytest.raises(SystemExit) as exit_:
        cli_root.run(_app(RuntimeError()))
    assert exit_.value.code == 0 and capsys.readouterr().out == f"{__version__}\n"


@pytest.mark.parametrize("entry", [[EPCWATCH], [sys.executable, "-m", "epcwatch.edge"]])
def test_both_entry_points_share_the_root_options(entry: list[str]) -> None:
    for args in (["--version"], ["--log-level", "debug", "--version"]):
        out = subprocess.run([*entry, *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == __version__
    out = subprocess.run([*entry, "--help"], capture_output=True, text=True, timeout=120)
    assert "--log-level" in out.stdout and "--log-json" in out.stdout
