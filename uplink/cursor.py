"""The uplink's durable state and its schedule arithmetic.

The cursor is the start of the next period to send, committed (SQLite, synchronous=FULL) only
after the platform acknowledged the period. After a crash the unacknowledged period is sent
again with the same ``sequence`` (derived from the period's start), which is how the platform
recognises the repeat.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo


class Cursor:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS cursor (key TEXT PRIMARY KEY, next_ms INTEGER NOT NULL)")

    def get(self, key: str) -> int | None:
        row = self.db.execute("SELECT next_ms FROM cursor WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def set(self, key: str, next_ms: int) -> None:
        self.db.execute(
            "INSERT INTO cursor (key, next_ms) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET next_ms = excluded.next_ms",
            (key, next_ms),
        )

    def close(self) -> None:
        self.db.close()


def latest_due(now_ms: int, period_ms: int, delay_ms: int) -> int:
    """Start of the newest period that has ended at least ``delay_ms`` ago."""
    return (now_ms - delay_ms) // period_ms * period_ms - period_ms


def next_due_at(start_ms: int, period_ms: int, delay_ms: int) -> int:
    """When the period starting at ``start_ms`` becomes due."""
    return start_ms + period_ms + delay_ms


def operation(start_ms: int, now_ms: int, period_ms: int, delay_ms: int) -> Literal["report", "continuous"]:
    """``report`` for the newest due period, ``continuous`` for an older one (catching up)."""
    return "report" if start_ms >= latest_due(now_ms, period_ms, delay_ms) else "continuous"


def sequence_of(start_ms: int, period_ms: int) -> str:
    """The data sequence of a period: its index since the epoch (the same on every resend)."""
    return str(start_ms // period_ms)


def platform_time(ms: int, timezone: str) -> str:
    """``YYYYMMDDhhmmss`` in the building's local time."""
    return datetime.fromtimestamp(ms / 1000, ZoneInfo(timezone)).strftime("%Y%m%d%H%M%S")
