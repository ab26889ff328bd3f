"""``epcwatch uplink run``: sends each period's interval energy to the platform.

One TCP connection at a time: identity check, then a loop that sends every due period in
order (``report`` for the newest, ``continuous`` while catching up after an outage), waits for
the platform's acknowledgement, commits the cursor, and sends a heartbeat when the line has
been quiet for ``heartbeat_s``. Any failure (platform away, login refused, a malformed or
undecryptable answer) closes the connection, is logged as one clear line and retried after an
exponential backoff; nothing is skipped, because the cursor only moves on an acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from epcwatch.clock import Clock
from epcwatch.uplink.codec import (
    Cipher,
    Codec,
    Data,
    FrameDecoder,
    FrameFormat,
    Function,
    HeartBeat,
    IdValidate,
    Message,
    MeterData,
    md5_answer,
)
from epcwatch.uplink.cursor import Cursor, latest_due, next_due_at, operation, platform_time, sequence_of
from epcwatch.uplink.errors import (
    DecryptError,
    FrameError,
    LoginRefusedError,
    MessageError,
    PlatformUnavailableError,
    UplinkError,
)
from epcwatch.uplink.settings import Platform, UplinkConfig
from epcwatch.uplink.source import Slots, Source

log = logging.getLogger("epcwatch.uplink")

FETCH_PERIODS = 96


def codec_for(platform: Platform, aes_key: str, aes_iv: str | None) -> Codec:
    return Codec(
        Cipher(aes_key.encode(), aes_iv.encode() if aes_iv else None, platform.padding),
        FrameFormat(
            bytes.fromhex(platform.header), bytes.fromhex(platform.tail), platform.byteorder, platform.crc
        ),
    )


class Connection:
    """Frames over one asyncio stream pair, with an answer timeout in wall seconds."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, codec: Codec, timeout: float
    ) -> None:
        self.reader, self.writer, self.codec, self.timeout = reader, writer, codec, timeout
        self.decoder: FrameDecoder = codec.decoder()
        self.pending: list[bytes] = []

    async def send(self, msg: Message) -> None:
        try:
            self.writer.write(self.codec.encode(msg))
            await self.writer.drain()
        except OSError as exc:
            raise PlatformUnavailableError(f"platform connection lost while sending: {exc}") from None

    async def receive(self, what: str) -> Message:
        while not self.pending:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), self.timeout)
            except TimeoutError:
                raise PlatformUnavailableError(
                    f"no {what} from the platform within {self.timeout:g} s"
                ) from None
            except OSError as exc:
                raise PlatformUnavailableError(
                    f"platform connection lost waiting for {what}: {exc}"
                ) from None
            if not data:
                raise PlatformUnavailableError(f"platform closed the connection instead of sending {what}")
            self.pending.extend(self.decoder.feed(data))
        return self.codec.decode_payload(self.pending.pop(0))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 5)


@dataclass
class Counters:
    logins: int = 0
    reports: int = 0
    continuous: int = 0
    acked: int = 0
    heartbeats: int = 0
    errors: int = 0
    last_error: str = ""
    by_kind: dict[str, int] = field(default_factory=dict)


Connector = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]


