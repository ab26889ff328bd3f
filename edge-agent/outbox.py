"""The durable store-and-forward outbox: an SQLite (WAL) queue of readings.

Guarantees (see docs/edge.md, "Outbox guarantees"):

* A reading is *committed* when :meth:`Outbox.append` returns. With ``synchronous=FULL`` (the
  default) a committed reading survives ``kill -9`` and a power cut; with ``NORMAL`` it survives
  ``kill -9``, and a power cut may roll back the transactions committed since the last WAL
  checkpoint (at most ``wal_autocheckpoint`` = 1,000 pages: 1 MB with a new outbox's 1 KiB pages).
* Each device's readings get a monotonic ``seq`` in the same transaction as the insert; the
  next seq is persisted, so it keeps increasing across restarts. A gap in seq on the receiving
  side is exactly the number of readings dropped by the full policy.
* Rows are deleted only by :meth:`delete_acked`, which the forwarder calls with the seq ranges
  a collector acknowledged end to end (the readings are in InfluxDB, or durably dead-lettered),
  by :meth:`delete`, and by the ``drop_oldest`` full policy, which counts every row it removes.
  A broker's PUBACK deletes nothing. Deletes commit without an fsync: after a power cut a few
  acknowledged readings may be sent again, never lost.
* With ``site`` given (a signing site, docs/provenance.md), each reading's place in its device's
  hash chain is fixed in the append transaction: the row's ``chain`` column holds the previous
  digest and the reading's digest (64 bytes), and the chain head is persisted beside the next
  seq, so a reading sent again after a crash carries the same digest.
* Row ids grow monotonically (``AUTOINCREMENT``) so ``ORDER BY id`` is insertion order, which
  per device is seq order.

The class is synchronous and thread-safe (one connection behind a lock); the agent runs it on
a single dedicated thread so that an fsync never stalls the Modbus event loop.

Disk (flash wear) per reading, see docs/edge.md "Disk writes":

* **Compact rows.** A reading is stored as a packed body (:func:`pack_body`): a layout id (the
  value names and their binary types, kept once in the ``layouts`` table) and the values as
  float32 where that is exact, else float64 / int64 / bool. 14 float32 values take 60 bytes
  instead of ~480 bytes of JSON. :meth:`fetch` renders the wire ``Reading`` JSON again, byte for
  byte what the row held before; rows written as JSON by older versions are still read.
* **Pages.** A new outbox uses 1 KiB pages (``page_size`` must be set before the WAL exists): a
  transaction writes every page it touches in full into the WAL, and the few bookkeeping pages
  of each commit (sequence, device seq, tree interior) then cost 1 KiB each instead of 4 KiB.
  ``secure_delete`` is off (Debian's SQLite turns it on), so a delete no longer rewrites the
  deleted rows' pages with zeros; readings are not secrets, and the file is the agent's own.
* **Commits.** The agent commits once per poll cycle (``agent.py``), so the fixed cost of a
  transaction is shared by all devices polled in it.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson

from epcwatch import provenance
from epcwatch.edge.batching import Row
from epcwatch.edge.errors import OutboxError
from epcwatch.wire import Quality, Value

FullPolicy = Literal["drop_oldest", "pause"]


def _lock_exclusively(path: Path) -> int:
    """One process per outbox: two agents on one file would hand out the same seq twice. The
    kernel drops the ``flock`` when the process dies, even by SIGKILL. Returns the lock's fd."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise OutboxError(f"{path}: cannot open outbox: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OutboxError(f"{path}: in use by another process (another agent with this outbox?)") from None
    return fd


_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    ts     INTEGER NOT NULL,
    size   INTEGER NOT NULL,
    body   BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_device_seq ON readings (device, seq);
