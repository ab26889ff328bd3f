"""Site configuration: valid files load, mistakes name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from epcwatch.config import ConfigError
from epcwatch.edge.site import RtuBus, TcpBus, load_site, resolve_password, rtu_gap_s

SITE = """\
site: civic-centre
buses:
  - {type: rtu, id: rs485-1, port: /dev/ttyUSB0, baud: 9600, parity: E}
  - {type: tcp, id: gw1, host: 127.0.0.1, port: 1502, max_concurrency: 3}
  - {type: rtu_over_tcp, id: gw2, host: 127.0.0.1, port: 4001}
devices:
  - {id: b1-main, bus: rs485-1, unit: 1, profile: eastron-sdm630, tags: {building: b1, category: A}}
  - {id: b1-hvac, bus: gw1, unit: 2, profile: eastron-sdm630, poll_interval_s: 15}
  - {id: b1-lc1, bus: gw2, unit: 7, profile: eastron-sdm630}
mqtt:
  host: 127.0.0.1
  username: edge
  password: {file: secrets/mqtt.pw}
  tls: {ca_file: ca.pem}
outbox: {path: data/outbox.sqlite, max_bytes: 1000000, full_policy: pause}
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "site.yaml"
    p.write_text(text)
    return p


def test_example_loads_and_resolves_paths(tmp_path: Path) -> None:
    cfg = load_site(_write(tmp_path, SITE))
    assert isinstance(cfg.buses[0], RtuBus) and isinstance(cfg.buses[1], TcpBus)
    assert cfg.outbox.path == tmp_path / "data" / "outbox.sqlite"
    assert cfg.mqtt.tls is not None and cfg.mqtt.tls.ca_file == tmp_path / "ca.pem"
    assert cfg.mqtt.effective_port() == 8883
    assert cfg.client_id() == "epcwatch-edge-civic-centre"
    assert cfg.status_file() == tmp_path / "data" / "status.json"
    assert cfg.devices[1].poll_interval_s == 15
    coded = load_site(_write(tmp_path, SITE.replace("category: A", "item_code: 01A10")))
    assert coded.devices[0].tags.item_code == "01A10"


def test_password_from_file_and_missing_file_named_not_leaked(tmp_path: Path) -> None:
    path = _write(tmp_path, SITE)
    cfg = load_site(path)
    with pytest.raises(ConfigError) as err:
        resolve_password(cfg, path)
    assert "mqtt.pw" in str(err.value)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "mqtt.pw").write_text("s3cret-value\n")
    assert resolve_password(cfg, path) == "s3cret-value"


@pytest.mark.parametrize(
    ("bad", "good", "expect"),
    [
        ("unit: 1, profile", "unit: 300, profile", ":7: devices[0].unit"),
        ("bus: gw1, unit: 2", "bus: nope, unit: 2", "unknown bus 'nope'"),
        ("unit: 7, profile", "unit: 0, profile", "must be 1..247"),
        ("full_policy: pause", "full_policy: keep", ":15: outbox.full_policy"),
        ("category: A", "category: E", ":7: devices[0].tags.category"),
        ("category: A", "item_code: 01A40", "'01A40' is not a national item code"),
        ("category: A", "category: A, item_code: 01B10", "category 'A' contradicts item code 01B10"),
        ("category: A", "item_code: 02000", 'quote item codes made of digits in YAML'),
        (
            "  host: 127.0.0.1\n  username",
            "  host: 127.0.0.1\n  hostname: x\n  username",
            ":12: mqtt.hostname",
        ),
        ("parity: E", "parity: X", ":3: buses[0].rtu.parity"),
    ],
)
def test_mistakes_name_line_and_field(tmp_path: Path, bad: str, good: str, expect: str) -> None:
    text = SITE.replace(bad, good, 1)
    with pytest.raises(ConfigError) as err:
        load_site(_write(tmp_path, text))
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "site.yaml"))
    assert expect in msg, msg


