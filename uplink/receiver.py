"""A reference platform receiver: decodes, verifies and stores what gateways upload.

It plays the platform's side of the protocol (identity check with a random sequence, heartbeat
answers with its clock, ``report_ack``/``continuous_ack`` per data message) and stores every
value in SQLite keyed by building, gateway, meter, function and period time. A value that
arrives again (a gateway resending after a crash) is counted in ``arrivals`` and not stored
twice, so tests can count per meter and interval both what is stored and what was resent.
Used by the tests and by ``epcwatch uplink receiver`` (the demo's platform).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from epcwatch.clock import Clock, SystemClock
from epcwatch.uplink.codec import Codec, Data, DataOp, HeartBeat, IdValidate, Message, md5_answer
from epcwatch.uplink.cursor import platform_time
from epcwatch.uplink.errors import DecryptError, FrameError, MessageError

log = logging.getLogger("epcwatch.uplink.receiver")

SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    building TEXT, gateway TEXT, meter TEXT, function TEXT, coding TEXT, time TEXT,
    value REAL, error TEXT, operation TEXT, sequence TEXT, received_ms INTEGER,
    PRIMARY KEY (building, gateway, meter, function, time)
);
CREATE TABLE IF NOT EXISTS arrivals (
    building TEXT, gateway TEXT, sequence TEXT, operation TEXT, time TEXT,
    values_received INTEGER, values_new INTEGER, received_ms INTEGER
);
CREATE TABLE IF NOT EXISTS logins (building TEXT, gateway TEXT, ok INTEGER, reason TEXT, at_ms INTEGER);
"""


@dataclass
class Store:
    path: Path

    def __post_init__(self) -> None:
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def login(self, building: str, gateway: str, ok: bool, reason: str, at_ms: int) -> None:
        self.db.execute(
            "INSERT INTO logins VALUES (?, ?, ?, ?, ?)", (building, gateway, int(ok), reason, at_ms)
        )

    def data(self, msg: Message, at_ms: int) -> int:
        assert isinstance(msg.body, Data)
        d = msg.body
        rows = [
            (
                msg.building_id,
                msg.gateway_id,
                m.id,
                f.id,
                f.coding,
                d.time,
                f.value,
                f.error,
                d.operation,
                d.sequence,
                at_ms,
            )
            for m in d.meters
            for f in m.functions
        ]
        with self.db:
            self.db.execute("BEGIN")
            before = self.db.total_changes
            self.db.executemany("INSERT OR IGNORE INTO readings VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
            new = self.db.total_changes - before
            self.db.execute(
                "INSERT INTO arrivals VALUES (?,?,?,?,?,?,?,?)",
                (msg.building_id, msg.gateway_id, d.sequence, d.operation, d.time, len(rows), new, at_ms),
            )
        return new

    def close(self) -> None:
        self.db.close()


class ReferenceReceiver:
    def __init__(
        self,
        store: Store,
        codec: Codec,
        auth_key: str,
        *,
        clock: Clock | None = None,
        timezone: str = "Asia/Shanghai",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.store, self.codec, self.auth_key = store, codec, auth_key
        self.clock = clock or SystemClock()
        self.host, self.port = host, port
        self.timezone = timezone
        self.server: asyncio.Server | None = None
        self.rejected = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    def _ms(self) -> int:
        return int(self.clock.now() * 1000)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        decoder = self.codec.decoder()
        sequence: str | None = None
        who: tuple[str, str] | None = None
        authed = False

        def send(m: Message) -> None:
            writer.write(self.codec.encode(m))

        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                for payload in decoder.feed(data):
                    msg = self.codec.decode_payload(payload)
                    b = msg.body
                    me = (msg.building_id, msg.gateway_id)
                    if isinstance(b, IdValidate) and b.operation == "request":
                        sequence, who, authed = secrets.token_hex(8), me, False
                        send(Message(*me, IdValidate("sequence", sequence=sequence)))
                    elif isinstance(b, IdValidate) and b.operation == "md5" and sequence and who == me:
                        authed = secrets.compare_digest(b.md5.lower(), md5_answer(sequence, self.auth_key))
                        self.store.login(*me, authed, "" if authed else "md5 mismatch", self._ms())
                        send(Message(*me, IdValidate("result", result="pass" if authed else "fail")))
                        if not authed:
                            self.rejected += 1
                            log.warning("login of %s/%s from %s refused: MD5 mismatch", *me, peer)
                    elif not authed or who != me:
                        raise MessageError(
                            f"{b.operation} from {me[0]}/{me[1]} before a passed identity check"
                        )
                    elif isinstance(b, HeartBeat) and b.operation == "notify":
                        send(Message(*me, HeartBeat("time", time=platform_time(self._ms(), self.timezone))))
                    elif isinstance(b, Data) and b.operation in ("report", "continuous"):
                        new = self.store.data(msg, self._ms())
                        ack: DataOp = "report_ack" if b.operation == "report" else "continuous_ack"
                        send(Message(*me, Data(ack, b.sequence)))
                        log.info(
                            "%s %s from %s/%s: %d values (%d new)",
                            b.operation,
                            b.time,
                            *me,
                            sum(len(m.functions) for m in b.meters),
                            new,
                        )
                    else:
                        raise MessageError(f"unexpected {b.operation} from a gateway")
                await writer.drain()
        except DecryptError as exc:
            self.rejected += 1
            log.warning("dropping %s: %s (a different AES key?)", peer, exc)
            self.store.login("?", "?", False, f"undecryptable: {exc}", self._ms())
        except (FrameError, MessageError) as exc:
            self.rejected += 1
            log.warning("dropping %s: %s", peer, exc)
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 5)
