"""The durable store-and-forward outbox: an SQLite (WAL) queue of readings.

Guarantees (see docs/edge.md, "Outbox guarantees"):

* A reading is *committed* when :meth:`Outbox.append` returns. With ``synchronous=FULL`` (the
  default) a committed reading survives ``kill -9`` and a power cut; with ``NORMAL`` it survives
  ``kill -9``, and a power cut may roll back the transactions committed since the last WAL
  checkpoint (at most ``wal_autocheckpoint`` = 1,000 pages: 1 MB with a new outbox's 1 KiB pages).
* Each device's readings get a monotonic ``seq`` in the same transaction as the insert; the
  next seq is persisted, so it keeps increasing across restarts. A gap in seq on the receiving
  side is exactly the number of readings dropped by the full policy.
* Rows are deleted only on an end-to-end acknowledgement (:meth:`delete_acked`, which the
  forwarder calls with the seq ranges a collector acknowledged: the readings are in InfluxDB, or
  durably dead-lettered), by :meth:`delete`, and by the ``drop_oldest`` full policy, which counts
  every row it removes. A broker's PUBACK deletes nothing. Acknowledged rows leave :attr:`depth`
  and :meth:`fetch` at once and are deleted from the file inside the next append's transaction
  (or after ``delete_delay_s`` by one of their own, without an fsync): after a crash or power cut
  a few acknowledged readings may be sent again, never lost.
* With ``site`` given (a signing site, docs/provenance.md), each reading's place in its device's
  hash chain is fixed in the append transaction: the row's ``chain`` column holds the previous
  digest and the reading's digest (64 bytes), and the chain head is persisted in the device's
  ``device_seq`` row beside its next seq, so a reading sent again after a crash carries the same
  digest.
* Row ids are given by the outbox, growing monotonically while it is open, so ``ORDER BY id`` is
  insertion order, which per device is seq order.

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
  of each commit (device seq, page 1, tree interior) then cost 1 KiB each instead of 4 KiB.
  ``secure_delete`` is off (Debian's SQLite turns it on), so a delete no longer rewrites the
  deleted rows' pages with zeros; readings are not secrets, and the file is the agent's own.
* **No index, no AUTOINCREMENT.** Rows are appended at the end of the table's B-tree and deleted
  from its front; an acknowledgement's (device, seq) ranges resolve to row ids through what
  :meth:`fetch` handed out (in memory), so no ``(device, seq)`` index is kept: such an index gets
  one entry per device in a different leaf page, and with a backlog each commit rewrote one
  index page per device. Row ids come from the outbox, so no ``sqlite_sequence`` page is
  rewritten either.
* **Commits.** The agent commits once per poll cycle (``agent.py``), so the fixed cost of a
  transaction is shared by all devices polled in it, and the acknowledged rows are deleted in
  that same transaction, not in one of their own.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import os
import sqlite3
import struct
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    id     INTEGER PRIMARY KEY,
    device TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    ts     INTEGER NOT NULL,
    size   INTEGER NOT NULL,
    body   BLOB    NOT NULL,
    chain  BLOB
);
CREATE TABLE IF NOT EXISTS device_seq (device TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, head BLOB);
CREATE TABLE IF NOT EXISTS layouts (id INTEGER PRIMARY KEY, names TEXT NOT NULL, fmt TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an outbox written by an older version to the current layout (one transaction):
    no ``(device, seq)`` index (acknowledgements resolve to row ids in memory), the chain head
    in the ``device_seq`` row instead of a ``chain_head`` table, and, when it is empty, a
    ``readings`` table without ``AUTOINCREMENT`` (whose ``sqlite_sequence`` page every commit
    rewrote)."""
    tables = {str(n): str(sql or "") for n, sql in db.execute("SELECT name, sql FROM sqlite_master")}
    db.execute("BEGIN IMMEDIATE")
    try:
        if "readings_device_seq" in tables:
            db.execute("DROP INDEX readings_device_seq")
        if "readings" in tables:
            cols = {str(c[1]) for c in db.execute("PRAGMA table_info(readings)")}
            if "chain" not in cols:  # an outbox created before provenance
                db.execute("ALTER TABLE readings ADD COLUMN chain BLOB")
            if "AUTOINCREMENT" in tables["readings"].upper() and db.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM readings)"
            ).fetchone()[0]:
                db.execute("DROP TABLE readings")
        if "device_seq" in tables:
            cols = {str(c[1]) for c in db.execute("PRAGMA table_info(device_seq)")}
            if "head" not in cols:
                db.execute("ALTER TABLE device_seq ADD COLUMN head BLOB")
        for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
            db.execute(stmt)
        if "chain_head" in tables:
            db.execute(
                "INSERT INTO device_seq (device, next_seq, head) SELECT device, 0, head FROM chain_head "
                "WHERE true ON CONFLICT(device) DO UPDATE SET head = excluded.head"
            )
            db.execute("DROP TABLE chain_head")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


