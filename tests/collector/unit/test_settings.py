from __future__ import annotations

from pathlib import Path

import pytest

from epcwatch.collector import settings
from epcwatch.config import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def test_example_config_loads() -> None:
    cfg = settings.load(ROOT / "deploy/examples/collector.yaml")
    assert cfg.mqtt.group == "collectors" and cfg.influx.writer == "v1"
    tzs, default = cfg.site_timezones(ROOT / "deploy/examples")
    assert tzs["civic-centre"] == "Asia/Shanghai" and default == "UTC"


def test_secrets_need_exactly_one_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("mqtt:\n  username: u\n  password: {env: A, file: /x}\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: mqtt.password"):
        settings.load(p)
    p.write_text("mqtt:\n  username: u\n  password: {env: EPC_TEST_SECRET}\n")
    monkeypatch.setenv("EPC_TEST_SECRET", "s3cret-value")
    cfg = settings.load(p)
    assert cfg.mqtt.password is not None and cfg.mqtt.password.resolve() == "s3cret-value"
    from epcwatch import logs

    assert logs._mask("token s3cret-value") == "token ***"
