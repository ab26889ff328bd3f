"""The one MQTT connection model: same keys and meanings in site.yaml and collector.yaml, old
keys refused with the new ones named, TLS problems as project errors."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from epcwatch.collector import settings as collector_settings
from epcwatch.collector.consumer import BrokerError, Consumer
from epcwatch.config import ConfigError
from epcwatch.edge.errors import PublishError
from epcwatch.edge.site import load_site
from epcwatch.errors import EpcwatchError
from epcwatch.mqtt import MqttConnection, MqttError, MqttTls, make_client, tls_context

SITE = """\
site: s1
buses:
  - {{type: tcp, id: gw, host: 127.0.0.1}}
devices:
  - {{id: m1, bus: gw, unit: 1, profile: eastron-sdm630}}
mqtt:
  host: 127.0.0.1
{mqtt}
"""


def load_edge(tmp_path: Path, mqtt: str) -> MqttConnection:
    p = tmp_path / "site.yaml"
    p.write_text(SITE.format(mqtt=mqtt))
    return load_site(p).mqtt


def load_collector(tmp_path: Path, mqtt: str) -> MqttConnection:
    p = tmp_path / "collector.yaml"
    p.write_text("mqtt:\n  host: 127.0.0.1\n" + mqtt + "\n")
    return collector_settings.load(p).mqtt


LOADERS = [pytest.param(load_edge, id="site.yaml"), pytest.param(load_collector, id="collector.yaml")]


@pytest.mark.parametrize("load", LOADERS)
@pytest.mark.parametrize(
    ("old", "key", "named"),
    [
        ("  password_env: PW", "mqtt.password_env", "password: {env: NAME}"),
        ("  password_file: pw", "mqtt.password_file", "password: {file: PATH}"),
        ("  password: {value: hunter2}", "mqtt.password.value", "{env: NAME} or {file: PATH}"),
        ("  tls:\n    insecure: true", "mqtt.tls.insecure", "verify_hostname: false"),
    ],
)
def test_old_keys_are_refused_naming_the_new_ones(
    load, tmp_path: Path, old: str, key: str, named: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, old)
    text = str(info.value)
    line = old.splitlines()[-1]
    lineno = (SITE.format(mqtt=old) if load is load_edge else "mqtt:\n  host: 127.0.0.1\n" + old).splitlines()
    assert f":{lineno.index(line) + 1}: {key}: " in text and named in text, text
    assert "hunter2" not in text


@pytest.mark.parametrize("load", LOADERS)
def test_same_keys_same_meaning(load, tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    m = load(
        tmp_path,
        "  username: u\n  password: {file: certs/pw}\n"
        "  tls:\n    ca_file: certs/ca.pem\n    verify_hostname: false",
    )
    assert m.effective_port() == 8883  # TLS port by default in both files
    assert m.tls is not None and m.tls.ca_file == tmp_path / "certs" / "ca.pem"  # relative to the file
    assert m.tls.verify_certificate and not m.tls.verify_hostname
    assert m.password is not None and m.password.file == tmp_path / "certs" / "pw"
    (tmp_path / "certs" / "pw").write_text("mqtt-model-test-pw\n")
    assert m.resolve_password() == "mqtt-model-test-pw"
    plain = load(tmp_path, "")
    assert plain.effective_port() == 1883 and plain.tls is None and plain.resolve_password() is None


def test_certificate_check_off_must_name_the_hostname_check_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="verify_hostname: false too"):
        load_collector(tmp_path, "  tls: {verify_certificate: false}")
    tls = MqttTls(verify_certificate=False, verify_hostname=False)
    ctx = tls_context(tls)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    ctx = tls_context(MqttTls(verify_hostname=False))
    assert ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname
    ctx = tls_context(MqttTls())
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_missing_ca_file_is_a_project_error_in_every_component(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    conn = MqttConnection(tls=MqttTls(ca_file=missing))
    with pytest.raises(MqttError, match=r"mqtt\.tls\.ca_file: .*nope/ca\.pem") as info:
        make_client(conn, client_id="x")
    assert isinstance(info.value, EpcwatchError)

    import queue

    cm = collector_settings.Mqtt(tls=collector_settings.Tls(ca_file=missing))
    with pytest.raises(BrokerError, match=r"ca_file"):
        Consumer(cm, queue.SimpleQueue())

    from epcwatch.clock import SystemClock
    from epcwatch.edge.publisher import Publisher
    from epcwatch.edge.site import SiteConfig

    cfg = SiteConfig.model_validate(
        {
            "site": "s1",
            "buses": [{"type": "tcp", "id": "gw", "host": "127.0.0.1"}],
            "devices": [{"id": "m1", "bus": "gw", "unit": 1, "profile": "eastron-sdm630"}],
            "mqtt": {"host": "127.0.0.1", "tls": {"ca_file": str(missing)}},
        }
    )
    with pytest.raises(PublishError, match=r"ca_file"):
        Publisher(cfg, SystemClock())


def test_unusable_certificate_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(MqttError, match=r"mqtt\.tls"):
        make_client(MqttConnection(tls=MqttTls(ca_file=bad)), client_id="x")


def test_missing_password_variable_is_named_not_leaked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EPC_T_NOPE", raising=False)
    conn = MqttConnection.model_validate({"username": "u", "password": {"env": "EPC_T_NOPE"}})
    with pytest.raises(MqttError, match="EPC_T_NOPE"):
        conn.resolve_password()


@pytest.mark.parametrize("load", LOADERS)
def test_a_password_without_a_user_name_is_refused_in_both_components(load, tmp_path: Path) -> None:
    """paho sends a password only with a user name: without one, the client would connect as if
    no password were configured. Both files refuse it, naming the file and the key."""
    with pytest.raises(ConfigError, match=r"(?s)mqtt.*password is set without username"):
        load(tmp_path, "  password: {env: EPC_T_PW}")
