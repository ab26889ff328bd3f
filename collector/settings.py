"""``collector.yaml``: the collector's configuration (pydantic, unknown keys rejected).

The ``mqtt:`` section is the project's one MQTT connection model (:mod:`epcwatch.mqtt`): its
password is ``{env: NAME}`` or ``{file: PATH}``. InfluxDB secrets (password or token) are given
as ``{env: NAME}``, ``{file: /path}`` or — for tests only — ``{value: …}``; they are resolved with
:func:`epcwatch.config.read_secret` and registered with :func:`epcwatch.logs.redact` so that they
never appear in logs.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from epcwatch import logs
from epcwatch.config import load_yaml_model, read_secret
from epcwatch.fields import Timezone
from epcwatch.mqtt import MqttConnection, MqttTls
from epcwatch.topics import check_id


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Secret(_Strict):
    env: str | None = None
    file: str | None = None
    value: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Secret:
        if sum(x is not None for x in (self.env, self.file, self.value)) != 1:
            raise ValueError("give exactly one of env, file or value")
        return self

    def resolve(self) -> str:
        secret = read_secret(value=self.value, env=self.env, file=self.file)
        assert secret is not None
        logs.redact(secret)
        return secret


#: TLS of the broker connection (the project's one MQTT model, :mod:`epcwatch.mqtt`)
Tls = MqttTls


def _default_client_id() -> str:
    host = "".join(c if c.isalnum() else "-" for c in socket.gethostname().lower()) or "host"
    return f"epcwatch-collector-{host}"


class Mqtt(MqttConnection):
    """The broker connection: the shared keys (:mod:`epcwatch.mqtt`) plus the collector's own."""

    #: stable per instance: the broker keeps this client's session (and its queued messages)
    client_id: str = Field(default_factory=_default_client_id, min_length=1, max_length=128)
    #: the shared-subscription group; collectors of one group split the load
    group: str = "collectors"
    #: MQTT 5: how long the broker keeps the session while the collector is away
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=60)
    #: MQTT 5: unacked messages the broker may have in flight to us (our read-ahead window)
    receive_maximum: int = Field(default=20_000, ge=1, le=65_535)

    @field_validator("group")
    @classmethod
    def _group(cls, v: str) -> str:
        return check_id(v, "group")


class Influx(_Strict):
    writer: Literal["v1", "v2"] = "v1"
    url: str = "http://127.0.0.1:8086"
    #: v1: database (and optional retention policy); the rollup queries it over InfluxQL
    database: str = "epcwatch"
    retention_policy: str | None = None
    username: str | None = None
    password: Secret | None = None
    #: v2 (and token auth on a v1 endpoint of InfluxDB 2.x/3.x)
    token: Secret | None = None
    bucket: str | None = None
    org: str | None = None
    #: where InfluxQL queries go (rollups); defaults to ``url``
    query_url: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    #: concurrent write connections (batches are still acked in order)
    connections: int = Field(default=2, ge=1, le=16)
    verify_tls: bool = True
    ca_file: str | None = None
    gzip: bool = False

    @model_validator(mode="after")
    def _v2(self) -> Influx:
        if self.writer == "v2" and (not self.bucket or not self.org):
            raise ValueError("the v2 writer needs bucket and org")
        return self


class Batch(_Strict):
    #: write when this many points are waiting …
    max_points: int = Field(default=10_000, ge=1)
    #: … or when the oldest waiting message is this old
    max_wait_s: float = Field(default=1.0, gt=0)
    #: larger payloads are dead-lettered unread
    max_payload_bytes: int = Field(default=262_144, ge=1024)


class Retry(_Strict):
    initial_s: float = Field(default=0.5, gt=0)
    max_s: float = Field(default=30.0, gt=0)
    #: longest Retry-After honoured (a server asking for more gets this)
    max_retry_after_s: float = Field(default=300.0, gt=0)


class Health(_Strict):
    interval_s: float = Field(default=10.0, gt=0)


class Rollup(_Strict):
    #: recompute recent intervals periodically while running (idempotent; one collector suffices)
    enabled: bool = True
    every_s: float = Field(default=300.0, gt=0)
    #: how far back each periodic run recomputes
    lookback_h: float = Field(default=3.0, gt=0)
    default_timezone: Timezone = "UTC"
    timezones: dict[str, Timezone] = {}
    #: a portfolio file (core/portfolio.py) whose sites' timezones are used
    portfolio: str | None = None
    max_rate_per_h: float = Field(default=100_000.0, gt=0)
    max_rate_per_h_by_field: dict[str, float] = {}
    moduli: list[float] = []
    max_gap_s: float = Field(default=3600.0, gt=0)
    #: compute energy_interval as readings arrive (collector/intervals.py); the periodic run
    #: above and ``collector rollup`` then serve as repair and backfill
    at_ingest: bool = True
    #: SQLite file of the at-ingest state (relative to the config file's folder); default
    #: collector-intervals.sqlite beside the config, in memory when there is no config file
    state: str | None = None
    #: how often the open (current) quarter and day are written with their running sums
    open_every_s: float = Field(default=60.0, ge=0)
    #: the state file holds a checkpoint and the readings journaled since; a new checkpoint is
    #: written after this many readings (a restart replays at most as many)
    checkpoint_readings: int = Field(default=100_000, ge=1)


class CollectorConfig(_Strict):
    mqtt: Mqtt = Mqtt()
    influx: Influx = Influx()
    batch: Batch = Batch()
    retry: Retry = Retry()
    health: Health = Health()
    rollup: Rollup = Rollup()
    #: a keyring file (docs/provenance.md): signed messages are checked on the way in, and
    #: those whose key or signature fails are dead-lettered
    keyring: str | None = None

    def site_timezones(self, base: Path | None = None) -> tuple[dict[str, str], str]:
        """Site → timezone (portfolio first, then ``rollup.timezones``) and the default."""
        tzs: dict[str, str] = {}
        if self.rollup.portfolio:
            from epcwatch.portfolio import load_portfolio

            path = Path(self.rollup.portfolio)
            if base is not None and not path.is_absolute():
                path = base / path
            tzs.update({s.id: s.timezone for s in load_portfolio(path).sites})
        tzs.update(self.rollup.timezones)
        return tzs, self.rollup.default_timezone


def load(path: str | os.PathLike[str]) -> CollectorConfig:
    """Load ``collector.yaml``; relative MQTT TLS and password files are relative to it."""
    cfg = load_yaml_model(path, CollectorConfig)
    base = Path(path).resolve().parent
    keyring = cfg.keyring
    if keyring is not None and not Path(keyring).is_absolute():
        keyring = str(base / keyring)
    return cfg.model_copy(update={"mqtt": cfg.mqtt.relative_to(base), "keyring": keyring})
