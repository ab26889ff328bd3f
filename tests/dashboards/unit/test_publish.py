"""``dashboards publish`` against a fake of Grafana's HTTP API (Grafana is not installable here;
the fake implements the few endpoints used and records every request)."""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from epcwatch import logs
from epcwatch.dashboards.boards import build_all
from epcwatch.dashboards.errors import PublishError
from epcwatch.dashboards.publish import folder_uid, publish
from tests.support import EPCWATCH

sys.path.insert(0, str(Path(__file__).parent))
from fake_grafana import FakeGrafana

ROOT = Path(__file__).resolve().parents[3]
EPC = EPCWATCH


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana().start()
    yield fake
    fake.stop()


def test_first_publish_creates_folder_and_dashboards_second_changes_nothing(grafana: FakeGrafana) -> None:
    boards = build_all()
    first = publish(grafana.url, boards, folder="Energy", token=grafana.token)
    assert sorted(o.action for o in first) == ["created"] * 5
    assert list(grafana.folders) == ["energy"]
    assert {d["folderUid"] for d in grafana.dashboards.values()} == {"energy"}
    assert grafana.posts("/api/folders") == 1 and grafana.posts("/api/dashboards/db") == 5

    second = publish(grafana.url, boards, folder="Energy", token=grafana.token)
    assert [o.action for o in second] == ["unchanged"] * 5
    assert grafana.posts("/api/folders") == 1 and grafana.posts("/api/dashboards/db") == 5

    changed = copy.deepcopy(boards)
    changed["portfolio.json"]["title"] = "Portfolio (new)"
    third = publish(grafana.url, changed, folder="Energy", token=grafana.token)
    assert [o.action for o in third].count("updated") == 1
    assert grafana.dashboards["epcwatch-portfolio"]["dashboard"]["version"] == 2
    stored = grafana.dashboards["epcwatch-portfolio"]["dashboard"]
    assert stored["panels"] == boards["portfolio.json"]["panels"]


def test_existing_folder_is_found_by_title(grafana: FakeGrafana) -> None:
    grafana.folders["abc123"] = {"id": 7, "uid": "abc123", "title": "epcwatch"}
    publish(grafana.url, {"p.json": build_all()["portfolio.json"]}, folder="epcwatch", token=grafana.token)
    assert grafana.posts("/api/folders") == 0
    assert grafana.dashboards["epcwatch-portfolio"]["folderUid"] == "abc123"


def test_basic_auth(grafana: FakeGrafana) -> None:
    out = publish(
        grafana.url,
        {"p.json": build_all()["portfolio.json"]},
        folder="x",
        user=grafana.user,
        password=grafana.password,
    )
    assert [o.action for o in out] == ["created"]
    assert all(r.authorization.startswith("Basic ") for r in grafana.requests)


def test_refused_credentials_are_a_publish_error_without_the_secret(
    grafana: FakeGrafana, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(PublishError, match="401") as err:
        publish(grafana.url, build_all(), folder="x", token="wrong-token-value")
    assert "wrong-token-value" not in str(err.value)
    with pytest.raises(PublishError, match="--token"):
        publish(grafana.url, build_all(), folder="x")


def test_unreachable_grafana_is_a_publish_error() -> None:
    from epcwatch.devservices.services import free_port

    with pytest.raises(PublishError, match="unreachable") as err:
        publish(f"http://admin:pa55word@127.0.0.1:{free_port()}", build_all(), folder="x", token="t0ken")
    assert "pa55word" not in str(err.value)


def test_folder_uid() -> None:
    assert folder_uid("Energy / 能耗") == "energy"
    assert folder_uid("!!!") == "epcwatch"
    assert len(folder_uid("x" * 100)) == 40


def test_cli_publish_with_token_from_environment_never_prints_it(
    grafana: FakeGrafana, tmp_path: Path
) -> None:
    env = {**os.environ, "GRAFANA_TOKEN": grafana.token}
    args = [
        EPC,
        "--log-level",
        "debug",
        "dashboards",
        "publish",
        "--url",
        grafana.url,
        "--folder",
        "epcwatch",
    ]
    res = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("created") == 5
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert again.stdout.count("unchanged") == 5
    for r in (res, again):
        assert grafana.token not in r.stdout + r.stderr
    bad = subprocess.run(
        [*args[:-2], "--token", "not-the-token"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    assert "not-the-token" not in bad.stderr


def test_log_masking_registered(grafana: FakeGrafana) -> None:
    publish(grafana.url, {"p.json": build_all()["portfolio.json"]}, folder="x", token=grafana.token)
    assert logs._mask(f"token={grafana.token}") == "token=***"
