"""Durable state of interval energy at ingest: an SQLite file beside the collector.

It holds the book's per-series last samples and open interval sums
(:class:`epcwatch.collector.intervals.IntervalBook`) and the ranges waiting for a repair. The
pipeline stores each batch's changes after the batch is written and before its messages are
acked, so after a crash the stored state matches what was written, and the broker redelivers
exactly the messages whose readings it lacks.

A batch's changes are appended as one row to a log (one JSON document: the series it names,
each once, then by number: the last samples and cells it put, the cells it dropped), not as one
row per series: in the live shape every series
changes in every batch, and a row per series cost as much CPU as parsing the readings. Every
``compact_every`` batches the log is folded into the ``last`` and ``cells`` tables (a series
changed in many batches is written once) in one transaction; :meth:`IntervalStore.load` reads
the tables, then applies the log in order.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, delta BLOB NOT NULL
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
    return kind, _pairs(orjson.loads(tags))


def _pairs(tags: list[list[str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in tags)


def _tags_json(tags: list[list[str]]) -> str:
    """The ``tags`` column of a log entry's tag pairs (as :func:`_tags` writes it)."""
    return orjson.dumps(tags).decode()


#: the key of a cell's seq link in its stored sums document (no measurement is named so)
_LINK = "#seq"


def _cell_doc(cell: Cell) -> dict[str, Sequence[float] | list[int]]:
    """A cell's sums as stored, its seq link beside them."""
    doc: dict[str, Sequence[float] | list[int]] = dict(cell.sums)
    if cell.link is not None:
        doc[_LINK] = cell.link
    return doc


def _cell(end: int, doc: dict[str, list[float]]) -> Cell:
    link = doc.pop(_LINK, None)
    return Cell(
        int(end),
        {n: (float(a), float(b)) for n, (a, b) in doc.items()},
        None if link is None else [int(link[0]), int(link[1])],
    )


def _delta(blob: bytes) -> dict[str, list[Any]]:
    """A log row's document. Rows written before series were numbered (each entry naming its
    kind and tags) are read into the numbered form."""
    doc: dict[str, list[Any]] = orjson.loads(blob)
    if "s" in doc:
        return doc
    index: dict[str, int] = {}
    series: list[list[Any]] = []

    def number(kind: str, tags: list[list[str]]) -> int:
        key = orjson.dumps([kind, tags]).decode()
        if key not in index:
            index[key] = len(series)
            series.append([kind, tags])
        return index[key]

    return {
        "s": series,
        "l": [[number(k, t), *rest] for k, t, *rest in doc["l"]],
        "c": [[number(k, t), *rest] for k, t, *rest in doc["c"]],
        "d": [[number(k, t), *rest] for k, t, *rest in doc["d"]],
    }


#: rows of the folded state, keyed as the tables are: (kind, tags JSON, field) → (ts, value, seq)
_LastRows = dict[tuple[str, str, str], tuple[int, float, int]]
#: (kind, tags JSON, interval, start) → (end, sums JSON), or None: the cell is dropped
_CellRows = dict[tuple[str, str, str, int], tuple[int, str] | None]


class IntervalStore:
    def __init__(self, path: str | Path, *, compact_every: int = 64) -> None:
        self.path = str(path)
        self.compact_every = compact_every
        self._lock = threading.Lock()
        self._logged = 0  # log rows since the last fold
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._logged = int(self._db.execute("SELECT count(*) FROM log").fetchone()[0])
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
                    (_series(k, t), iv, int(s)): _cell(e, orjson.loads(sums))
                    for k, t, iv, s, e, sums in self._db.execute(
                        'SELECT kind, tags, interval, start, "end", sums FROM cells'
                    )
                }
                deltas = [d for (d,) in self._db.execute("SELECT delta FROM log ORDER BY id")]
            except sqlite3.Error as exc:
                raise IntervalStateError(f"{self.path}: cannot read interval state: {exc}") from None
        for blob in deltas:
            doc = _delta(blob)
            series = [(k, _pairs(tags)) for k, tags in doc["s"]]
            for i, f, ts, v, seq in doc["l"]:
                last[(series[i], f)] = Last(int(ts), float(v), int(seq))
            for i, iv, start, end, sums in doc["c"]:
                cells[(series[i], iv, int(start))] = _cell(end, sums)
            for i, iv, start in doc["d"]:
                cells.pop((series[i], iv, int(start)), None)
        return last, cells

    def save(self, snap: Snapshot) -> None:
        """Store a batch's changes in one transaction (one log row; the log folded when due)."""
        if not snap:
            return
        index: dict[SeriesKey, int] = {}  # each series is named once per entry, then by number
        put_cells = []
        del_cells = []
        for (series, iv, start), c in snap.cells.items():
            i = index.setdefault(series, len(index))
            if c is None:
                del_cells.append((i, iv, start))
            else:
                put_cells.append((i, iv, start, c.end, _cell_doc(c)))
        doc = {
            "l": [
                (index.setdefault(series, len(index)), f, v.ts, v.value, v.seq)
                for (series, f), v in snap.last.items()
                if v is not None
            ],
            "c": put_cells,
            "d": del_cells,
            "s": list(index),
        }
        blob = orjson.dumps(doc)
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if doc["l"] or put_cells or del_cells:
                    self._db.execute("INSERT INTO log (delta) VALUES (?)", (blob,))
                    self._logged += 1
                self._db.executemany(
                    "INSERT INTO repairs (site, t0, t1) VALUES (?, ?, ?)",
                    [(r.site, r.t0, r.t1) for r in snap.repairs],
                )
                if self._logged >= self.compact_every:
                    self._fold()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                self._logged = int(self._db.execute("SELECT count(*) FROM log").fetchone()[0])
                raise IntervalStateError(f"{self.path}: cannot store interval state: {exc}") from None

    def _fold(self) -> None:
        """Fold the log into the tables (inside the caller's transaction)."""
        last: _LastRows = {}
        cells: _CellRows = {}
        top = 0
        for i, blob in self._db.execute("SELECT id, delta FROM log ORDER BY id"):
            top = i
            doc = _delta(blob)
            series = [(k, _tags_json(tags)) for k, tags in doc["s"]]
            for n, f, ts, v, seq in doc["l"]:
                last[(*series[n], f)] = (ts, v, seq)
            for n, iv, start, end, sums in doc["c"]:
                cells[(*series[n], iv, start)] = (end, orjson.dumps(sums).decode())
            for n, iv, start in doc["d"]:
                cells[(*series[n], iv, start)] = None
        self._db.executemany(
            "INSERT OR REPLACE INTO last VALUES (?, ?, ?, ?, ?, ?)", [(*k, *v) for k, v in last.items()]
        )
        self._db.executemany(
            "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?, ?)",
            [(*k, *v) for k, v in cells.items() if v is not None],
        )
        self._db.executemany(
            "DELETE FROM cells WHERE kind = ? AND tags = ? AND interval = ? AND start = ?",
            [k for k, v in cells.items() if v is None],
        )
        self._db.execute("DELETE FROM log WHERE id <= ?", (top,))
        self._logged = 0

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
