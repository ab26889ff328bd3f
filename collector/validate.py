"""Validation of incoming MQTT messages against the wire contract (pure).

:func:`validate` takes a topic and the raw payload bytes and returns either the parsed message
or a :class:`Rejection` with a typed reason and a human-readable detail; it never raises on
input. The reasons are a closed set so that dead letters can be counted and filtered by kind:

- ``oversized``: payload larger than the configured limit (checked first, nothing is parsed)
- ``bad_topic``: a topic outside the contract (should not happen given our subscriptions)
- ``not_utf8``: the payload is not UTF-8
- ``invalid_json``: UTF-8 but not a JSON document
- ``schema``: JSON that does not match the message model (types, missing fields, unknown
  measurements, values out of range, …); the detail names the first offending fields
- ``topic_mismatch``: site or device in the payload differ from the topic's
- ``item_code``: a well-formed ``tags.item_code`` that is not a national item code, or one its
  ``category`` contradicts (the detail names the known codes of its energy class)
- ``unwritable``: a valid message that line protocol cannot carry (a tag value ending in a
  backslash); rejected rather than stored as something else
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from pydantic import ValidationError

from epcwatch import topics
from epcwatch.collector.lineprotocol import tag_value_writable
from epcwatch.itemcodes import ItemCodeError, derive_tags
from epcwatch.wire import HealthMessage, StatusMessage, TelemetryMessage

#: Mosquitto's max_packet_size in the shipped config is 1 MiB; 256 KiB holds 1000 readings
DEFAULT_MAX_BYTES: Final = 262_144
_MAX_ERRORS_SHOWN: Final = 3


class Reason(StrEnum):
    OVERSIZED = "oversized"
    BAD_TOPIC = "bad_topic"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    TOPIC_MISMATCH = "topic_mismatch"
    ITEM_CODE = "item_code"
    UNWRITABLE = "unwritable"
    #: a signed message whose key or signature does not check out (docs/provenance.md)
    PROVENANCE = "provenance"
    #: assigned later by a writer: the database refused the point (type conflict, …)
    REJECTED_BY_DATABASE = "rejected_by_database"


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message cannot be stored; ``str()`` is the dead letter's reason."""

    reason: Reason
    detail: str

    def __str__(self) -> str:
        return f"{self.reason.value}: {self.detail}"


Accepted = TelemetryMessage | HealthMessage | StatusMessage


def _schema_detail(err: ValidationError) -> str:
    parts = []
    errors = err.errors(include_url=False, include_input=False)
    for e in errors[:_MAX_ERRORS_SHOWN]:
        loc = ".".join(str(p) for p in e["loc"]) or "(document)"
        parts.append(f"{loc}: {e['msg']}")
    more = len(errors) - _MAX_ERRORS_SHOWN
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def _parse(model: type[Accepted], payload: bytes) -> Accepted | Rejection:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(Reason.NOT_UTF8, f"invalid UTF-8 at byte {exc.start}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as err:
        first = err.errors(include_url=False, include_input=False)
        if first and first[0]["type"] == "json_invalid":
            return Rejection(Reason.INVALID_JSON, str(first[0]["msg"]))
        return Rejection(Reason.SCHEMA, _schema_detail(err))


def validate(topic: str, payload: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> Accepted | Rejection:
    """Parse and check one message received on ``topic``; never raises on input."""
    if len(payload) > max_bytes:
        return Rejection(Reason.OVERSIZED, f"{len(payload)} bytes > limit {max_bytes}")
    try:
        parsed = topics.parse(topic)
    except topics.TopicError as exc:
        return Rejection(Reason.BAD_TOPIC, str(exc))
    model: type[Accepted]
    if parsed.channel == "telemetry":
        model = TelemetryMessage
    elif parsed.channel == "health":
        model = HealthMessage
    else:
        model = StatusMessage
    result = _parse(model, payload)
    if isinstance(result, Rejection):
        return result
    if result.site != parsed.site:
        return Rejection(Reason.TOPIC_MISMATCH, f"payload site {result.site!r} != topic site {parsed.site!r}")
    if isinstance(result, TelemetryMessage):
        if result.device != parsed.device:
            return Rejection(
                Reason.TOPIC_MISMATCH, f"payload device {result.device!r} != topic device {parsed.device!r}"
            )
        try:
            derive_tags(result.tags.category, result.tags.item_code)
        except ItemCodeError as exc:
            return Rejection(Reason.ITEM_CODE, f"tags.item_code: {exc}")
        for key, value in result.tags.model_dump(exclude_none=True).items():
            if not tag_value_writable(value):
                return Rejection(Reason.UNWRITABLE, f"tag {key} value {value!r} ends with a backslash")
    return result
