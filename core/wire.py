"""The wire contract: versioned JSON messages exchanged over MQTT, validated on both sides.

A telemetry message carries everything the collector needs to store its readings (no
registry lookup): site, device, the device's kind and descriptive tags, and one or more
readings, each with a per-device monotonic sequence number, a timestamp in milliseconds
taken when the poll completed, values keyed by measurement name and a quality flag.

``epcwatch schema`` prints the JSON Schema of these models for other consumers.
"""

from __future__ import annotations

import itertools
import math
import re
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from epcwatch import measurements
from epcwatch.measurements import FieldType
from epcwatch.topics import ID_PATTERN, MAX_ID_LEN

SCHEMA_VERSION: Final = 1
#: timestamps must fall in [2000-01-01, 2100-01-01) UTC, in milliseconds
MIN_TS_MS: Final = 946_684_800_000
MAX_TS_MS: Final = 4_102_444_800_000
#: largest magnitude accepted for a numeric value; beyond it a reading is corrupt, not energy
MAX_ABS_VALUE: Final = 1e15
INT64_MAX: Final = 2**63 - 1
MAX_READINGS_PER_MESSAGE: Final = 1000

Id = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$", max_length=MAX_ID_LEN)]
#: tag values end up as InfluxDB tag values: printable, no control characters, bounded
TagValue = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]+$", min_length=1, max_length=128)]
DeviceKind = Literal["meter", "hvac", "lighting", "sensor"]
Category = Literal["A", "B", "C", "D"]
Quality = Literal["good", "partial"]
Value = bool | int | float

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _not_bool(v: object) -> object:
    # Literal[1] would accept true (True == 1 in Python)
    if isinstance(v, bool):
        raise ValueError("schema version must be the integer 1")
    return v


Version = Annotated[Literal[1], BeforeValidator(_not_bool)]


class _Frozen(BaseModel):
    # strict: a sender's "5" is not the number 5 and true is not the version 1; the wire has
    # one spelling for each value, so both sides agree on what was measured
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DeviceTags(_Frozen):
    """Descriptive tags of a device; they become InfluxDB tags."""

    building: TagValue | None = None
    floor: TagValue | None = None
    category: Category | None = Field(
        default=None, description="sub-metering category: A lighting & sockets, B HVAC, C power, D special"
    )
    tenant: TagValue | None = None
    profile: TagValue | None = None


class Reading(_Frozen):
    seq: int = Field(ge=0, le=INT64_MAX, description="per-device monotonic sequence number")
    ts: int = Field(
        ge=MIN_TS_MS, lt=MAX_TS_MS, description="poll completion time, ms since the Unix epoch (UTC)"
    )
    values: dict[str, Value] = Field(min_length=1, description="values keyed by measurement name")
    quality: Quality = Field(default="good", description="'partial' when some of the device's points failed")

    @field_validator("values")
    @classmethod
    def _known_finite(cls, values: dict[str, Value]) -> dict[str, Value]:
        for name, v in values.items():
            m = measurements.VOCABULARY.get(name)
            if m is None:
                raise ValueError(f"unknown measurement {name!r}")
            if m.field_type is FieldType.BOOL:
                if not isinstance(v, bool):
                    raise ValueError(f"{name}: expected a boolean, got {v!r}")
                continue
            if isinstance(v, bool):
                raise ValueError(f"{name}: expected a number, got a boolean")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"{name}: value must be finite")
            if abs(v) > MAX_ABS_VALUE:
                raise ValueError(f"{name}: |{v}| exceeds {MAX_ABS_VALUE:g}")
            if m.field_type is FieldType.INT and not float(v).is_integer():
                raise ValueError(f"{name}: expected an integer, got {v!r}")
        return values


class TelemetryMessage(_Frozen):
    """One or more readings of one device (``epc/v1/{site}/{device}/telemetry``)."""

    v: Version = Field(default=SCHEMA_VERSION, description="schema version")
    site: Id
    device: Id
    kind: DeviceKind
    tags: DeviceTags = DeviceTags()
    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)

    @model_validator(mode="after")
    def _seq_increasing(self) -> TelemetryMessage:
        seqs = [r.seq for r in self.readings]
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            raise ValueError("readings must be in strictly increasing seq order")
        return self


class StatusMessage(_Frozen):
    """Retained on ``epc/v1/{site}/status``: ``online`` birth, ``offline`` last will."""

    v: Version = SCHEMA_VERSION
    site: Id
    state: Literal["online", "offline"]
    ts: int | None = Field(default=None, description="ms since the epoch; absent in the last will")
    agent: str | None = None


class DeviceHealth(_Frozen):
    device: Id
    polls_ok: int = Field(ge=0)
    polls_failed: int = Field(ge=0)
    consecutive_failures: int = Field(ge=0, default=0)
    last_latency_ms: float | None = None
    last_ok_ts: int | None = None
    last_error: str | None = None
    frame_errors: int = Field(ge=0, default=0, description="answers that were not valid frames")
    error_replies: int = Field(ge=0, default=0, description="exception / error replies")
    online: bool = True


class HealthMessage(_Frozen):
    """Periodic agent health on ``epc/v1/{site}/health``."""

    v: Version = SCHEMA_VERSION
    site: Id
    ts: int
    agent: str
    uptime_s: float = Field(ge=0)
    outbox_depth: int = Field(ge=0)
    outbox_bytes: int = Field(ge=0)
    outbox_dropped: int = Field(ge=0, default=0)
    published: int = Field(ge=0, default=0)
    connected: bool
    devices: list[DeviceHealth] = []


class DeadLetter(_Frozen):
    """What the collector publishes on ``epc/deadletter/v1/{group}`` for a message it cannot store."""

    v: Version = SCHEMA_VERSION
    topic: str
    reason: str
    received_ts: int
    payload_b64: str = Field(description="the original payload, base64 (it may not be UTF-8)")
    collector: str | None = None


def json_schemas() -> dict[str, Any]:
    """JSON Schemas of every wire model, keyed by model name."""
    return {
        m.__name__: m.model_json_schema()
        for m in (TelemetryMessage, StatusMessage, HealthMessage, DeadLetter)
    }
