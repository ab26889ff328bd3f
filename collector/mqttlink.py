"""The collector's MQTT connection: one thread owns the socket (I/O edge of :mod:`mqttwire`).

The thread connects (TCP, TLS when configured, CONNECT with a persistent session), subscribes,
then reads the stream in large chunks and hands each chunk's messages over in one call. Other
threads never touch the socket: :meth:`Link.ack` and :meth:`Link.publish` queue packets under a
lock and wake the thread through a socket pair, so a TLS connection is only ever used by one
thread. The thread keeps the connection alive (PINGREQ), reconnects with a capped exponential
backoff, and sends again, with the DUP flag, every QoS 1 PUBLISH the broker had not acknowledged
when the connection was lost, within the broker's Receive Maximum.

Acknowledgements belong to one connection. Every connect and every loss starts a new
*generation*; :meth:`Link.ack` queues PUBACKs only for the current one, and a loss drops the
queued ones under the same lock, so no packet id of an old connection reaches a new one (the
broker redelivers those messages; they are written again, harmlessly).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

from epcwatch import logs
from epcwatch.collector import mqttwire as wire
from epcwatch.mqtt import MqttConnection, tls_context

log = logging.getLogger("epcwatch.collector.mqtt")

_CHUNK: Final = 1 << 18
_CONNECT_TIMEOUT_S: Final = 10.0
_SEND_CHUNK: Final = 1 << 20
#: a connection that lasted this long resets the reconnect backoff
_HELD_S: Final = 30.0


class Events(Protocol):
    """What the link reports, from its own thread (keep each call short)."""

    def on_connect(self, session_present: bool) -> None: ...
    def on_refused(self, reason: str) -> None: ...
    def on_lost(self, reason: str) -> None: ...
    def on_subscribe(self, codes: tuple[int, ...]) -> None: ...
    def on_messages(self, items: list[wire.Publish], gen: int, received_ms: int) -> None: ...
    def on_published(self, packet_id: int, ok: bool) -> None: ...


class LinkError(Exception):
    """A PUBLISH that cannot be queued (every packet id is in use)."""


class _LostError(Exception):
    """The connection is gone (the reason is the message)."""


class Link:
    def __init__(
        self,
        conn: MqttConnection,
        events: Events,
        *,
        client_id: str,
        password: str | None,
        subscriptions: list[tuple[str, int]],
        connect_properties: dict[int, int] | None = None,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.conn = conn
        self.events = events
        self.v5 = conn.protocol == "5"
        self.subscriptions = subscriptions
        self._connect_packet = wire.connect(
            client_id,
            keepalive_s=conn.keepalive_s,
            v5=self.v5,
            username=conn.username,
            password=password,
            properties=connect_properties,
        )
        #: built now, so that a missing or bad TLS file is named before any thread starts
        self._tls = tls_context(conn.tls) if conn.tls is not None else None
        self._wall = wall
        self._now = monotonic
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._woken = False
        self._thread: threading.Thread | None = None
        #: the connection's generation (even: down, odd: up) and its send queue
        self._gen = 0
        self._up = False
        self._queue: list[bytes] = []
        #: outgoing QoS 1 messages until their PUBACK: packet id → (topic, payload, sent before)
        self._outgoing: dict[int, tuple[str, bytes, bool]] = {}
        self._unsent: deque[int] = deque()
        self._inflight: set[int] = set()
        self._send_maximum = 65_535
        self._next_id = 0
        self._subscribe_id = 0
        #: when the unanswered PINGREQ went out (the network thread's)
        self._ping_sent: float | None = None

    # -- other threads ----------------------------------------------------------------------------
    @property
    def generation(self) -> int:
        return self._gen

    @property
    def unacknowledged(self) -> int:
        """Our QoS 1 messages the broker has not acknowledged yet (sent or waiting)."""
        with self._lock:
            return len(self._outgoing)

    @property
    def send_maximum(self) -> int:
        """The broker's Receive Maximum: our messages it accepts unacknowledged at once."""
        return self._send_maximum

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mqtt-link", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Disconnect (the session stays with the broker) and end the thread."""
        self._stop.set()
        self._poke()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._wake_r.close()
        self._wake_w.close()

    def ack(self, packet_ids: list[int], gen: int) -> int:
        """Queue PUBACKs of messages received in generation ``gen``; none if the connection has
        changed since (their ids mean nothing to the new one). Returns how many were queued."""
        with self._lock:
            if gen != self._gen or not self._up or not packet_ids:
                return 0
            self._queue.append(wire.pubacks(packet_ids))
            self._wake_locked()
        return len(packet_ids)

    def publish(self, topic: str, payload: bytes) -> int:
        """Queue a QoS 1 PUBLISH; returns its packet id (its PUBACK is reported through
        :meth:`Events.on_published`). Kept across reconnects until the broker acknowledges it."""
        with self._lock:
            pid = self._free_id()
            self._outgoing[pid] = (topic, payload, False)
            self._unsent.append(pid)
            if self._up:
                self._fill_locked()
        return pid

    # -- helpers (under the lock) -----------------------------------------------------------------
    def _free_id(self) -> int:
        for _ in range(65_535):
            self._next_id = self._next_id % 65_535 + 1
            if self._next_id not in self._outgoing and self._next_id != self._subscribe_id:
                return self._next_id
        raise LinkError("65,535 messages wait for the broker's acknowledgement")

    def _fill_locked(self) -> None:
        """Send waiting messages while the broker's Receive Maximum allows."""
        queued = False
        while self._unsent and len(self._inflight) < self._send_maximum:
            pid = self._unsent.popleft()
            got = self._outgoing.get(pid)
            if got is None:
                continue
            topic, payload, sent = got
            self._queue.append(wire.publish(topic, payload, qos=1, packet_id=pid, dup=sent, v5=self.v5))
            self._outgoing[pid] = (topic, payload, True)
            self._inflight.add(pid)
            queued = True
        if queued:
            self._wake_locked()

    def _wake_locked(self) -> None:
        if not self._woken:
            self._woken = True
            with contextlib.suppress(OSError):  # stopping: the pair is closed
                self._wake_w.send(b"\0")

    def _poke(self) -> None:
        with self._lock:
            self._wake_locked()

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.conn.reconnect_min_s
        while not self._stop.is_set():
            try:
                sock, connack, rest = self._open()
            except (OSError, wire.MalformedPacketError, _LostError) as exc:
                log.warning(
                    "MQTT connect failed",
                    extra=logs.fields(host=self.conn.host, port=self.conn.effective_port(), error=str(exc)),
                )
            else:
                if connack.code != 0:
                    _close(sock)
                    self.events.on_refused(wire.reason_text(connack.code, v5=self.v5))
                else:
                    since = self._now()
                    self._serve(sock, connack, rest)
                    if self._now() - since >= _HELD_S:  # a connection that held: back to the start
                        delay = self.conn.reconnect_min_s
            # also after a loss: a connection the broker drops at once (a session taken over by
            # a second process with this client id) must not turn into a reconnect storm
            if self._stop.wait(delay):
                break
            delay = min(delay * 2, self.conn.reconnect_max_s)

    def _open(self) -> tuple[socket.socket, wire.ConnAck, bytes]:
        c = self.conn
        port = c.effective_port()
        sock = socket.create_connection((c.host, port), timeout=_CONNECT_TIMEOUT_S)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls is not None:
                sock = self._tls.wrap_socket(sock, server_hostname=c.host)
            sock.sendall(self._connect_packet)
            deadline = self._now() + _CONNECT_TIMEOUT_S
            buf = b""
            while True:
                sock.settimeout(max(0.1, deadline - self._now()))
                data = sock.recv(4096)
                if not data:
                    raise _LostError("the broker closed the connection before CONNACK")
                buf += data
                end = wire.packet_end(buf)
                if end is not None:
                    break
            # the broker may send queued messages right behind CONNACK: they are kept for the loop
            packets = wire.Decoder(v5=self.v5).feed(buf[:end])
            if len(packets) != 1 or not isinstance(packets[0], wire.ConnAck):
                raise wire.MalformedPacketError("the broker did not answer CONNECT with CONNACK")
            return sock, packets[0], buf[end:]
        except BaseException:
            _close(sock)
            raise

    def _serve(self, sock: socket.socket, connack: wire.ConnAck, rest: bytes) -> None:
        keepalive = connack.properties.get(wire.SERVER_KEEP_ALIVE, self.conn.keepalive_s)
        assert isinstance(keepalive, int)
        send_max = connack.properties.get(wire.RECEIVE_MAXIMUM, 65_535)
        assert isinstance(send_max, int)
        with self._lock:
            self._gen += 1
            self._up = True
            gen = self._gen
            self._queue = []
            self._send_maximum = max(1, send_max)
            self._inflight = set()
            self._unsent = deque(self._outgoing)  # everything unacknowledged goes again, in order
            self._subscribe_id = self._free_id()
            self._queue.append(wire.subscribe(self._subscribe_id, self.subscriptions, v5=self.v5))
            self._fill_locked()
        self.events.on_connect(connack.session_present)
        reason = "stopped"
        try:
            self._loop(sock, gen, keepalive, rest)
        except _LostError as exc:
            reason = str(exc)
        except wire.MalformedPacketError as exc:
            reason = f"malformed packet from the broker: {exc}"
        except (OSError, ValueError) as exc:
            reason = f"connection error: {exc}"
        finally:
            with self._lock:
                self._gen += 1
                self._up = False
                self._queue = []
                self._inflight = set()
            _close(sock)
        self.events.on_lost(reason)

    def _loop(self, sock: socket.socket, gen: int, keepalive: int, rest: bytes) -> None:
        """Until stopped or lost: read, hand over, send what other threads queued, keep alive.
        ``out`` changes only after a successful send (TLS retries a write with the same bytes)."""
        sock.setblocking(False)
        decoder = wire.Decoder(v5=self.v5)
        last_out = self._now()
        self._ping_sent = None
        out = b""
        tls = isinstance(sock, ssl.SSLSocket)
        events = self.events
        wake = self._wake_r
        if rest:
            self._handle(decoder.feed(rest), gen, events)
        while not self._stop.is_set():
            if not out:
                with self._lock:
                    if self._queue:
                        out = b"".join(self._queue)
                        self._queue = []
            now = self._now()
            wait = max(0.0, last_out + keepalive - now) if keepalive else 1.0
            if self._ping_sent is not None:
                wait = min(wait, max(0.0, self._ping_sent + keepalive - now))
            if tls and sock.pending():  # type: ignore[attr-defined]
                wait = 0.0
            readable, writable, _ = select.select([sock, wake], [sock] if out else [], [], min(wait, 1.0))
            if wake in readable:
                with self._lock:
                    self._woken = False
                    _drain(wake)
            if sock in readable or (tls and sock.pending()):  # type: ignore[attr-defined]
                for _ in range(64):  # then give sending a turn
                    try:
                        data = sock.recv(_CHUNK)
                    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        break
                    if not data:
                        raise _LostError("the broker closed the connection")
                    packets = decoder.feed(data)
                    if packets:
                        self._handle(packets, gen, events)
            if out and sock in writable:
                try:
                    n = sock.send(out[:_SEND_CHUNK])
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    n = 0
                if n:
                    out = out[n:]
                    last_out = self._now()
            now = self._now()
            if keepalive:
                if self._ping_sent is not None and now - self._ping_sent >= keepalive:
                    raise _LostError(f"no PINGRESP within {keepalive} s")
                if self._ping_sent is None and now - last_out >= keepalive:
                    with self._lock:
                        self._queue.append(wire.PINGREQ_PACKET)
                    self._ping_sent = now
        # stopping: what is queued (acknowledgements of written batches) goes out before DISCONNECT
        with self._lock:
            out += b"".join(self._queue)
            self._queue = []
        _say_goodbye(sock, out + wire.disconnect(v5=self.v5))

    def _handle(self, packets: list[wire.Packet | int], gen: int, events: Events) -> None:
        received: list[wire.Publish] = []
        for p in packets:
            if type(p) is wire.Publish:
                if p.qos == 2:
                    raise wire.MalformedPacketError("a QoS 2 message (the subscriptions ask for QoS 1)")
                received.append(p)
            elif p == wire.PINGRESP:
                self._ping_sent = None
            elif isinstance(p, wire.Ack):
                if received:  # keep the order of what arrived
                    events.on_messages(received, gen, int(self._wall() * 1000))
                    received = []
                self._acked(p, events)
            else:
                raise wire.MalformedPacketError("CONNACK on an open connection")
        if received:
            events.on_messages(received, gen, int(self._wall() * 1000))

    def _acked(self, p: wire.Ack, events: Events) -> None:
        if p.kind == wire.PUBACK:
            with self._lock:
                known = self._outgoing.pop(p.packet_id, None) is not None
                self._inflight.discard(p.packet_id)
                self._fill_locked()
            if known:
                events.on_published(p.packet_id, p.codes[0] < 0x80)
        elif p.kind == wire.SUBACK:
            events.on_subscribe(p.codes)
        else:  # the broker's DISCONNECT (MQTT 5)
            why = p.properties.get(wire.REASON_STRING)
            raise _LostError(
                f"the broker disconnected: {wire.reason_text(p.codes[0])}" + (f": {why}" if why else "")
            )


def _say_goodbye(sock: socket.socket, data: bytes) -> None:
    try:
        sock.settimeout(2.0)
        sock.sendall(data)
    except (OSError, ValueError):
        pass


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except (BlockingIOError, OSError):
        pass


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