class Uplink:
    def __init__(
        self,
        cfg: UplinkConfig,
        clock: Clock,
        source: Source,
        cursor: Cursor,
        *,
        start_ms: int | None = None,
        until_ms: int | None = None,
        connect: Connector | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.source = source
        self.cursor = cursor
        self.until_ms = until_ms
        self.period_ms = cfg.period_s * 1000
        self.delay_ms = int(cfg.delay_s * 1000)
        self.key = f"{cfg.building_id}/{cfg.gateway_id}"
        self.start_ms = start_ms
        self.codec = codec_for(
            cfg.platform, cfg.aes_key.resolve(), cfg.aes_iv.resolve() if cfg.aes_iv else None
        )
        self.auth_key = cfg.auth_key.resolve()
        self.counters = Counters()
        self._connect = connect or asyncio.open_connection
        self._cache: Slots = {}

    # ------------------------------------------------------------------ schedule
    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    def next_period(self) -> int:
        n = self.cursor.get(self.key)
        if n is not None:
            return n
        if self.start_ms is not None:
            return self.start_ms // self.period_ms * self.period_ms
        return latest_due(self.now_ms(), self.period_ms, self.delay_ms)

    def done(self) -> bool:
        return self.until_ms is not None and self.next_period() >= self.until_ms

    def _msg(self, body: IdValidate | HeartBeat | Data) -> Message:
        return Message(self.cfg.building_id, self.cfg.gateway_id, body)

    async def _sleep(self, seconds: float, stop: asyncio.Event) -> None:
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        waiter = asyncio.ensure_future(stop.wait())
        _, pending = await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        for p in pending:
            p.cancel()

    # ------------------------------------------------------------------ protocol
    async def login(self, conn: Connection) -> None:
        await conn.send(self._msg(IdValidate("request")))
        try:
            m = await conn.receive("identity sequence")
        except PlatformUnavailableError as exc:
            raise PlatformUnavailableError(
                f"{exc} during the identity check (a platform that cannot decrypt the request drops "
                "the connection: check aes_key and aes_iv)"
            ) from None
        if not isinstance(m.body, IdValidate) or m.body.operation != "sequence" or not m.body.sequence:
            raise MessageError(f"expected id_validate sequence, got {m.type}")
        await conn.send(self._msg(IdValidate("md5", md5=md5_answer(m.body.sequence, self.auth_key))))
        r = await conn.receive("identity result")
        if not isinstance(r.body, IdValidate) or r.body.operation != "result":
            raise MessageError(f"expected id_validate result, got {r.type}")
        if r.body.result != "pass":
            raise LoginRefusedError(
                f"platform refused the login of building {self.cfg.building_id} gateway "
                f"{self.cfg.gateway_id}: the identity check failed (the authentication key differs "
                "from the platform's)"
            )
        self.counters.logins += 1
        log.info("logged in to %s:%d as %s", self.cfg.platform.host, self.cfg.platform.port, self.key)

    def _values(self, start: int, now: int) -> dict[tuple[str, str], float] | None:
        if start not in self._cache or len(self._cache[start]) < self._expected():
            end = min(
                start + FETCH_PERIODS * self.period_ms,
                latest_due(now, self.period_ms, self.delay_ms) + self.period_ms,
            )
            end = max(end, start + self.period_ms)
            fetched = self.source.fetch(start, end)
            for t in range(start, end, self.period_ms):
                self._cache[t] = fetched.get(t, {})
        return self._cache.get(start)

    def _expected(self) -> int:
        return sum(len(m.functions) for m in self.cfg.meters)

    def _data(self, start: int, op: str, values: dict[tuple[str, str], float]) -> Data:
        meters = tuple(
            MeterData(
                m.id,
                tuple(
                    Function(f.id, f.coding, values.get((m.id, f.id)), "0" if (m.id, f.id) in values else "1")
                    for f in m.functions
                ),
            )
            for m in self.cfg.meters
        )
        assert op in ("report", "continuous")
        return Data(
            "report" if op == "report" else "continuous",
            sequence_of(start, self.period_ms),
            platform_time(start, self.cfg.timezone),
            meters,
        )

    async def send_period(self, conn: Connection, start: int, now: int) -> bool:
        """Send one period and wait for its acknowledgement; False if its data is not complete yet."""
        values = self._values(start, now) or {}
        if len(values) < self._expected() and now < start + self.period_ms + self.cfg.give_up_s * 1000:
            return False
        op = operation(start, now, self.period_ms, self.delay_ms)
        msg = self._data(start, op, values)
        await conn.send(self._msg(msg))
        while True:
            a = await conn.receive(f"{op}_ack")
            if isinstance(a.body, Data) and a.body.operation == f"{op}_ack":
                if a.body.sequence != msg.sequence:
                    raise MessageError(f"{op}_ack for sequence {a.body.sequence}, expected {msg.sequence}")
                break
            if not isinstance(a.body, HeartBeat):
                raise MessageError(f"expected {op}_ack, got {a.type}")
        self.cursor.set(self.key, start + self.period_ms)
        self._cache.pop(start, None)
        if op == "report":
            self.counters.reports += 1
        else:
            self.counters.continuous += 1
        self.counters.acked += 1
        log.info(
            "%s %s acknowledged (sequence %s)", op, platform_time(start, self.cfg.timezone), msg.sequence
        )
        return True

    async def heartbeat(self, conn: Connection) -> None:
        await conn.send(self._msg(HeartBeat("notify")))
        a = await conn.receive("heartbeat answer")
        if not isinstance(a.body, HeartBeat) or a.body.operation != "time":
            raise MessageError(f"expected heart_beat time, got {a.type}")
        self.counters.heartbeats += 1

    async def session(self, conn: Connection, stop: asyncio.Event) -> None:
        last_beat = self.now_ms()
        beat_ms = int(self.cfg.heartbeat_s * 1000)
        while not stop.is_set():
            now = self.now_ms()
            nxt = self.next_period()
            if self.until_ms is not None and nxt >= self.until_ms:
                return
            due = next_due_at(nxt, self.period_ms, self.delay_ms)
            if due <= now:
                if await self.send_period(conn, nxt, now):
                    last_beat = self.now_ms()
                    continue
                due = now + min(beat_ms, 60_000)  # data not complete: look again shortly
            if now - last_beat >= beat_ms:
                await self.heartbeat(conn)
                last_beat = now
            wake = min(due, last_beat + beat_ms)
            await self._sleep(max(0.0, (wake - self.now_ms()) / 1000), stop)

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 1.0
        p = self.cfg.platform
        while not stop.is_set() and not self.done():
            try:
                try:
                    reader, writer = await asyncio.wait_for(self._connect(p.host, p.port), p.answer_timeout_s)
                except (OSError, TimeoutError) as exc:
                    raise PlatformUnavailableError(
                        f"cannot connect to the platform at {p.host}:{p.port}: {exc}"
                    ) from None
                conn = Connection(reader, writer, self.codec, p.answer_timeout_s)
                try:
                    await self.login(conn)
                    backoff = 1.0
                    await self.session(conn, stop)
                finally:
                    await conn.close()
            except DecryptError as exc:
                self._failed(f"platform answer does not decrypt ({exc}): check aes_key and aes_iv", backoff)
            except (FrameError, MessageError) as exc:
                self._failed(f"malformed answer from the platform: {exc}", backoff)
            except UplinkError as exc:
                self._failed(str(exc), backoff)
            if stop.is_set() or self.done():
                break
            await self._sleep(backoff, stop)
            backoff = min(backoff * 2, self.cfg.backoff_max_s)

    def _failed(self, text: str, backoff: float) -> None:
        self.counters.errors += 1
        self.counters.last_error = text
        log.error("%s; retrying in %s s", text, f"{backoff:g}")


def state_path(cfg: UplinkConfig, base: Path | None = None) -> Path:
    p = Path(cfg.state_dir)
    return (base / p if base is not None and not p.is_absolute() else p) / "cursor.sqlite"
