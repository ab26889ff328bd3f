"""``uplink.yaml``: the platform, the identity of this building's gateway, its keys, and which
meter and function carry which ``energy_interval`` field under which item code."""

from __future__ import annotations

import os
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from epcwatch.config import load_yaml_model, read_secret

ItemCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{2}[A-Z0-9]{3}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Secret(_Strict):
    """A key given inline, from an environment variable or from a file (first set wins)."""

    value: str | None = Field(default=None, repr=False)
    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if self.value is None and self.env is None and self.file is None:
            raise ValueError("give value, env or file")
        return self

    def resolve(self) -> str:
        v = read_secret(value=self.value, env=self.env, file=self.file)
        assert v is not None
        return v


class Platform(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    header: str = Field(default="55AA55AA", pattern=r"^([0-9A-Fa-f]{2})+$")
    tail: str = Field(default="68681616", pattern=r"^([0-9A-Fa-f]{2})*$")
    byteorder: Literal["little", "big"] = "little"
    crc: bool = True
    padding: Literal["pkcs7", "zeros"] = "pkcs7"
    answer_timeout_s: float = Field(default=15.0, gt=0)


class FunctionMap(_Strict):
    id: str = Field(min_length=1)
    field: str = "energy_import"
    coding: ItemCode


class MeterMap(_Strict):
    id: str = Field(min_length=1, description="the meter's id on the platform")
    site: str
    device: str
    functions: list[FunctionMap] = Field(min_length=1)


class Influx(_Strict):
    url: str
    database: str = "epcwatch"
    username: str | None = None
    password: str | None = Field(default=None, repr=False)


class UplinkConfig(_Strict):
    platform: Platform
    building_id: str = Field(min_length=1, max_length=32)
    gateway_id: str = Field(min_length=1, max_length=32)
    auth_key: Secret
    aes_key: Secret
    aes_iv: Secret | None = None
    period_s: int = Field(default=900, ge=60)
    heartbeat_s: float = Field(default=60.0, gt=0)
    #: a period is sent this long after it ends (the collector's interval energy must be in)
    delay_s: float = Field(default=120.0, ge=0)
    #: a period whose meters are not all in InfluxDB waits for them this long, then goes with error flags
    give_up_s: float = Field(default=7200.0, ge=0)
    #: the first period to send when there is no cursor yet (ISO 8601); default: the latest due one
    start: str | None = None
    timezone: str = "Asia/Shanghai"
    state_dir: str = "uplink-state"
    backoff_max_s: float = Field(default=300.0, gt=0)
    influx: Influx
    meters: list[MeterMap] = Field(min_length=1)

    @field_validator("meters")
    @classmethod
    def _unique(cls, v: list[MeterMap]) -> list[MeterMap]:
        ids = [m.id for m in v]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            raise ValueError(f"meter ids appear twice: {', '.join(sorted(dup))}")
        return v


def load_uplink_config(path: str | os.PathLike[str]) -> UplinkConfig:
    return load_yaml_model(path, UplinkConfig)
