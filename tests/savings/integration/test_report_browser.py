"""The HTML report renders in headless Chromium without console errors (and a screenshot is taken)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from epcwatch.cli import app
from tests.savings.conftest import site_lines, write_lines

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def render(html: Path, png: Path, profile: Path) -> str:
    """Screenshot ``html``; returns Chromium's log (console messages appear as CONSOLE lines)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("chromium not found: apt-get install chromium (or run scripts/install.sh)")
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            f"--screenshot={png}",
            "--window-size=1280,3000",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stderr


def console_errors(log: str) -> list[str]:
    marks = ("CONSOLE", "Uncaught", "ERR_FILE_NOT_FOUND")
    return [ln for ln in log.splitlines() if any(m in ln for m in marks)]


def test_console_check_detects_errors(tmp_path):
    """The detector itself: a page that logs an error and loads a missing image is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<html><body><img src="missing.png"><script>console.error("boom")</script></body></html>')
    log = render(page, tmp_path / "bad.png", tmp_path / "profile")
    assert any("boom" in ln for ln in console_errors(log)), log[-2000:]


def test_report_renders_without_console_errors(influxdb, database, world, contract_file, tmp_path):
    write_lines(influxdb.url, database, site_lines(world["hourly"], world["light"]))
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "savings",
            "report",
            "--contract",
            str(contract_file("contract.yaml")),
            "--influx-url",
            influxdb.url,
            "--database",
            database,
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    # self-contained: inline SVG charts, no scripts, no external resources
    assert html.count("<svg") == 3
    assert "<script" not in html
    for ref in ('src="http', 'href="http', "url(http", "@import", 'xlink:href="http'):
        assert ref not in html
    png = out / "report.png"
    log = render(out / "report.html", png, tmp_path / "profile")
    assert console_errors(log) == [], log[-3000:]
    assert png.stat().st_size > 50_000
    keep = os.environ.get("EPCWATCH_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(png, keep)
