"""Durable state of interval energy at ingest: an SQLite file beside the collector.

It holds the book's (:class:`epcwatch.collector.intervals.IntervalBook`) last **checkpoint** (one
JSON document: every counter's last sample, every interval in progress), the **changes** stored
after it (one log row per batch: a journal of the readings it folded, or a delta of the state it
changed; each document names its series once, then refers to them by number), and the ranges
waiting for a repair. The pipeline stores each batch's part after the batch is written and before
its messages are acked, so after a crash the stored state matches what was written, and the
broker redelivers exactly the messages whose readings it lacks. A checkpoint replaces the previous
one and drops the changes in one transaction. :meth:`IntervalStore.load` reads the checkpoint and
the changes; :meth:`IntervalBook.restore` applies them in order.

Files of earlier versions still load: their ``last`` and ``cells`` tables, then their log rows
(deltas) applied in order; the first checkpoint replaces them.
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
from epcwatch.collector.intervals import (
    Cell,
    CellKey,
    Change,
    Delta,
    Entry,
    Last,
    Repair,
    SeriesKey,
    Snapshot,
)

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
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1), state BLOB NOT NULL
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


def _delta_row(delta: Delta) -> bytes:
    """A delta (or a whole state) as one document: its series named once each, then the last
    samples, the cells put and the cells dropped, by series number."""
    index: dict[SeriesKey, int] = {}
    put = []
    drop = []
    for (series, iv, start), c in delta.cells.items():
        i = index.setdefault(series, len(index))
        if c is None:
            drop.append((i, iv, start))
        else:
            put.append((i, iv, start, c.end, _cell_doc(c)))
    doc = {
        "l": [(index.setdefault(s, len(index)), f, v.ts, v.value, v.seq) for (s, f), v in delta.last.items()],
        "c": put,
        "d": drop,
        "s": list(index),
    }
    return orjson.dumps(doc)


def _journal_row(journal: list[Entry]) -> bytes:
    """One batch's journal as a log row: its series and its lists of counter names named once
    each, then every reading by their numbers, with its counters' values (all the book needs to
    fold it again)."""
    series: dict[int, int] = {}  # id of a series key (one object per series) → its number
    keys: list[SeriesKey] = []
    names: dict[int, int] = {}  # id of a list of counter names (one per shape) → its number
    lists: list[Sequence[str]] = []
    rows = []
    for key, seq, ts, values, counters, linked in journal:
        i = series.get(id(key))
        if i is None:
            i = series[id(key)] = len(keys)
            keys.append(key)
        n = names.get(id(counters))
        if n is None:
            n = names[id(counters)] = len(lists)
            lists.append(counters)
        rows.append((i, seq, ts, n, values, linked))
    return orjson.dumps({"s": keys, "n": lists, "r": rows})


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

    def load(self) -> tuple[dict[tuple[SeriesKey, str], Last], dict[CellKey, Cell], list[Change]]:
        """The last checkpoint (with the deltas stored right after it folded in) and the changes
        stored after those, in order (:meth:`IntervalBook.restore` applies them)."""
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
                deltas = [d for (d,) in self._db.execute("SELECT state FROM checkpoint")]
                deltas += [d for (d,) in self._db.execute("SELECT delta FROM log ORDER BY id")]
            except sqlite3.Error as exc:
                raise IntervalStateError(f"{self.path}: cannot read interval state: {exc}") from None
        changes: list[Change] = []
        for blob in deltas:
            doc = _delta(blob)
            series = [(k, _pairs(tags)) for k, tags in doc["s"]]
            if "r" in doc:
                lists = [tuple(n) for n in doc["n"]]
                changes.append(
                    [
                        (
                            series[i],
                            int(seq),
                            int(ts),
                            tuple(values),
                            lists[k],
                            bool(linked),
                        )
                        for i, seq, ts, k, values, linked in doc["r"]
                    ]
                )
                continue
            delta = Delta()
            for i, f, ts, v, seq in doc["l"]:
                delta.last[(series[i], f)] = Last(int(ts), float(v), int(seq))
            for i, iv, start, end, sums in doc["c"]:
                delta.cells[(series[i], iv, int(start))] = _cell(end, sums)
            for i, iv, start in doc["d"]:
                delta.cells[(series[i], iv, int(start))] = None
            if changes:
                changes.append(delta)
                continue
            # no journal before it: folded into the state
            last.update(delta.last)
            for key, c in delta.cells.items():
                if c is None:
                    cells.pop(key, None)
                else:
                    cells[key] = c
        return last, cells, changes

    def save(self, snap: Snapshot) -> None:
        """Store a batch's part in one transaction: its journal or its delta as one log row, or a
        checkpoint, and its repairs."""
        if not snap:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if snap.checkpoint is not None:
                    self._checkpoint(*snap.checkpoint)
                elif snap.delta is not None:
                    self._db.execute("INSERT INTO log (delta) VALUES (?)", (_delta_row(snap.delta),))
                elif snap.journal:
                    self._db.execute("INSERT INTO log (delta) VALUES (?)", (_journal_row(snap.journal),))
                self._db.executemany(
                    "INSERT INTO repairs (site, t0, t1) VALUES (?, ?, ?)",
                    [(r.site, r.t0, r.t1) for r in snap.repairs],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise IntervalStateError(f"{self.path}: cannot store interval state: {exc}") from None

    def _checkpoint(self, last: dict[tuple[SeriesKey, str], Last], cells: dict[CellKey, Cell]) -> None:
        """Store a whole state as the checkpoint and drop the changes stored before it (in the
        caller's transaction). One document, in the form of a delta."""
        self._db.execute("DELETE FROM last")
        self._db.execute("DELETE FROM cells")
        self._db.execute("DELETE FROM log")
        self._db.execute(
            "INSERT OR REPLACE INTO checkpoint VALUES (1, ?)", (_delta_row(Delta(last, dict(cells))),)
        )

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