CREATE TABLE IF NOT EXISTS device_seq (device TEXT PRIMARY KEY, next_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS layouts (id INTEGER PRIMARY KEY, names TEXT NOT NULL, fmt TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS chain_head (device TEXT PRIMARY KEY, head BLOB NOT NULL);
"""


#: page size of a new outbox file (an existing file keeps its own)
PAGE_SIZE = 1024
#: first byte of a packed body (a JSON body starts with ``{``)
PACKED = 0x01
_QUALITY = ("good", "partial")
_F32 = struct.Struct("<f")


def value_format(v: Value, wide: bool = False) -> str:
    """The struct code a value is stored with: ``?`` bool, ``q`` int, ``f`` a float that float32
    holds exactly (what most meters send), else ``d``; ``wide`` forces ``d`` for floats."""
    if isinstance(v, bool):
        return "?"
    if isinstance(v, int):
        return "q"
    if not wide:
        try:
            if _F32.unpack(_F32.pack(v))[0] == v:
                return "f"
        except OverflowError:
            pass
    return "d"


def pack_body(layout: int, fmt: str, values: Sequence[Value], quality: Quality) -> bytes:
    """A packed reading body: marker, quality, layout id (uint32), values by ``fmt``."""
    return struct.pack(f"<BBI{fmt}", PACKED, _QUALITY.index(quality), layout, *values)


def render_body(seq: int, ts: int, body: bytes, layouts: Mapping[int, tuple[tuple[str, ...], str]]) -> bytes:
    """The wire ``Reading`` JSON of a stored body (packed, or JSON as older versions stored it)."""
    if not body or body[0] != PACKED:
        return body
    _, q, layout = struct.unpack_from("<BBI", body)
    names, fmt = layouts[layout]
    values = struct.unpack_from(f"<{fmt}", body, 6)
    doc = {"seq": seq, "ts": ts, "values": dict(zip(names, values, strict=True)), "quality": _QUALITY[q]}
    return orjson.dumps(doc)


@dataclass(frozen=True, slots=True)
class NewReading:
    """A reading as the poller produces it, before the outbox gives it a seq."""

    device: str
    ts: int
    values: Mapping[str, Value]
    quality: Quality = "good"


@dataclass(frozen=True, slots=True)
class AppendResult:
    stored: int
    dropped: int  # old rows removed by drop_oldest to make room
    refused: int  # new readings refused by pause


class Outbox:
    """SQLite WAL queue of readings, bounded by bytes; see the module docstring."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        full_policy: FullPolicy = "drop_oldest",
        synchronous: Literal["full", "normal"] = "full",
        site: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.full_policy = full_policy
        self.site = site
        self._lock = threading.Lock()
        self._owner = _lock_exclusively(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves
            self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            self._db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # only takes effect on a new file
            self._db.execute("PRAGMA secure_delete=OFF")
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(f"{self.path}: cannot switch to WAL journal mode (got {mode})")
            self._sync = synchronous.upper()
            self._db.execute(f"PRAGMA synchronous={self._sync}")
            self._db.executescript(_SCHEMA)
            cols = {str(c[1]) for c in self._db.execute("PRAGMA table_info(readings)")}
            if "chain" not in cols:  # an outbox created before provenance
                self._db.execute("ALTER TABLE readings ADD COLUMN chain BLOB")
            self._heads: dict[str, bytes] = {
                str(d): bytes(h) for d, h in self._db.execute("SELECT device, head FROM chain_head")
            }
            row = self._db.execute("SELECT COALESCE(SUM(size), 0), COUNT(*) FROM readings").fetchone()
            self._bytes, self._depth = int(row[0]), int(row[1])
            self._next_seq: dict[str, int] = dict(self._db.execute("SELECT device, next_seq FROM device_seq"))
            self._counters: dict[str, int] = dict(self._db.execute("SELECT name, value FROM counters"))
            self._layouts: dict[int, tuple[tuple[str, ...], str]] = {}
            self._layout_ids: dict[tuple[tuple[str, ...], str], int] = {}
            self._wide: set[str] = set()  # names once stored as float64 stay float64 (fewer layouts)
            for lid, names_json, fmt in self._db.execute("SELECT id, names, fmt FROM layouts"):
                names = tuple(orjson.loads(names_json))
                self._remember_layout(int(lid), names, str(fmt))
        except sqlite3.Error as exc:
            os.close(self._owner)
            raise OutboxError(f"{self.path}: cannot open outbox: {exc}") from None

    # -- state -------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Readings stored (including those handed to the broker but not yet acknowledged)."""
        return self._depth

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def dropped(self) -> int:
        """Readings removed unsent by ``drop_oldest`` since the outbox was created."""
        return self._counters.get("dropped", 0)

    @property
    def refused(self) -> int:
        """Readings refused by ``pause`` since the outbox was created."""
        return self._counters.get("refused", 0)

    @property
    def full(self) -> bool:
        return self._bytes >= self.max_bytes

    def next_seq(self, device: str) -> int:
        return self._next_seq.get(device, 0)

    def _remember_layout(self, lid: int, names: tuple[str, ...], fmt: str) -> None:
        self._layouts[lid] = (names, fmt)
        self._layout_ids[(names, fmt)] = lid
        self._wide.update(n for n, c in zip(names, fmt, strict=True) if c == "d")

    # -- writes ------------------------------------------------------------------------------
    def continue_chains(self, heads: Mapping[str, tuple[int, builtins.bytes]]) -> None:
        """Continue chains begun elsewhere (the demo's signed history): each device's next reading
        gets seq ``last + 1`` and links to ``head`` (device → (last seq, head digest)). Only for
        devices this outbox has never numbered: their seqs must not run backwards."""
        taken = sorted(d for d in heads if d in self._next_seq)
        if taken:
            raise OutboxError(f"{self.path}: devices already numbered here: {', '.join(taken)}")
        if any(len(h) != 32 for _, h in heads.values()):
            raise OutboxError("a chain head is a 32-byte digest")
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO device_seq (device, next_seq) VALUES (?, ?)",
                    [(d, last + 1) for d, (last, _) in heads.items()],
                )
                self._db.executemany(
                    "INSERT INTO chain_head (device, head) VALUES (?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET head = excluded.head",
                    [(d, h) for d, (_, h) in heads.items()],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: cannot store chain heads: {exc}") from None
        self._next_seq.update({d: last + 1 for d, (last, _) in heads.items()})
        self._heads.update({d: h for d, (_, h) in heads.items()})

    def append(self, readings: Sequence[NewReading]) -> AppendResult:
        """Store readings in one transaction; returns once they are committed."""
        if not readings:
            return AppendResult(0, 0, 0)
        with self._lock:
            try:
                return self._append(readings)
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: append failed: {exc}") from None

    def _append(self, readings: Sequence[NewReading]) -> AppendResult:
        db = self._db
        stored = dropped = refused = 0
        seqs = dict(self._next_seq)
        added_bytes = 0
        rows: list[tuple[str, int, int, int, bytes, bytes | None]] = []
        heads = dict(self._heads)
        new_layouts: dict[tuple[tuple[str, ...], str], int] = {}
        next_layout = max(self._layouts, default=0) + 1
        for r in readings:
            seq = seqs.get(r.device, 0)
            names = tuple(r.values)
            values = tuple(r.values.values())
            wide = self._wide
            fmt = "".join(value_format(v, n in wide) for n, v in zip(names, values, strict=True))
            lid = self._layout_ids.get((names, fmt)) or new_layouts.get((names, fmt))
            if lid is None:
                lid = new_layouts[(names, fmt)] = next_layout
                next_layout += 1
            body = pack_body(lid, fmt, values, r.quality)
            size = len(body)
            if self.full_policy == "pause" and self._bytes + added_bytes + size > self.max_bytes:
                refused += 1
                continue
            seqs[r.device] = seq + 1
            link: bytes | None = None
            if self.site is not None:
                prev = heads.get(r.device, provenance.GENESIS)
                try:
                    digest = provenance.reading_digest(
                        self.site, r.device, provenance.ChainReading(seq, r.ts, r.values, r.quality), prev
                    )
                except provenance.ProvenanceError as exc:
                    raise OutboxError(f"{r.device}: reading has no canonical form: {exc}") from None
                heads[r.device] = digest
                link = prev + digest
            rows.append((r.device, seq, r.ts, size, body, link))
            added_bytes += size
            stored += 1
        db.execute("BEGIN IMMEDIATE")
        freed = 0
        if self.full_policy == "drop_oldest" and self._bytes + added_bytes > self.max_bytes:
            need = self._bytes + added_bytes - self.max_bytes
            for rid, size in db.execute("SELECT id, size FROM readings ORDER BY id"):
                if freed >= need:
                    break
                db.execute("DELETE FROM readings WHERE id = ?", (rid,))
                freed += int(size)
                dropped += 1
        if new_layouts:
            db.executemany(
                "INSERT INTO layouts (id, names, fmt) VALUES (?, ?, ?)",
                [(lid, orjson.dumps(list(n)).decode(), f) for (n, f), lid in new_layouts.items()],
            )
        if rows:
            db.executemany(
                "INSERT INTO readings (device, seq, ts, size, body, chain) VALUES (?, ?, ?, ?, ?, ?)", rows
            )
            if heads != self._heads:
                db.executemany(
                    "INSERT INTO chain_head (device, head) VALUES (?, ?) "
                    "ON CONFLICT(device) DO UPDATE SET head = excluded.head",
                    [(d, h) for d, h in heads.items() if h != self._heads.get(d)],
                )
            db.executemany(
                "INSERT INTO device_seq (device, next_seq) VALUES (?, ?) "
                "ON CONFLICT(device) DO UPDATE SET next_seq = excluded.next_seq",
                [(d, s) for d, s in seqs.items() if s != self._next_seq.get(d)],
            )
        counters = dict(self._counters)
        if dropped:
            counters["dropped"] = counters.get("dropped", 0) + dropped
        if refused:
            counters["refused"] = counters.get("refused", 0) + refused
        if counters != self._counters:
            db.executemany(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                list(counters.items()),
            )
        db.execute("COMMIT")
        # in-memory mirrors change only once the transaction is durable
        self._next_seq = seqs
        self._heads = heads
        self._counters = counters
        for (names, fmt), lid in new_layouts.items():
            self._remember_layout(lid, names, fmt)
        self._bytes += added_bytes - freed
        self._depth += stored - dropped
        return AppendResult(stored, dropped, refused)

    def delete(self, ids: Iterable[int]) -> int:
        """Delete acknowledged rows; returns how many existed (dropped rows may be gone already)."""
        id_list = list(ids)
        if not id_list:
            return 0
        with self._lock:
            try:
                # a delete need not be durable: losing it re-delivers acknowledged readings, which
                # is harmless (writes are idempotent), so it skips the fsync that appends pay
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                freed = n = 0
                for i in range(0, len(id_list), 500):
                    chunk = id_list[i : i + 500]
                    marks = ",".join("?" * len(chunk))
                    for (size,) in self._db.execute(
                        f"DELETE FROM readings WHERE id IN ({marks}) RETURNING size", chunk
                    ).fetchall():
                        freed += int(size)
                        n += 1
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: delete failed: {exc}") from None
            finally:
                self._db.execute(f"PRAGMA synchronous={self._sync}")
            self._bytes -= freed
            self._depth -= n
            return n

    def delete_acked(self, ranges: Sequence[tuple[str, int, int]]) -> list[int]:
        """Delete the readings of ``(device, first seq, last seq)`` ranges (inclusive), acknowledged
        end to end; returns the ids of the rows that existed (the rest were deleted already)."""
        if not ranges:
            return []
        with self._lock:
            gone: list[int] = []
            freed = 0
            try:
                self._db.execute("PRAGMA synchronous=NORMAL")  # as in delete(): loss = a resend
                self._db.execute("BEGIN IMMEDIATE")
                for device, first, last in ranges:
                    for rid, size in self._db.execute(
                        "DELETE FROM readings WHERE device = ? AND seq BETWEEN ? AND ? RETURNING id, size",
                        (device, first, last),
                    ).fetchall():
                        gone.append(int(rid))
                        freed += int(size)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: delete failed: {exc}") from None
            finally:
                self._db.execute(f"PRAGMA synchronous={self._sync}")
            self._bytes -= freed
            self._depth -= len(gone)
            return gone

    # -- reads -------------------------------------------------------------------------------
    def oldest_ts(self) -> int | None:
        """Poll time (ms) of the oldest reading still in the outbox, ``None`` when it is empty."""
        with self._lock:
            try:
                row = self._db.execute("SELECT ts FROM readings ORDER BY id LIMIT 1").fetchone()
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: read failed: {exc}") from None
            return None if row is None else int(row[0])

    def fetch(self, after_id: int = 0, limit: int = 1000) -> list[Row]:
        """Oldest rows with ``id > after_id``, in insertion order."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "SELECT id, device, seq, ts, body, chain FROM readings WHERE id > ? ORDER BY id LIMIT ?",
                    (after_id, limit),
                )
                layouts = self._layouts
                return [
                    Row(
                        int(i), str(d), render_body(sq, ts, bytes(b), layouts), int(sq),
                        None if c is None else bytes(c),
                    )
                    for i, d, sq, ts, b, c in cur
                ]
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: read failed: {exc}") from None

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            if self._owner >= 0:
                os.close(self._owner)  # releases the lock
                self._owner = -1

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
