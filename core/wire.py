"""The wire contract: versioned JSON messages exchanged over MQTT, validated on both sides.

A telemetry message carries everything the collector needs to store its readings (no
registry lookup): site, device, the device's kind and descriptive tags, and one or more
readings, each with a per-device monotonic sequence number, a timestamp in milliseconds
taken when the poll completed, values keyed by measurement name and a quality flag.

An acknowledgement (``epc/v1/{site}/ack``) goes the other way: a collector tells a site, per
device, the sequence ranges it has stored (written to InfluxDB, or durably dead-lettered);
only then does the edge delete those readings from its outbox. It depends on nothing but
(device, seq), so any message shape that carries seqs can be acknowledged.

``epcwatch schema`` prints the JSON Schema of these models for other consumers.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable
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
from epcwatch.itemcodes import CODE_PATTERN
from epcwatch.measurements import FieldType
from epcwatch.topics import ID_PATTERN, MAX_ID_LEN

SCHEMA_VERSION: Final = 1
#: the site message: one poll cycle of several devices of a site in one document
SITE_SCHEMA_VERSION: Final = 2
#: timestamps must fall in [2000-01-01, 2100-01-01) UTC, in milliseconds
MIN_TS_MS: Final = 946_684_800_000
MAX_TS_MS: Final = 4_102_444_800_000
#: largest magnitude accepted for a numeric value; beyond it a reading is corrupt, not energy
MAX_ABS_VALUE: Final = 1e15
INT64_MAX: Final = 2**63 - 1
MAX_READINGS_PER_MESSAGE: Final = 1000
#: bounds of one acknowledgement (a collector splits larger ones)
MAX_ACK_DEVICES: Final = 10_000
MAX_ACK_RANGES: Final = 10_000

Id = Annotated[str, StringConstraints(pattern=rf"^{ID_PATTERN}$", max_length=MAX_ID_LEN)]
#: tag values end up as InfluxDB tag values: printable, no control characters, bounded
TagValue = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]+$", min_length=1, max_length=128)]
DeviceKind = Literal["meter", "hvac", "lighting", "sensor"]
Category = Literal["A", "B", "C", "D"]
#: a national item code's shape (``01A10``); whether it is a known code the collector decides
#: (dead letter ``item_code``), so that the table can grow without a new wire version
ItemCodeTag = Annotated[str, StringConstraints(pattern=rf"^{CODE_PATTERN}$")]
Quality = Literal["good", "partial"]
Value = bool | int | float

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _not_bool(v: object) -> object:
    # Literal[1] would accept true (True == 1 in Python)
    if isinstance(v, bool):
        raise ValueError("schema version must be the integer 1")
    return v


Version = Annotated[Literal[1], BeforeValidator(_not_bool)]
Version2 = Annotated[Literal[2], BeforeValidator(_not_bool)]


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
    item_code: ItemCodeTag | None = Field(
        default=None,
        description="national sub-metering item code (分类分项能耗编码), e.g. 01A10; added in v1 "
        "as an optional tag (collectors accept it from this release on)",
    )


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


B64_32 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{43}=$")]
B64_64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9+/]{86}==$")]


class Proof(_Frozen):
    """The edge's signature over a message's readings (docs/provenance.md). The readings' digests
    are not sent: the receiver recomputes them from the readings and ``first_prev``."""

    kid: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{16}$")] = Field(description="key id")
    first_prev: B64_32 = Field(description="digest the first reading links to, base64 (32 bytes)")
    sig: B64_64 = Field(description="Ed25519 signature over the signed range, base64 (64 bytes)")


class TelemetryMessage(_Frozen):
    """One or more readings of one device (``epc/v1/{site}/{device}/telemetry``)."""

    v: Version = Field(default=SCHEMA_VERSION, description="schema version")
    site: Id
    device: Id
    kind: DeviceKind
    tags: DeviceTags = DeviceTags()
    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)
    proof: Proof | None = Field(
        default=None, description="signature of a signing site (added in v1, optional; docs/provenance.md)"
    )

    @model_validator(mode="after")
    def _seq_increasing(self) -> TelemetryMessage:
        seqs = [r.seq for r in self.readings]
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            raise ValueError("readings must be in strictly increasing seq order")
        if self.proof is not None and seqs[-1] - seqs[0] != len(seqs) - 1:
            raise ValueError("a signed message holds consecutive seqs")
        return self


class DeviceBlock(_Frozen):
    """The readings of one device inside a :class:`SiteTelemetryMessage`."""

    device: Id
    kind: DeviceKind
    tags: DeviceTags = DeviceTags()
    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)
    proof: Proof | None = Field(
        default=None,
        description="signature of a signing site over this block's readings (docs/provenance.md)",
    )

    @model_validator(mode="after")
    def _seq_increasing(self) -> DeviceBlock:
        seqs = [r.seq for r in self.readings]
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            raise ValueError("readings must be in strictly increasing seq order")
        if self.proof is not None and seqs[-1] - seqs[0] != len(seqs) - 1:
            raise ValueError("a signed block holds consecutive seqs")
        return self


class SiteTelemetryMessage(_Frozen):
    """Schema 2: readings of several devices of one site (``epc/v1/{site}/_site/telemetry``).

    Each device appears once, with its own kind, tags and readings in increasing seq order (and,
    from a signing site, its own ``proof``), so per-device order, idempotence and provenance are
    those of schema 1; the whole document carries at most
    ``MAX_READINGS_PER_MESSAGE`` readings."""

    v: Version2 = Field(default=SITE_SCHEMA_VERSION, description="schema version")
    site: Id
    devices: list[DeviceBlock] = Field(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)

    @model_validator(mode="after")
    def _unique_bounded(self) -> SiteTelemetryMessage:
        ids = [b.device for b in self.devices]
        if len(set(ids)) != len(ids):
            raise ValueError("each device may appear only once")
        if sum(len(b.readings) for b in self.devices) > MAX_READINGS_PER_MESSAGE:
            raise ValueError(f"at most {MAX_READINGS_PER_MESSAGE} readings per message")
        return self

    def blocks(self) -> list[TelemetryMessage]:
        """The same readings as schema-1 messages, one per device."""
        return [
            TelemetryMessage.model_construct(
                v=SCHEMA_VERSION,
                site=self.site,
                device=b.device,
                kind=b.kind,
                tags=b.tags,
                readings=b.readings,
                proof=b.proof,
            )
            for b in self.devices
        ]


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
    #: register ranges the device refuses (learned by the agent, planned around), e.g. "fc4 18..29"
    read_holes: list[str] | None = None
    #: points of the device's profile that it refuses outright (never read)
    refused_points: list[str] | None = None


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
    outbox_unacked: int = Field(
        ge=0, default=0, description="readings published but not yet acknowledged end to end"
    )
    outbox_oldest_age_s: float | None = Field(
        default=None, ge=0, description="age of the oldest reading in the outbox (its poll time to now)"
    )
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


def telemetry_messages(payload: bytes | str) -> list[TelemetryMessage]:
    """Decode a telemetry payload of either schema into schema-1 messages, one per device block
    (for consumers that need not care which shape a site sends); raises pydantic's
    ``ValidationError`` like ``model_validate_json``."""
    if b'"devices"' in (payload.encode() if isinstance(payload, str) else payload):
        return SiteTelemetryMessage.model_validate_json(payload).blocks()
    return [TelemetryMessage.model_validate_json(payload)]


Seq = Annotated[int, Field(ge=0, le=INT64_MAX)]
SeqRange = tuple[Seq, Seq]


class Ack(_Frozen):
    """End-to-end acknowledgement on ``epc/v1/{site}/ack`` (QoS 1), published by a collector once
    the readings are stored: per device, inclusive ``[first, last]`` seq ranges, sorted and
    disjoint. The edge deletes exactly those readings from its outbox."""

    v: Version = SCHEMA_VERSION
    site: Id
    devices: dict[Id, Annotated[list[SeqRange], Field(min_length=1, max_length=MAX_ACK_RANGES)]] = Field(
        min_length=1, max_length=MAX_ACK_DEVICES, description="device → inclusive [first, last] seq ranges"
    )
    collector: str | None = Field(default=None, max_length=128)

    @field_validator("devices")
    @classmethod
    def _ranges(cls, devices: dict[str, list[tuple[int, int]]]) -> dict[str, list[tuple[int, int]]]:
        for device, ranges in devices.items():
            prev = -1
            for first, last in ranges:
                if last < first or first <= prev:
                    raise ValueError(f"{device}: ranges must be sorted, disjoint and first <= last")
                prev = last
        return devices


def coalesce(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint inclusive ranges covering exactly the union of ``ranges`` (adjacent ones
    merged: ``(0, 4), (5, 9)`` → ``(0, 9)``)."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            if last > out[-1][1]:
                out[-1] = (out[-1][0], last)
        else:
            out.append((first, last))
    return out


def json_schemas() -> dict[str, Any]:
    """JSON Schemas of every wire model, keyed by model name."""
    return {
        m.__name__: m.model_json_schema()
        for m in (TelemetryMessage, SiteTelemetryMessage, StatusMessage, HealthMessage, DeadLetter, Ack)
    }
