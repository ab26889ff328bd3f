"""Secrets come from environment variables or files and never appear in logs or error messages.

The edge agent and the collector are run for real (subprocesses at debug level, against the
secure broker), once with the right password and once with a wrong one, and their whole output
is searched for the password; their config loaders are driven into errors in-process.
"""

from __future__ import annotations

import os
import secrets
import signal
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from epcwatch import logs, topics
from epcwatch.config import ConfigError
from epcwatch.devservices.services import Influxd, free_port, influx_query
from epcwatch.testing.modbus_recorder import recording_device
from tests.support import EPCWATCH

ROOT = Path(__file__).resolve().parents[3]
EPC = EPCWATCH


def marked_secret() -> str:
    """A password no log line could contain by accident."""
    return "pw-" + secrets.token_urlsafe(24)


# -- loaders, in-process ---------------------------------------------------------------------
def edge_yaml(mqtt: str) -> str:
    return f"""\
site: site-a
buses:
  - {{type: tcp, id: gw, host: 127.0.0.1, port: 1502}}
devices:
  - {{id: m1, bus: gw, unit: 1, profile: eastron-sdm630}}
mqtt:
{mqtt}
"""


def test_edge_loader_takes_the_secret_from_env_or_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from epcwatch.edge.site import load_site, resolve_password

    secret = marked_secret()
    monkeypatch.setenv("EPCWATCH_T_PW", secret)
    p = tmp_path / "site.yaml"
    p.write_text(edge_yaml("  host: 127.0.0.1\n  username: site-a\n  password: {env: EPCWATCH_T_PW}"))
    assert resolve_password(load_site(p), p) == secret
    (tmp_path / "pw").write_text(secret + "\n")
    p.write_text(edge_yaml("  host: 127.0.0.1\n  username: site-a\n  password: {file: pw}"))
    assert resolve_password(load_site(p), p) == secret


def test_edge_loader_errors_name_the_source_never_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from epcwatch.edge.site import load_site, resolve_password

    secret = marked_secret()
    p = tmp_path / "site.yaml"
    # a password pasted inline is refused, and the refusal does not repeat it
    p.write_text(edge_yaml(f"  host: 127.0.0.1\n  username: site-a\n  password: {secret}"))
    with pytest.raises(ConfigError) as ei:
        load_site(p)
    assert "password" in str(ei.value) and secret not in str(ei.value)
    # a variable that is not set, or a file that cannot be read, is named
    monkeypatch.delenv("EPCWATCH_T_PW", raising=False)
    p.write_text(edge_yaml("  host: 127.0.0.1\n  username: site-a\n  password: {env: EPCWATCH_T_PW}"))
    with pytest.raises(ConfigError, match="EPCWATCH_T_PW"):
        resolve_password(load_site(p), p)
    p.write_text(edge_yaml("  host: 127.0.0.1\n  username: site-a\n  password: {file: missing-pw}"))
    with pytest.raises(ConfigError, match="missing-pw"):
        resolve_password(load_site(p), p)
    # a secret given in both forms is a mistake named without the value
    monkeypatch.setenv("EPCWATCH_T_PW", secret)
    (tmp_path / "pw").write_text(secret)
    p.write_text(edge_yaml("  host: 127.0.0.1\n  password: {env: EPCWATCH_T_PW, file: pw}"))
    with pytest.raises(ConfigError) as ei:
        load_site(p)
    assert secret not in str(ei.value)


def test_collector_loader_takes_secrets_from_env_or_file_and_redacts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from epcwatch.collector import settings

    mqtt_pw, influx_pw = marked_secret(), marked_secret()
    monkeypatch.setenv("EPCWATCH_T_MQTT", mqtt_pw)
    (tmp_path / "influx-pw").write_text(influx_pw + "\n")
    p = tmp_path / "collector.yaml"
    p.write_text(
        "mqtt:\n  username: collector-1\n  password: {env: EPCWATCH_T_MQTT}\n"
        f"influx:\n  username: epc\n  password: {{file: {tmp_path / 'influx-pw'}}}\n"
    )
    cfg = settings.load(p)
    assert cfg.mqtt.password is not None and cfg.mqtt.password.resolve() == mqtt_pw
    assert cfg.influx.password is not None and cfg.influx.password.resolve() == influx_pw
    # resolving registered both with the log redactor
    logs.setup("debug")
    caplog.set_level(logging.DEBUG)
    handler = logging.getLogger().handlers[0]
    record = logging.LogRecord(
        "t", logging.ERROR, __file__, 1, "auth failed for %s / %s", (mqtt_pw, influx_pw), None
    )
    line = handler.format(record)
    assert mqtt_pw not in line and influx_pw not in line and line.count("***") == 2