def test_duplicate_units_on_one_bus_rejected(tmp_path: Path) -> None:
    text = SITE.replace("bus: gw2, unit: 7", "bus: rs485-1, unit: 1")
    with pytest.raises(ConfigError, match="share unit 1 on bus rs485-1"):
        load_site(_write(tmp_path, text))


def test_rtu_gap_is_three_and_a_half_characters() -> None:
    assert rtu_gap_s(9600, "N", 1) == pytest.approx(3.5 * 10 / 9600)
    assert rtu_gap_s(9600, "E", 1) == pytest.approx(3.5 * 11 / 9600)
    assert rtu_gap_s(115200) == pytest.approx(0.00175)  # fixed minimum above 19,200 baud
    assert rtu_gap_s(9600, override_ms=10) == pytest.approx(0.010)


# -- DL/T 645 buses and meters -------------------------------------------------------------------

DLT645_EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "examples" / "site-dlt645.yaml"

DLT_SITE = """\
site: civic-centre
buses:
  - {type: dlt645_serial, id: rs485-645, port: /dev/ttyUSB1}
  - {type: dlt645_tcp, id: gw645, host: 10.0.0.5}
devices:
  - {id: t1, bus: rs485-645, address: "000012345601", profile: chint-ddsu666-dlt645}
  - {id: t2, bus: gw645, address: "000012345601", profile: chint-dtsu666-dlt645}
mqtt: {host: 127.0.0.1}
"""
A1 = 'address: "000012345601", profile: chint-ddsu'


def test_dlt645_buses_and_addresses_load(tmp_path: Path) -> None:
    from epcwatch.edge.site import Dlt645SerialBus, Dlt645TcpBus

    cfg = load_site(_write(tmp_path, DLT_SITE))
    serial, tcp = cfg.buses
    assert isinstance(serial, Dlt645SerialBus)
    assert (serial.baud, serial.parity, serial.preamble) == (2400, "E", 4)
    assert isinstance(tcp, Dlt645TcpBus) and tcp.port == 8899
    assert cfg.devices[0].address == "000012345601" and cfg.devices[0].target() == 12345601
    assert cfg.devices[0].unit is None


@pytest.mark.parametrize(
    ("value", "what"),
    [('"0000123456"', "not 12 digits"), ('"00001234560A"', "wildcard"), ("12345601", "quoted string")],
)
def test_bad_meter_address_names_file_line_and_field(tmp_path: Path, value: str, what: str) -> None:
    p = _write(tmp_path, DLT_SITE.replace('address: "000012345601", profile: chint-ddsu',
                                          f"address: {value}, profile: chint-ddsu"))
    with pytest.raises(ConfigError) as err:
        load_site(p)
    assert f"{p}:6: devices[0].address" in str(err.value) and what in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (A1, "unit: 3, profile: chint-ddsu", "needs the meter's address"),
        ("{id: t2, bus: gw645,", "{id: t2, bus: rs485-645,", "share address 000012345601"),
        (A1, 'unit: 1, address: "000012345601", profile: chint-ddsu', "not both"),
    ],
)
def test_dlt645_device_mistakes(tmp_path: Path, old: str, new: str, message: str) -> None:
    p = _write(tmp_path, DLT_SITE.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_site(p)
    assert message in str(err.value)


def test_dlt645_example_site_checks() -> None:
    from typer.testing import CliRunner

    from epcwatch.cli import app

    res = CliRunner().invoke(app, ["edge", "run", "--config", str(DLT645_EXAMPLE), "--check"])
    assert res.exit_code == 0, res.output
    assert "5 devices, 3 buses" in res.stdout


def test_a_modbus_profile_on_a_dlt645_bus_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from epcwatch.cli import app

    text = DLT645_EXAMPLE.read_text().replace("profile: chint-ddsu666-dlt645", "profile: eastron-sdm120", 1)
    p = _write(tmp_path, text)
    res = CliRunner().invoke(app, ["edge", "run", "--config", str(p), "--check"])
    assert res.exit_code == 2
    assert "eastron-sdm120 is a modbus profile, bus b2-rs485-645 is dlt645" in res.stderr
