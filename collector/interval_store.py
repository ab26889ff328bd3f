"""Durable state of interval energy at ingest: an SQLite file beside the collector.

It holds the book's per-series last samples and open interval sums
(:class:`epcwatch.collector.intervals.IntervalBook`) and the ranges waiting for a repair. The
pipeline stores each batch's changes after the batch is written and before its messages are
acked, so after a crash the stored state matches what was written, and the broker redelivers
exactly the messages whose readings it lacks.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import orjson

from epcwatch.collector.errors import CollectorError
from epcwatch.collector.intervals import Cell, CellKey, Last, Repair, SeriesKey, Snapshot

_SCHEMA = """
CREATE TABLE IF NOT EXISTS last (
    kind TEXT NOT NULL, tags TEXT NOT NULL, field TEXT NOT NULL,
    ts INTEGER NOT NULL, value REAL NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (kind, tags, field)
);
CREATE TABLE IF NOT EXISTS cells (
    kind TEXT NOT NULL, tags TEXT NOT NULL, interval TEXT NOT NULL, start INTEGER NOT NULL,
    "end" INTEGER NOT NULL, sums TEXT NOT NULL,
    PRIMARY KEY (kind, tags, interval, start)
);
CREATE TABLE IF NOT EXISTS repairs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, t0 INTEGER NOT NULL, t1 INTEGER NOT NULL
);
"""


class IntervalStateError(CollectorError):
    """The interval state file cannot be read or written."""


def _tags(series: SeriesKey) -> str:
    return orjson.dumps(series[1]).decode()


def _series(kind: str, tags: str) -> SeriesKey:
    return kind, tuple((str(k), str(v)) for k, v in orjson.loads(tags))


class IntervalStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise IntervalStateError(f"{self.path}: cannot open interval state: {exc}") from None

    def load(self) -> tuple[dict[tuple[SeriesKey, str], Last], dict[CellKey, Cell]]:
        with self._lock:
            try:
                last = {
                    (_series(k, t), f): Last(int(ts), float(v), int(seq))
                    for k, t, f, ts, v, seq in self._db.execute(
                        "SELECT kind, tags, field, ts, value, seq FROM last"
                    )
                }
                cells = {
                    (_series(k, t), iv, int(s)): Cell(
                        int(e), {n: [float(a), float(b)] for n, (a, b) in orjson.loads(sums).items()}
                    )
                    for k, t, iv, s, e, sums in self._db.execute(
                        'SELECT kind, tags, interval, start, "end", sums FROM cells'
                    )
                }
            except sqlite3.Error as exc:
                raise IntervalStateError(f"{self.path}: cannot read interval state: {exc}") from None
        return last, cells

    def save(self, snap: Snapshot) -> None:
        """Store a batch's changes in one transaction."""
        if not snap:
            return
        put_last = [
            (s[0], _tags(s), f, v.ts, v.value, v.seq) for (s, f), v in snap.last.items() if v is not None
        ]
        put_cells = []
        del_cells = []
        for (s, iv, start), c in snap.cells.items():
            if c is None:
                del_cells.append((s[0], _tags(s), iv, start))
            else:
                put_cells.append((s[0], _tags(s), iv, start, c.end, orjson.dumps(c.sums).decode()))
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO last VALUES (?, ?, ?, ?, ?, ?)", put_last)
                self._db.executemany("INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?)", put_cells)
                self._db.executemany(
                    "DELETE FROM cells WHERE kind = ? AND tags = ? AND interval = ? AND start = ?", del_cells
                )
                self._db.executemany(
                    "INSERT INTO repairs (site, t0, t1) VALUES (?, ?, ?)",
                    [(r.site, r.t0, r.t1) for r in snap.repairs],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise IntervalStateError(f"{self.path}: cannot store interval state: {exc}") from None

    def repairs(self, limit: int = 100) -> list[tuple[int, Repair]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, site, t0, t1 FROM repairs ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [(int(i), Repair(str(s), int(a), int(b))) for i, s, a, b in rows]

    def repaired(self, ids: list[int]) -> None:
        with self._lock:
            self._db.executemany("DELETE FROM repairs WHERE id = ?", [(i,) for i in ids])

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()
