"""The wheel stands alone: built from the checkout, installed into a fresh environment outside
the repository, and run from a temp directory with no source tree in reach."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from epcwatch.devservices.services import free_port
from tests.support import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run(argv: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # no PYTHONPATH and no repository on the path: only what the wheel installed
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``epcwatch`` command of a fresh venv holding only the built wheel and its dependencies."""
    root = tmp_path_factory.mktemp("wheel")
    dist = root / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        cwd=root,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("epcwatch-*.whl")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    done = _run(
        [str(py), "-m", "pip", "install", "-q", "-c", str(REPO / "constraints.txt"), str(wheel)], cwd=root
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return env_dir / "bin" / "epcwatch"


def test_the_package_is_imported_from_the_venv_not_the_checkout(installed: Path, tmp_path: Path) -> None:
    py = installed.with_name("python")
    where = _run([str(py), "-c", "import epcwatch, epcwatch.edge; print(epcwatch.__file__)"], cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert str(installed.parents[1]) in where.stdout and str(REPO) not in where.stdout


def test_broker_config_from_the_shipped_template(installed: Path, tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert _run([str(installed), "security", "lab-ca", "--out", str(pki)], cwd=tmp_path).returncode == 0
    conf = tmp_path / "mosquitto.conf"
    res = _run(
        [
            str(installed),
            "security",
            "broker-config",
            "--out",
            str(conf),
            "--pki",
            str(pki),
            "--passwd-file",
            str(tmp_path / "passwd"),
            "--acl-file",
            str(tmp_path / "acl"),
            "--data-dir",
            str(tmp_path / "data"),
        ],
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    text = conf.read_text()
    assert "listener 8883 127.0.0.1" in text and str(tmp_path / "acl") in text


def test_edge_plan_and_profiles_validate(installed: Path, tmp_path: Path) -> None:
    plan = _run([str(installed), "edge", "plan", "--profile", "eastron-sdm630"], cwd=tmp_path)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "eastron-sdm630" in plan.stdout
    valid = _run([str(installed), "profiles", "validate"], cwd=tmp_path)
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_a_short_demo(installed: Path, tmp_path: Path) -> None:
    res = _run(
        [
            str(installed),
            "demo",
            "--state-dir",
            str(tmp_path / "state"),
            "--from",
            "2025-03-03",
            "--to",
            "2025-03-04",
            "--live-days",
            "1",
            "--speed",
            "4320",
            "--mqtt-port",
            str(free_port()),
            "--influx-port",
            str(free_port()),
        ],
        cwd=tmp_path,
        timeout=900,
    )
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        assert "Demo done" in res.stdout
    finally:
        _run([str(installed), "services", "down", "--state-dir", str(tmp_path / "state")], cwd=tmp_path)
