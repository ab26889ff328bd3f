"""Health points: agents' and devices' (from their messages) and the collector's own."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from epcwatch.collector.lineprotocol import point
from epcwatch.wire import HealthMessage, StatusMessage


def agent_health_lines(msg: HealthMessage) -> list[str]:
    """``agent_health`` and one ``device_health`` point per device, at the message's ``ts``."""
    lines = []
    age = msg.outbox_oldest_age_s
    agent = point(
        "agent_health",
        {"site": msg.site, "agent": msg.agent},
        {
            "outbox_depth": msg.outbox_depth,
            "outbox_bytes": msg.outbox_bytes,
            "outbox_dropped": msg.outbox_dropped,
            "outbox_unacked": msg.outbox_unacked,
            "outbox_oldest_age_s": None if age is None else float(age),
            "published": msg.published,
            "connected": msg.connected,
            "uptime_s": float(msg.uptime_s),
        },
        msg.ts,
    )
    if agent:
        lines.append(agent)
    for d in msg.devices:
        line = point(
            "device_health",
            {"site": msg.site, "device": d.device},
            {
                "polls_ok": d.polls_ok,
                "polls_failed": d.polls_failed,
                "consecutive_failures": d.consecutive_failures,
                "frame_errors": d.frame_errors,
                "error_replies": d.error_replies,
                "last_latency_ms": None if d.last_latency_ms is None else float(d.last_latency_ms),
                "last_ok_ts": d.last_ok_ts,
                "online": d.online,
            },
            msg.ts,
        )
        if line:
            lines.append(line)
    return lines


def status_lines(msg: StatusMessage, received_ms: int) -> list[str]:
    """``agent_health.connected`` from the birth/last-will message (the will carries no ts)."""
    line = point(
        "agent_health",
        {"site": msg.site, "agent": msg.agent},
        {"connected": msg.state == "online"},
        msg.ts if msg.ts is not None else received_ms,
    )
    return [line] if line else []


@dataclass
class Stats:
    """Counters shared by the consumer thread and the writer (guarded by a lock)."""

    messages: int = 0
    points: int = 0
    dead_letters: int = 0
    writes: int = 0
    write_errors: int = 0
    redelivered: int = 0
    #: sum and count of write latencies since the last health point
    _latency_sum: float = 0.0
    _latency_n: int = 0
    lag_ms: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *, messages: int = 0, points: int = 0, dead_letters: int = 0) -> None:
        with self._lock:
            self.messages += messages
            self.points += points
            self.dead_letters += dead_letters

    def write_done(self, latency_s: float) -> None:
        with self._lock:
            self.writes += 1
            self._latency_sum += latency_s
            self._latency_n += 1

    def write_failed(self) -> None:
        with self._lock:
            self.write_errors += 1

    def set_lag(self, lag_ms: float) -> None:
        with self._lock:
            self.lag_ms = lag_ms


@dataclass
class HealthReporter:
    """Turns :class:`Stats` into a ``collector_health`` point every ``interval_s``."""

    stats: Stats
    collector: str
    group: str
    interval_s: float
    _last_mono: float | None = None
    _last_messages: int = 0
    _last_points: int = 0

    def due(self, mono: float) -> bool:
        return self._last_mono is None or mono - self._last_mono >= self.interval_s

    def line(self, now: float, mono: float) -> str | None:
        """The point at wall time ``now``; ``mono`` (monotonic) schedules the next one."""
        s = self.stats
        with s._lock:
            messages, points, dls = s.messages, s.points, s.dead_letters
            latency = s._latency_sum / s._latency_n if s._latency_n else None
            s._latency_sum, s._latency_n = 0.0, 0
            lag, writes, errors = s.lag_ms, s.writes, s.write_errors
        elapsed = None if self._last_mono is None else mono - self._last_mono
        fields: dict[str, float | int | None] = {
            "messages": messages,
            "points": points,
            "dead_letters": dls,
            "writes": writes,
            "write_errors": errors,
            "write_latency_ms": None if latency is None else latency * 1000.0,
            "lag_ms": None if lag is None else float(lag),
        }
        if elapsed and elapsed > 0:
            fields["messages_per_s"] = (messages - self._last_messages) / elapsed
            fields["points_per_s"] = (points - self._last_points) / elapsed
        self._last_mono, self._last_messages, self._last_points = mono, messages, points
        return point(
            "collector_health", {"collector": self.collector, "group": self.group}, fields, int(now * 1000)
        )