#: how long acknowledged rows may wait for an append's transaction to delete them before a
#: transaction of their own does (see :meth:`Outbox.delete_acked`)
DELETE_DELAY_S = 5.0
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
        delete_delay_s: float = DELETE_DELAY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.full_policy = full_policy
        self.site = site
        self.delete_delay_s = delete_delay_s
        self.monotonic = monotonic
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
            _migrate(self._db)
            row = self._db.execute(
                "SELECT COALESCE(SUM(size), 0), COUNT(*), MAX(id) FROM readings"
            ).fetchone()
            self._bytes, self._depth = int(row[0]), int(row[1])
            self._next_id = int(row[2] or 0) + 1
            self._next_seq: dict[str, int] = {}
            self._heads: dict[str, bytes] = {}
            for d, n, h in self._db.execute("SELECT device, next_seq, head FROM device_seq"):
                self._next_seq[str(d)] = int(n)
                if h is not None:
                    self._heads[str(d)] = bytes(h)
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
        #: rows handed out by :meth:`fetch` and not deleted: device → seq → (row id, size); an
        #: acknowledgement's (device, seq) ranges resolve to row ids here, without an index
        self._handed: dict[str, dict[int, tuple[int, int]]] = {}
        #: acknowledged rows not yet deleted from the file: row id → size (see delete_delay_s)
        self._acked: dict[int, int] = {}
        self._acked_bytes = 0  # their sizes' sum (read from other threads: never iterated there)
        self._acked_since: float | None = None

    # -- state -------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Readings stored and not acknowledged (including those handed to the broker)."""
        return self._depth - len(self._acked)

    @property
    def bytes(self) -> int:
        return self._bytes - self._acked_bytes

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
        return self.bytes >= self.max_bytes

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
                    "INSERT INTO device_seq (device, next_seq, head) VALUES (?, ?, ?)",
                    [(d, last + 1, h) for d, (last, h) in heads.items()],
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: cannot store chain heads: {exc}") from None
        self._next_seq.update({d: last + 1 for d, (last, _) in heads.items()})
        self._heads.update({d: h for d, (_, h) in heads.items()})

    def append(self, readings: Sequence[NewReading]) -> AppendResult:
        """Store readings in one transaction; returns once they are committed. The same
        transaction deletes the rows acknowledged since the last one."""
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
        rows: list[tuple[int, str, int, int, int, bytes, bytes | None]] = []
        heads = dict(self._heads)
        new_layouts: dict[tuple[tuple[str, ...], str], int] = {}
        next_layout = max(self._layouts, default=0) + 1
        next_id = self._next_id
        room = self.max_bytes - self.bytes
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
            if self.full_policy == "pause" and added_bytes + size > room:
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
            rows.append((next_id, r.device, seq, r.ts, size, body, link))
            next_id += 1
            added_bytes += size
            stored += 1
        db.execute("BEGIN IMMEDIATE")
        gone = dict(self._delete_acked_rows())
        freed = sum(gone.values())
        dropped_ids: list[int] = []
        if self.full_policy == "drop_oldest" and self._bytes - freed + added_bytes > self.max_bytes:
            need = self._bytes - freed + added_bytes - self.max_bytes
            drop = 0
            for rid, size in db.execute("SELECT id, size FROM readings ORDER BY id"):
                if drop >= need:
                    break
                dropped_ids.append(int(rid))
                drop += int(size)
            self._delete_ids(dropped_ids)
            freed += drop
            dropped = len(dropped_ids)
        if new_layouts:
            db.executemany(
                "INSERT INTO layouts (id, names, fmt) VALUES (?, ?, ?)",
                [(lid, orjson.dumps(list(n)).decode(), f) for (n, f), lid in new_layouts.items()],
            )
        if rows:
            db.executemany(
                "INSERT INTO readings (id, device, seq, ts, size, body, chain) VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            # the next seq and the chain head of a device share its row: one upsert per device
            db.executemany(
                "INSERT INTO device_seq (device, next_seq, head) VALUES (?, ?, ?) "
                "ON CONFLICT(device) DO UPDATE SET next_seq = excluded.next_seq, head = excluded.head",
                [(d, s, heads.get(d)) for d, s in seqs.items() if s != self._next_seq.get(d)],
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
        self._next_id = next_id
        for (names, fmt), lid in new_layouts.items():
            self._remember_layout(lid, names, fmt)
        self._deleted(list(gone), dropped_ids)
        self._bytes += added_bytes - freed
        self._depth += stored - len(gone) - dropped
        return AppendResult(stored, dropped, refused)

    def _delete_ids(self, ids: Iterable[int]) -> int:
        """Delete rows by id (inside a transaction), in id order: rows go from the front of the
        table, so whole leaf pages are freed (and never written again) rather than rewritten."""
        id_list = sorted(ids)
        n = 0
        for i in range(0, len(id_list), 500):
            chunk = id_list[i : i + 500]
            cur = self._db.execute(f"DELETE FROM readings WHERE id IN ({','.join('?' * len(chunk))})", chunk)
            n += cur.rowcount
        return n

    def _delete_acked_rows(self) -> dict[int, int]:
        """Delete the acknowledged rows (inside a transaction); returns them (id → size)."""
        gone = self._acked
        if gone:
            self._delete_ids(gone)
        return gone

    def _deleted(self, gone: Iterable[int], handed: Iterable[int] = ()) -> None:
        """After a committed delete: ``gone`` acknowledged rows (no longer in ``_handed``) and
        ``handed`` rows deleted otherwise (drop_oldest, :meth:`delete`) leave the bookkeeping."""
        for rid in gone:
            self._acked_bytes -= self._acked.pop(rid, 0)
        ids = set(handed)
        if ids:
            for rid in ids & self._acked.keys():
                self._acked_bytes -= self._acked.pop(rid)
            for device, seqs in list(self._handed.items()):
                for seq in [q for q, (rid, _) in seqs.items() if rid in ids]:
                    del seqs[seq]
                if not seqs:
                    del self._handed[device]
        if not self._acked:
            self._acked_since = None

    def delete(self, ids: Iterable[int]) -> int:
        """Delete rows now (e.g. acknowledged); returns how many existed (dropped rows may be
        gone already)."""
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
            self._deleted((), id_list)
            self._bytes -= freed
            self._depth -= n
            return n

    def delete_acked(self, ranges: Sequence[tuple[str, int, int]]) -> list[int]:
        """Mark the readings of ``(device, first seq, last seq)`` ranges (inclusive), acknowledged
        end to end, as done; returns the ids of those rows (the rest were done already).

        Only rows this outbox handed out (:meth:`fetch`) are known by (device, seq); a range
        naming rows not handed out since the outbox was opened leaves them, and they are sent and
        acknowledged again. The rows leave :attr:`depth` and :meth:`fetch` at once; they are
        deleted from the file by the next append's transaction, or by :meth:`flush` once the
        oldest has waited ``delete_delay_s`` (a delete need not be durable: one lost to a crash
        re-delivers acknowledged readings, which is harmless)."""
        if not ranges:
            return []
        with self._lock:
            done: list[int] = []
            for device, first, last in ranges:
                handed = self._handed.get(device)
                if not handed:
                    continue
                if last - first < len(handed):
                    seqs = [q for q in range(first, last + 1) if q in handed]
                else:
                    seqs = [q for q in handed if first <= q <= last]
                for q in seqs:
                    rid, size = handed.pop(q)
                    self._acked[rid] = size
                    self._acked_bytes += size
                    done.append(rid)
                if not handed:
                    del self._handed[device]
            if done and self._acked_since is None:
                self._acked_since = self.monotonic()
        self.flush(force=False)
        return done

    def flush(self, force: bool = True) -> int:
        """Delete the acknowledged rows in a transaction of their own: always with ``force``,
        else once the oldest has waited ``delete_delay_s``. Returns how many were deleted."""
        with self._lock:
            if not self._acked:
                return 0
            if not force and not self.flush_due():
                return 0
            try:
                self._db.execute("PRAGMA synchronous=NORMAL")  # as in delete(): loss = a resend
                self._db.execute("BEGIN IMMEDIATE")
                gone = dict(self._delete_acked_rows())
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: delete failed: {exc}") from None
            finally:
                self._db.execute(f"PRAGMA synchronous={self._sync}")
            self._deleted(list(gone))
            self._bytes -= sum(gone.values())
            self._depth -= len(gone)
            return len(gone)

    def flush_due(self) -> bool:
        """Acknowledged rows have waited ``delete_delay_s`` for an append (see :meth:`flush`)."""
        since = self._acked_since
        return since is not None and self.monotonic() - since >= self.delete_delay_s

    # -- reads -------------------------------------------------------------------------------
    def oldest_ts(self) -> int | None:
        """Poll time (ms) of the oldest reading still in the outbox, ``None`` when it is empty."""
        with self._lock:
            try:
                cur = self._db.execute("SELECT id, ts FROM readings ORDER BY id")
                for rid, ts in cur:
                    if rid not in self._acked:
                        return int(ts)
                return None
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: read failed: {exc}") from None

    def fetch(self, after_id: int = 0, limit: int = 1000) -> list[Row]:
        """Oldest rows with ``id > after_id``, in insertion order (acknowledged ones left out)."""
        with self._lock:
            try:
                cur = self._db.execute(
                    "SELECT id, device, seq, ts, size, body, chain FROM readings WHERE id > ? "
                    "ORDER BY id LIMIT ?",
                    (after_id, limit + len(self._acked)),
                )
                layouts = self._layouts
                acked = self._acked
                handed = self._handed
                out: list[Row] = []
                for i, d, sq, ts, size, b, c in cur:
                    if i in acked:
                        continue
                    if len(out) >= limit:
                        break
                    device = str(d)
                    handed.setdefault(device, {})[int(sq)] = (int(i), int(size))
                    out.append(
                        Row(
                            int(i), device, render_body(sq, ts, bytes(b), layouts), int(sq),
                            None if c is None else bytes(c),
                        )
                    )
                return out
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: read failed: {exc}") from None

    def close(self) -> None:
        with contextlib.suppress(OutboxError):
            self.flush()
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
