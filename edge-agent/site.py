"""The site configuration (``site.yaml``): buses, devices, MQTT uplink, outbox and health.

Loaded with :func:`load_site`, which goes through :func:`epcwatch.config.load_yaml_model` so
that every mistake is reported as ``site.yaml:LINE: field.path: problem``. Relative paths
(outbox, TLS files, secret files) are resolved against the directory of the site file, so a
site directory can be moved as a whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from epcwatch.config import ConfigError, load_yaml_model
from epcwatch.itemcodes import ItemCodeError, derive_tags
from epcwatch.mqtt import MqttConnection, MqttError, MqttTls
from epcwatch.profiles import dlt645
from epcwatch.wire import Category, Id, ItemCodeTag, TagValue

#: Modbus RTU unit ids a serial bus can address (0 is broadcast, which never answers a read)
RTU_UNITS = range(1, 248)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TcpBus(_Model):
    """Modbus TCP: a gateway or a device with its own Ethernet port; several devices (unit ids)
    may sit behind one address."""

    type: Literal["tcp"]
    id: Id
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    max_concurrency: int = Field(
        default=2, ge=1, le=64,
        description="TCP connections to the gateway (requests in flight on each: pipeline)",
    )
    pipeline: int = Field(
        default=1, ge=1, le=16,
        description="requests in flight on one connection, matched by transaction id (1 for gateways that "
        "answer only one at a time)",
    )


class RtuBus(_Model):
    """Modbus RTU on a local serial line (RS-485 adapter): strictly one request at a time."""

    type: Literal["rtu"]
    id: Id
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/…")
    baud: int = Field(default=9600, ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = "N"
    stop_bits: Literal[1, 2] = 1
    byte_size: Literal[7, 8] = 8
    inter_frame_gap_ms: float | None = Field(
        default=None, ge=0, le=1000, description="silence between frames; default 3.5 characters (≥ 1.75 ms)"
    )

    def gap_s(self) -> float:
        return rtu_gap_s(self.baud, self.parity, self.stop_bits, self.byte_size, self.inter_frame_gap_ms)


class RtuOverTcpBus(_Model):
    """A serial-to-Ethernet converter passing raw RTU frames over TCP: the serial line behind it is
    still one request at a time."""

    type: Literal["rtu_over_tcp"]
    id: Id
    host: str
    port: int = Field(default=502, ge=1, le=65535)
    inter_frame_gap_ms: float = Field(default=5.0, ge=0, le=1000)

    def gap_s(self) -> float:
        return self.inter_frame_gap_ms / 1000.0


class Dlt645SerialBus(_Model):
    """DL/T 645 meters on a local RS-485 line: one request at a time, a gap between frames.
    The standard's default line is 2400 baud, 8 data bits, even parity, 1 stop bit."""

    type: Literal["dlt645_serial"]
    id: Id
    port: str = Field(description="serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/…")
    baud: int = Field(default=2400, ge=300, le=921_600)
    parity: Literal["N", "E", "O"] = "E"
    stop_bits: Literal[1, 2] = 1
    byte_size: Literal[7, 8] = 8
    inter_frame_gap_ms: float = Field(default=20.0, ge=0, le=1000, description="silence between frames")
    preamble: int = Field(default=4, ge=0, le=4, description="FE bytes sent before each request")

    def gap_s(self) -> float:
        return self.inter_frame_gap_ms / 1000.0


class Dlt645TcpBus(_Model):
    """DL/T 645 meters behind a transparent serial-to-Ethernet gateway (raw frames over TCP): the
    RS-485 line behind it is still one request at a time."""

    type: Literal["dlt645_tcp"]
    id: Id
    host: str
    port: int = Field(default=8899, ge=1, le=65535)
    inter_frame_gap_ms: float = Field(default=20.0, ge=0, le=1000)
    preamble: int = Field(default=4, ge=0, le=4)

    def gap_s(self) -> float:
        return self.inter_frame_gap_ms / 1000.0


ModbusBus = TcpBus | RtuBus | RtuOverTcpBus
Dlt645Bus = Dlt645SerialBus | Dlt645TcpBus
AnyBus = ModbusBus | Dlt645Bus
Bus = Annotated[AnyBus, Field(discriminator="type")]
DLT645_BUS_TYPES = (Dlt645SerialBus, Dlt645TcpBus)


def rtu_gap_s(
    baud: int, parity: str = "N", stop_bits: int = 1, byte_size: int = 8, override_ms: float | None = None
) -> float:
    """Inter-frame silence: 3.5 character times, and at least 1.75 ms above 19,200 baud
    (Modbus over serial line spec, 2.5.1.1)."""
    if override_ms is not None:
        return override_ms / 1000.0
    bits = 1 + byte_size + (0 if parity == "N" else 1) + stop_bits
    return max(3.5 * bits / baud, 0.00175)


