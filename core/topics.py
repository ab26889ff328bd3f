"""MQTT topic contract: ``epc/v1/{site}/{device}/telemetry``, ``epc/v1/{site}/status``,
``epc/v1/{site}/health`` (site → collectors), ``epc/v1/{site}/ack`` (collectors → site: the
end-to-end acknowledgements); dead letters outside the site tree so that site ACLs never
cover them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from epcwatch.errors import EpcwatchError

PREFIX: Final = "epc/v1"
ID_PATTERN: Final = r"[a-z0-9][a-z0-9_-]*"
ID_RE: Final = re.compile(rf"^{ID_PATTERN}\Z")
MAX_ID_LEN: Final = 64
DEAD_LETTER_PREFIX: Final = "epc/deadletter/v1"
TELEMETRY_FILTER: Final = f"{PREFIX}/+/+/telemetry"

Channel = Literal["telemetry", "status", "health"]


class TopicError(EpcwatchError, ValueError):
    """A topic or identifier that does not follow the contract."""


def check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or len(value) > MAX_ID_LEN or not ID_RE.match(value):
        raise TopicError(f"{what} {value!r} must match {ID_PATTERN} and be at most {MAX_ID_LEN} characters")
    return value


def telemetry(site: str, device: str) -> str:
    return f"{PREFIX}/{check_id(site, 'site')}/{check_id(device, 'device')}/telemetry"


def status(site: str) -> str:
    return f"{PREFIX}/{check_id(site, 'site')}/status"


def health(site: str) -> str:
    return f"{PREFIX}/{check_id(site, 'site')}/health"


def ack(site: str) -> str:
    """Where collectors confirm to a site which of its readings are stored (QoS 1)."""
    return f"{PREFIX}/{check_id(site, 'site')}/ack"


#: what a collector publishes to: the ack topic of every site
ACK_FILTER: Final = f"{PREFIX}/+/ack"


def dead_letter(group: str) -> str:
    return f"{DEAD_LETTER_PREFIX}/{check_id(group, 'group')}"


def shared_telemetry(group: str) -> str:
    """Shared-subscription filter through which the collectors of one group split the load."""
    return f"$share/{check_id(group, 'group')}/{TELEMETRY_FILTER}"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    site: str
    device: str | None
    channel: Channel


def parse(topic: str) -> ParsedTopic:
    """Parse a topic of the contract; raises :class:`TopicError` for anything else."""
    parts = topic.split("/")
    if parts[:2] != PREFIX.split("/"):
        raise TopicError(f"topic {topic!r} is not under {PREFIX}/")
    rest = parts[2:]
    if len(rest) == 3 and rest[2] == "telemetry":
        return ParsedTopic(check_id(rest[0], "site"), check_id(rest[1], "device"), "telemetry")
    if len(rest) == 2 and rest[1] in ("status", "health"):
        channel: Channel = "status" if rest[1] == "status" else "health"
        return ParsedTopic(check_id(rest[0], "site"), None, channel)
    raise TopicError(f"topic {topic!r} is not a telemetry, status or health topic")