def test_collector_loader_errors_never_show_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from epcwatch.collector import settings

    secret = marked_secret()
    p = tmp_path / "collector.yaml"
    for body in (
        f"mqtt:\n  password: {secret}\n",  # a bare string where {env:}/{file:} belongs
        f"mqtt:\n  password: {{value: {secret}, env: X}}\n",  # two sources
        f"influx:\n  token: [{secret}]\n",
        f"mqtt:\n  pasword: {secret}\n",  # a typo in the key
    ):
        p.write_text(body)
        with pytest.raises(ConfigError) as ei:
            settings.load(p)
        assert secret not in str(ei.value), body
        assert str(ei.value).startswith(f"{p}:")
    monkeypatch.delenv("EPCWATCH_T_MISSING", raising=False)
    p.write_text(
        f"mqtt:\n  port: {free_port()}\n  username: collector-1\n  password: {{env: EPCWATCH_T_MISSING}}\n"
        f"influx:\n  url: http://127.0.0.1:{free_port()}\n"
    )
    r = subprocess.run(
        [EPC, "collector", "run", "--config", str(p)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode != 0 and "EPCWATCH_T_MISSING" in r.stderr and "Traceback" not in r.stderr


# -- the real processes --------------------------------------------------------------------
def run_until(
    argv: list[str], env: dict[str, str], log: Path, done: Callable[[str], bool], limit: float = 120
) -> str:
    """Run a command until ``done(output so far)`` holds (or the bound passes), then SIGTERM it."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True
        )
        try:
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline and proc.poll() is None:
                if done(log.read_text(errors="replace")):
                    break
                time.sleep(0.3)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            proc.wait(60)
    return log.read_text(errors="replace")


@pytest.mark.integration
def test_edge_agent_never_logs_its_password(lab, client: Callable, tmp_path: Path) -> None:
    good = lab.secrets["site-a"]
    wrong = marked_secret()
    coll = client("collector-1-secrets")
    ctx = ssl.create_default_context(cafile=str(lab.pki.ca_cert))
    assert coll.connect(lab.broker.port, "collector-1", lab.secrets["collector-1"], tls=ctx) == 0
    coll.subscribe("epc/v1/site-a/+/telemetry")  # one device's messages or the site's poll cycles
    port = free_port()
    with recording_device(port):
        for name, pw in (("good", good), ("wrong", wrong)):
            d = tmp_path / name
            d.mkdir()
            (d / "site.yaml").write_text(
                f"""\
site: site-a
buses:
  - {{type: tcp, id: gw, host: 127.0.0.1, port: {port}}}
devices:
  - {{id: m1, bus: gw, unit: 1, profile: eastron-sdm630, poll_interval_s: 0.5}}
mqtt:
  host: 127.0.0.1
  port: {lab.broker.port}
  username: site-a
  password: {{env: EPCWATCH_T_EDGE_PW}}
  tls: {{ca_file: {lab.pki.ca_cert}}}
  reconnect_min_s: 1
  reconnect_max_s: 1
outbox: {{path: outbox.sqlite}}
health: {{interval_s: 1}}
"""
            )
            if name == "good":
                # done when the collector credential has received the agent's telemetry
                out = run_until(
                    [EPC, "--log-level", "debug", "edge", "run", "--config", str(d / "site.yaml")],
                    {"EPCWATCH_T_EDGE_PW": pw},
                    d / "edge.log",
                    lambda _out: coll.messages.qsize() >= 3,
                )
                assert coll.messages.qsize() >= 3, out[-3000:]
            else:
                # done when the broker has refused the agent a few times
                out = run_until(
                    [EPC, "--log-level", "debug", "edge", "run", "--config", str(d / "site.yaml")],
                    {"EPCWATCH_T_EDGE_PW": pw},
                    d / "edge.log",
                    lambda o: o.lower().count("refused") >= 2,
                )
                assert out.lower().count("refused") >= 2, out[-3000:]
            assert pw not in out
            assert good not in out and wrong not in out


@pytest.mark.integration
def test_collector_never_logs_its_passwords(
    lab, client: Callable, influxdb: Influxd, database: str, tmp_path: Path
) -> None:
    good = lab.secrets["collector-1"]
    wrong = marked_secret()
    influx_pw = marked_secret()
    site = client("site-a-secrets")
    ctx = ssl.create_default_context(cafile=str(lab.pki.ca_cert))
    assert site.connect(lab.broker.port, "site-a", lab.secrets["site-a"], tls=ctx) == 0
    seq = iter(range(1_000_000))
    for name, pw in (("good", good), ("wrong", wrong)):
        d = tmp_path / name
        d.mkdir()
        (d / "mqtt-pw").write_text(pw + "\n")
        (d / "collector.yaml").write_text(
            f"""\
mqtt:
  host: 127.0.0.1
  port: {lab.broker.port}
  client_id: secrets-{name}
  group: collectors
  username: collector-1
  password: {{file: {d / "mqtt-pw"}}}
  tls: {{ca_file: {lab.pki.ca_cert}}}
  reconnect_min_s: 0.5
  reconnect_max_s: 1
influx:
  url: {influxdb.url}
  database: {database}
  username: epc
  password: {{env: EPCWATCH_T_INFLUX_PW}}
batch: {{max_wait_s: 0.2}}
rollup: {{enabled: false}}
"""
        )
        argv = [EPC, "--log-level", "debug", "collector", "run", "--config", str(d / "collector.yaml")]
        env = {"EPCWATCH_T_INFLUX_PW": influx_pw}
        if name == "good":

            def stored(out: str) -> bool:
                # keep publishing until the collector has stored something
                if "connected" in out.lower():
                    n = next(seq)
                    site.publish(
                        topics.telemetry("site-a", "m1"),
                        (
                            '{"v":1,"site":"site-a","device":"m1","kind":"meter","readings":'
                            f'[{{"seq":{n},"ts":{1_790_000_000_000 + n},"values":{{"active_power":1.5}}}}]}}'
                        ),
                    )
                doc = influx_query(influxdb.url, 'SELECT count("active_power") FROM "meter"', db=database)
                return bool(doc["results"][0].get("series"))  # type: ignore[index]

            out = run_until(argv, env, d / "collector.log", stored)
            assert stored(""), out[-3000:]
        else:
            out = run_until(argv, env, d / "collector.log", lambda o: o.lower().count("refused") >= 2)
            assert out.lower().count("refused") >= 2, out[-3000:]
        for secret in (good, wrong, influx_pw):
            assert secret not in out