class DeviceTagsConfig(_Model):
    building: TagValue | None = None
    floor: TagValue | None = None
    category: Category | None = Field(
        default=None, description="A lighting & sockets, B HVAC, C power, D special use"
    )
    tenant: TagValue | None = None
    item_code: ItemCodeTag | None = Field(
        default=None, description="national item code (分类分项能耗编码), e.g. 01A10 or 02000 for water"
    )

    @field_validator("item_code", mode="before")
    @classmethod
    def _quoted(cls, v: object) -> object:
        if isinstance(v, int) and not isinstance(v, bool):
            # YAML reads 02000 as a number (octal 1024): the leading zero is gone
            raise ValueError('quote item codes made of digits in YAML, e.g. item_code: "02000"')
        return v

    @model_validator(mode="after")
    def _known_item_code(self) -> DeviceTagsConfig:
        # the collector would dead-letter every reading of a device with an unknown code
        try:
            derive_tags(self.category, self.item_code)
        except ItemCodeError as exc:
            raise ValueError(str(exc)) from None
        return self


class DeviceConfig(_Model):
    id: Id
    bus: Id
    unit: int | None = Field(default=None, ge=0, le=255, description="Modbus unit (slave) id")
    address: str | None = Field(
        default=None, description="DL/T 645 meter address: the 12 digits on its nameplate (通信地址)"
    )
    profile: str = Field(min_length=1, description="profile id (e.g. eastron-sdm630) or path to a YAML")
    tags: DeviceTagsConfig = DeviceTagsConfig()
    poll_interval_s: float = Field(default=60.0, ge=0.1, le=86_400)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=10, description="extra attempts per read after a timeout")
    backoff_max_s: float = Field(
        default=300.0, ge=0, le=86_400, description="cap of the retry delay of a device that keeps failing"
    )
    use_group_intervals: bool = Field(
        default=False,
        description="read the profile's slower poll groups (e.g. energy counters) on their own "
        "interval; default: every group at every poll",
    )
    enabled: bool = True

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            raise ValueError("write the address as a quoted string of 12 digits (leading zeros count)")
        if isinstance(v, str):
            try:
                dlt645.address_number(v)
            except dlt645.AddressError as exc:
                raise ValueError(f"{exc}; wildcards are for discovery, not for a configured meter") from None
            return dlt645.check_address(v)
        return v

    @model_validator(mode="after")
    def _one_target(self) -> DeviceConfig:
        if (self.unit is None) == (self.address is None):
            raise ValueError("give unit (Modbus) or address (DL/T 645), not both")
        return self

    def target(self) -> int:
        """What the bus addresses: the Modbus unit id, or the DL/T 645 address as a number."""
        if self.unit is not None:
            return self.unit
        assert self.address is not None
        return dlt645.address_number(self.address)


#: TLS settings of the uplink (the project's one MQTT model, :mod:`epcwatch.mqtt`)
TlsConfig = MqttTls


class MqttConfig(MqttConnection):
    """The uplink: the shared connection keys (:mod:`epcwatch.mqtt`) plus the edge's own."""

    host: str
    client_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="default epcwatch-edge-{site}; must be stable"
    )
    session_expiry_s: int = Field(
        default=7 * 86_400, ge=0, description="MQTT 5: how long the broker keeps the session while away"
    )
    max_inflight: int = Field(default=20, ge=1, le=1000, description="messages awaiting PUBACK")
    max_unacked: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="messages published but not yet acknowledged end to end (bounds what the broker holds)",
    )
    ack_timeout_s: float = Field(
        default=60.0, gt=0, description="publish again what is not acknowledged end to end after this long"
    )
    ack_timeout_max_s: float = Field(
        default=900.0, gt=0, description="the timeout doubles while nothing is acknowledged, up to this"
    )
    stop_drain_s: float = Field(
        default=5.0,
        ge=0,
        description="on a graceful stop, wait this long for the outbox to be acknowledged before exiting",
    )
    max_readings_per_message: int = Field(default=100, ge=1, le=1000)
    max_message_bytes: int = Field(default=256 * 1024, ge=1024, le=10 * 1024 * 1024)
    wire: Literal[1, 2] = Field(
        default=2,
        description="2: readings of several devices in one site message (collectors from 0.2 on); "
        "1: one message per device, for older collectors",
    )
    linger_s: float = Field(
        default=0.5,
        ge=0,
        le=10,
        description="wait this long for more readings of the poll cycle before sending",
    )
    reconnect_max_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _ack_timeouts(self) -> MqttConfig:
        if self.ack_timeout_max_s < self.ack_timeout_s:
            raise ValueError("ack_timeout_max_s must be >= ack_timeout_s")
        return self


