"""ACL blocks, password files, the lab CA and the localised broker config (no broker needed)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.broker import acl as mqtt_acl
from epcwatch.broker import credentials, lab_ca
from epcwatch.broker.config import BrokerConfigError, localise, shipped_config
from epcwatch.topics import TopicError
from tests.support import EPCWATCH

EPC = EPCWATCH
ids = st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,20}\Z")


def test_site_block_grants_only_its_own_tree() -> None:
    lines = mqtt_acl.site_block("civic-centre").lines()
    assert lines[1] == "user civic-centre"
    rules = lines[2:]
    assert rules == [
        "topic write epc/v1/civic-centre/+/telemetry",
        "topic write epc/v1/civic-centre/status",
        "topic write epc/v1/civic-centre/health",
        "topic read epc/v1/civic-centre/ack",
    ]
    # its only read is its own acknowledgements
    assert [r for r in rules if r.startswith(("topic read", "topic readwrite", "pattern"))] == [
        "topic read epc/v1/civic-centre/ack"
    ]


def test_collector_block_writes_only_acks_and_dead_letters() -> None:
    rules = mqtt_acl.collector_block("collector-1", "grp").lines()[2:]
    writes = [r for r in rules if r.startswith("topic write")]
    assert writes == ["topic write epc/v1/+/ack", "topic write epc/deadletter/v1/grp"]
    assert all(r.startswith(("topic read ", "topic write ")) for r in rules)


def test_blocks_written_before_acks_are_read_and_upgraded() -> None:
    old = mqtt_acl.HEADER + "\n\n" + "\n".join(
        [*mqtt_acl.site_block("s1").legacy_lines(), "", *mqtt_acl.collector_block("c1").legacy_lines()]
    )
    assert "ack" not in old
    new = mqtt_acl.upsert(old, mqtt_acl.site_block("s2"))
    assert "topic read epc/v1/s1/ack" in new and "topic write epc/v1/+/ack" in new
    assert [b.username for b in mqtt_acl.parse(new)[1]] == ["s1", "c1", "s2"]


@pytest.mark.parametrize("bad", ["Site", "a/b", "a+", "#", "", " a", "a b", "x" * 65])
def test_names_that_could_escape_the_acl_are_refused(bad: str) -> None:
    with pytest.raises(TopicError):
        mqtt_acl.site_block(bad)
    with pytest.raises((mqtt_acl.AclError, TopicError)):
        mqtt_acl.collector_block(bad)


@given(st.lists(st.tuples(st.sampled_from(["site", "collector"]), ids), max_size=12))
def test_upsert_keeps_one_block_per_user_and_round_trips(ops: list[tuple[str, str]]) -> None:
    text = mqtt_acl.HEADER + "\n"
    roles: dict[str, str] = {}
    for role, name in ops:
        block = mqtt_acl.site_block(name) if role == "site" else mqtt_acl.collector_block(name)
        if roles.get(name, role) != role:
            with pytest.raises(mqtt_acl.AclError, match="already a"):
                mqtt_acl.upsert(text, block)
            continue
        roles[name] = role
        text = mqtt_acl.upsert(text, block)
    preamble, blocks = mqtt_acl.parse(text)
    assert [b.username for b in blocks] == list(dict.fromkeys(n for _, n in ops if roles[n]))
    assert {b.username: b.role for b in blocks} == roles
    assert mqtt_acl.render(preamble, blocks) == text
    assert "\n".join(preamble) == mqtt_acl.HEADER


def test_hand_edits_in_the_managed_part_are_reported() -> None:
    text = mqtt_acl.upsert(mqtt_acl.HEADER, mqtt_acl.site_block("s1"))
    with pytest.raises(mqtt_acl.AclError, match="not what epcwatch writes"):
        mqtt_acl.parse(text + "topic read #\n")
    # rules above the first marker are the operator's and are kept
    own = "# mine\nuser ops\ntopic read epc/deadletter/v1/#\n"
    again = mqtt_acl.upsert(own, mqtt_acl.site_block("s2"))
    assert again.startswith(own) and "user s2" in again


def test_password_file_entry_is_hashed_private_and_rotatable(tmp_path: Path) -> None:
    pw_file = tmp_path / "passwd"
    one = credentials.issue(mqtt_acl.site_block("s1"), pw_file, tmp_path / "acl")
    two = credentials.issue(mqtt_acl.site_block("s2"), pw_file, tmp_path / "acl")
    rotated = credentials.issue(mqtt_acl.site_block("s1"), pw_file, tmp_path / "acl")
    text = pw_file.read_text()
    assert [line.split(":")[0] for line in text.splitlines()] == ["s1", "s2"]
    assert all(line.split(":", 1)[1].startswith("$7$") for line in text.splitlines())  # PBKDF2-SHA512
    for secret in (one.password, two.password, rotated.password):
        assert secret not in text
    assert len({one.password, two.password, rotated.password}) == 3
    assert len(one.password) == 43
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600


def test_secret_file_is_0600_and_wide_files_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "s" / "secret"
    credentials.write_secret_file(p, "abc")
    assert p.read_text() == "abc\n" and stat.S_IMODE(p.stat().st_mode) == 0o600
    p.chmod(0o644)
    with pytest.raises(credentials.CredentialError, match="readable by others"):
        credentials.write_secret_file(p, "abc")


def test_cli_prints_the_secret_once_on_stdout_and_never_in_logs(tmp_path: Path) -> None:
    args = ["--passwd-file", str(tmp_path / "passwd"), "--acl-file", str(tmp_path / "acl")]
    r = subprocess.run(
        [EPC, "--log-level", "debug", "security", "site-credentials", "site-a", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    secret = r.stdout.strip()
    assert r.stdout == secret + "\n" and len(secret) == 43
    assert secret not in r.stderr and "site-a" in r.stderr
    # to a file instead: nothing on stdout
    r = subprocess.run(
        [
            EPC,
            "security",
            "collector-credentials",
            "collector-1",
            *args,
            "--secret-file",
            str(tmp_path / "c1"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    secret = (tmp_path / "c1").read_text().strip()
    assert r.stdout == "" and secret not in r.stderr and len(secret) == 43
    # a user error is one clear line, no traceback
    r = subprocess.run(
        [EPC, "security", "collector-credentials", "site-a", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "already a site credential" in r.stderr and "Traceback" not in r.stderr


def test_lab_ca_issues_a_verifiable_chain(tmp_path: Path) -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    pki = lab_ca.create(tmp_path, server_name="broker.lab", clients=["site-a"], days=30, now=now)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    client = x509.load_pem_x509_certificate(pki.clients["site-a"][0].read_bytes())
    for leaf in (server, client):
        leaf.verify_directly_issued_by(ca)
        assert leaf.not_valid_after_utc == now + dt.timedelta(days=30)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"broker.lab", "localhost"}
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for key in (pki.ca_key, pki.server_key, pki.clients["site-a"][1]):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # OpenSSL agrees (the tool Mosquitto's own TLS stack comes from)
    r = subprocess.run(
        [
            "openssl",
            "verify",
            "-attime",
            str(int(now.timestamp()) + 86400),
            "-CAfile",
            str(pki.ca_cert),
            str(pki.server_cert),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stderr


PATHS = {
    k: Path(f"/lab/{k}")
    for k in ("cafile", "certfile", "keyfile", "password_file", "acl_file", "persistence_location")
}


def settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            k, _, v = line.partition(" ")
            out.setdefault(k, []).append(v)
    return out


def test_shipped_config_is_secure() -> None:
    s = settings(shipped_config())
    assert s["per_listener_settings"] == ["true"]
    assert s["listener"] == ["8883"]
    assert s["allow_anonymous"] == ["false"]
    assert s["tls_version"] == ["tlsv1.2"]
    assert {"password_file", "acl_file", "cafile", "certfile", "keyfile"} <= s.keys()
    assert s["persistence"] == ["true"] and s["autosave_on_changes"] == ["false"]
    # sized for traffic in flight (sites x unacked window x 2), bounded in bytes too: the
    # broker is no store, the edge outbox keeps what is not acknowledged end to end
    assert 10 * 100 * 2 <= int(s["max_queued_messages"][0]) <= 100_000
    assert 0 < int(s["max_queued_bytes"][0]) <= 1 << 30


def test_localise_keeps_every_setting_but_paths_and_listener() -> None:
    text = localise(
        shipped_config(), tls_port=18883, paths=PATHS, user="u", overrides={"autosave_interval": "5"}
    )
    shipped, local = settings(shipped_config()), settings(text)
    assert local["listener"] == ["18883 127.0.0.1"]
    assert local["user"] == ["u"] and local["log_dest"] == ["stdout"]
    assert local["autosave_interval"] == ["5"]
    for k, path in PATHS.items():
        assert local[k] == [str(path) + ("/" if k == "persistence_location" else "")]
    same = set(shipped) - {"listener", "log_dest", "autosave_interval", *PATHS}
    assert {k: local[k] for k in same} == {k: shipped[k] for k in same}


def test_localise_refuses_what_it_cannot_map() -> None:
    with pytest.raises(BrokerConfigError, match="paths needed"):
        localise(shipped_config(), tls_port=1, paths={})
    with pytest.raises(BrokerConfigError, match="cannot override"):
        localise(shipped_config(), tls_port=1, paths=PATHS, overrides={"no_such": "1"})
    with pytest.raises(BrokerConfigError, match="no acl_file"):
        localise(shipped_config().replace("acl_file", "#"), tls_port=1, paths=PATHS)


def test_shipped_acl_example_is_what_the_commands_write() -> None:
    example = Path(__file__).resolve().parents[3] / "broker" / "templates" / "acl.example"
    text = example.read_text()
    _, blocks = mqtt_acl.parse(text)
    expected = mqtt_acl.HEADER + "\n"
    for b in blocks:
        expected = mqtt_acl.upsert(expected, b)
    assert text == expected
    assert {b.role for b in blocks} == {"site", "collector"}
