"""Agent health: per-device poll counters and the agent's outbox/uplink state.

:class:`HealthBook` is updated by the pollers and the forwarder and turned into a wire
:class:`~epcwatch.wire.HealthMessage` every N seconds. The same document is written atomically
to a status file (with the agent's PID) that ``epcwatch edge status`` reads, so the status of a
running agent is available on the box even while the uplink is down.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from epcwatch.wire import DeviceHealth, HealthMessage


@dataclass
class _DeviceState:
    polls_ok: int = 0
    polls_failed: int = 0
    consecutive_failures: int = 0
    last_latency_ms: float | None = None
    last_ok_ts: int | None = None
    last_error: str | None = None
    frame_errors: int = 0
    error_replies: int = 0
    holes: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


class HealthBook:
    def __init__(self, devices: list[str], offline_after_failures: int = 3) -> None:
        self.devices = {d: _DeviceState() for d in devices}
        self.offline_after = offline_after_failures

    def poll_ok(self, device: str, latency_s: float, ts_ms: int, note: str | None = None) -> None:
        s = self.devices[device]
        s.polls_ok += 1
        s.consecutive_failures = 0
        s.last_latency_ms = round(latency_s * 1000.0, 3)
        s.last_ok_ts = ts_ms
        s.last_error = note

    def poll_failed(self, device: str, latency_s: float, error: str) -> None:
        s = self.devices[device]
        s.polls_failed += 1
        s.consecutive_failures += 1
        s.last_latency_ms = round(latency_s * 1000.0, 3)
        s.last_error = error[:300]

    def bad_answers(self, device: str, frame_errors: int, error_replies: int) -> None:
        """Count answers that were not valid frames, and error/exception replies."""
        s = self.devices[device]
        s.frame_errors += frame_errors
        s.error_replies += error_replies

    def holes(self, device: str, holes: Sequence[str], refused: Sequence[str]) -> None:
        """The device refuses these registers (learned); ``refused`` points cannot be read at all."""
        s = self.devices[device]
        s.holes = tuple(holes)
        s.refused = tuple(refused)

    def counts(self, device: str) -> tuple[int, int]:
        s = self.devices[device]
        return s.polls_ok, s.polls_failed

    def device_health(self) -> list[DeviceHealth]:
        return [
            DeviceHealth(
                device=d,
                polls_ok=s.polls_ok,
                polls_failed=s.polls_failed,
                consecutive_failures=s.consecutive_failures,
                last_latency_ms=s.last_latency_ms,
                last_ok_ts=s.last_ok_ts,
                last_error=s.last_error,
                frame_errors=s.frame_errors,
                error_replies=s.error_replies,
                online=s.consecutive_failures < self.offline_after and s.polls_ok > 0,
                read_holes=list(s.holes) or None,
                refused_points=list(s.refused) or None,
            )
            for d, s in self.devices.items()
        ]

    def message(
        self,
        *,
        site: str,
        agent: str,
        ts_ms: int,
        uptime_s: float,
        outbox_depth: int,
        outbox_bytes: int,
        outbox_dropped: int,
        published: int,
        connected: bool,
        outbox_unacked: int = 0,
        outbox_oldest_age_s: float | None = None,
    ) -> HealthMessage:
        return HealthMessage(
            site=site,
            ts=ts_ms,
            agent=agent,
            uptime_s=max(0.0, uptime_s),
            outbox_depth=outbox_depth,
            outbox_bytes=outbox_bytes,
            outbox_dropped=outbox_dropped,
            outbox_unacked=outbox_unacked,
            outbox_oldest_age_s=outbox_oldest_age_s,
            published=published,
            connected=connected,
            devices=self.device_health(),
        )


def write_status_file(path: Path, health: HealthMessage, extra: dict[str, Any] | None = None) -> None:
    """Atomically replace the status file: ``{"pid", "written", "health", …}``."""
    doc = {"pid": os.getpid(), "written": time.time(), "health": health.model_dump(mode="json")}
    doc.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    os.replace(tmp, path)


def read_status_file(path: Path) -> dict[str, Any]:
    """The last status document; raises OSError or ValueError."""
    doc = orjson.loads(path.read_bytes())
    if not isinstance(doc, dict) or "health" not in doc:
        raise ValueError(f"{path} is not an epcwatch status file")
    HealthMessage.model_validate(doc["health"])
    return doc