class OutboxConfig(_Model):
    path: Path = Path("outbox.sqlite")
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=64 * 1024, description="cap on stored readings")
    full_policy: Literal["drop_oldest", "pause"] = Field(
        default="drop_oldest",
        description="when full: delete the oldest readings (counted) or refuse new ones (counted)",
    )
    synchronous: Literal["full", "normal"] = Field(
        default="full", description="SQLite synchronous setting in WAL mode (see docs/edge.md for the bound)"
    )


class SigningConfig(_Model):
    key_file: Path = Field(
        description="the site's Ed25519 key (PEM, mode 0600; `epcwatch security site-key`): "
        "readings are chained and each message signed (docs/provenance.md)"
    )


class HealthConfig(_Model):
    interval_s: float = Field(default=30.0, ge=1, le=3600, description="wall-clock seconds between reports")
    status_file: Path | None = Field(default=None, description="default: status.json beside the outbox")
    offline_after_failures: int = Field(default=3, ge=1, description="consecutive failed polls → offline")


class SiteConfig(_Model):
    site: Id
    agent: str | None = Field(default=None, max_length=128, description="agent name in health/status")
    buses: list[Bus] = Field(min_length=1)
    devices: list[DeviceConfig] = Field(min_length=1)
    mqtt: MqttConfig
    outbox: OutboxConfig = OutboxConfig()
    health: HealthConfig = HealthConfig()
    signing: SigningConfig | None = None

    @model_validator(mode="after")
    def _references(self) -> SiteConfig:
        bus_ids = [b.id for b in self.buses]
        dup = {b for b in bus_ids if bus_ids.count(b) > 1}
        if dup:
            raise ValueError(f"duplicate bus id(s): {', '.join(sorted(dup))}")
        dev_ids = [d.id for d in self.devices]
        dup = {d for d in dev_ids if dev_ids.count(d) > 1}
        if dup:
            raise ValueError(f"duplicate device id(s): {', '.join(sorted(dup))}")
        buses = {b.id: b for b in self.buses}
        seen: dict[tuple[str, int], str] = {}
        for d in self.devices:
            bus = buses.get(d.bus)
            if bus is None:
                raise ValueError(f"device {d.id}: unknown bus {d.bus!r} (buses: {', '.join(bus_ids)})")
            if isinstance(bus, DLT645_BUS_TYPES):
                if d.address is None:
                    raise ValueError(f"device {d.id}: DL/T 645 bus {bus.id} needs the meter's address")
                what = f"address {d.address}"
            else:
                if d.unit is None:
                    raise ValueError(f"device {d.id}: Modbus bus {bus.id} needs a unit id")
                if not isinstance(bus, TcpBus) and d.unit not in RTU_UNITS:
                    raise ValueError(f"device {d.id}: unit {d.unit} on serial bus {bus.id} must be 1..247")
                what = f"unit {d.unit}"
            other = seen.get((d.bus, d.target()))
            if other is not None:
                raise ValueError(f"devices {other} and {d.id} share {what} on bus {d.bus}")
            seen[(d.bus, d.target())] = d.id
        return self

    def agent_name(self) -> str:
        return self.agent or f"edge-{self.site}"

    def client_id(self) -> str:
        return self.mqtt.client_id or f"epcwatch-edge-{self.site}"

    def bus(self, bus_id: str) -> AnyBus:
        return next(b for b in self.buses if b.id == bus_id)

    def status_file(self) -> Path:
        return self.health.status_file or self.outbox.path.with_name("status.json")


def _resolve(base: Path, p: Path | None) -> Path | None:
    if p is None:
        return None
    p = Path(os.path.expanduser(p))
    return p if p.is_absolute() else (base / p)


def load_site(path: str | os.PathLike[str]) -> SiteConfig:
    """Load and validate a site file; relative paths are resolved against its directory.

    Raises :class:`epcwatch.config.ConfigError` (message names file, line and field).
    """
    cfg = load_yaml_model(path, SiteConfig)
    base = Path(path).resolve().parent
    mqtt = cfg.mqtt.relative_to(base)
    outbox = cfg.outbox.model_copy(update={"path": _resolve(base, cfg.outbox.path)})
    health = cfg.health.model_copy(update={"status_file": _resolve(base, cfg.health.status_file)})
    signing = (
        None
        if cfg.signing is None
        else cfg.signing.model_copy(update={"key_file": _resolve(base, cfg.signing.key_file)})
    )
    return cfg.model_copy(update={"mqtt": mqtt, "outbox": outbox, "health": health, "signing": signing})


def resolve_password(cfg: SiteConfig, path: str | os.PathLike[str]) -> str | None:
    """The MQTT password, or a :class:`ConfigError` naming the variable or file (never its content)."""
    try:
        return cfg.mqtt.resolve_password()
    except MqttError as exc:
        raise ConfigError(path, [f" {exc}"]) from None
