"""MQTT 3.1.1 and 5 packets, as the collector's connection needs them (pure).

The collector receives far more than it sends: per message it needs the topic, the packet id,
the flags and the payload, nothing else. A general client builds a message object and a
properties object per PUBLISH and reads each packet with several socket calls; together that
was ~75 µs a message, as much CPU as parsing ten readings. :class:`Decoder` instead splits a
chunk of the byte stream into packets in one loop and decodes PUBLISH inline (its properties
are skipped: the collector asks for no topic aliases, the only property that changes how a
message is read).

The encoders build the few packets the collector sends: CONNECT (a persistent session),
SUBSCRIBE, PUBLISH (dead letters, acknowledgements), PUBACK, PINGREQ and DISCONNECT.
Everything here works on bytes; the socket side is :mod:`epcwatch.collector.mqttlink`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

CONNECT: Final = 1
CONNACK: Final = 2
PUBLISH: Final = 3
PUBACK: Final = 4
PUBREC: Final = 5
PUBREL: Final = 6
PUBCOMP: Final = 7
SUBSCRIBE: Final = 8
SUBACK: Final = 9
UNSUBSCRIBE: Final = 10
UNSUBACK: Final = 11
PINGREQ: Final = 12
PINGRESP: Final = 13
DISCONNECT: Final = 14
AUTH: Final = 15

PINGREQ_PACKET: Final = b"\xc0\x00"

#: MQTT 5 property identifiers → how their values are encoded
_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
_PROPERTY_TYPES: Final = {
    0x01: _BYTE,  # payload format indicator
    0x02: _U32,  # message expiry interval
    0x03: _STR,  # content type
    0x08: _STR,  # response topic
    0x09: _BIN,  # correlation data
    0x0B: _VARINT,  # subscription identifier
    0x11: _U32,  # session expiry interval
    0x12: _STR,  # assigned client identifier
    0x13: _U16,  # server keep alive
    0x15: _STR,  # authentication method
    0x16: _BIN,  # authentication data
    0x17: _BYTE,  # request problem information
    0x18: _U32,  # will delay interval
    0x19: _BYTE,  # request response information
    0x1A: _STR,  # response information
    0x1C: _STR,  # server reference
    0x1F: _STR,  # reason string
    0x21: _U16,  # receive maximum
    0x22: _U16,  # topic alias maximum
    0x23: _U16,  # topic alias
    0x24: _BYTE,  # maximum QoS
    0x25: _BYTE,  # retain available
    0x26: _PAIR,  # user property
    0x27: _U32,  # maximum packet size
    0x28: _BYTE,  # wildcard subscription available
    0x29: _BYTE,  # subscription identifier available
    0x2A: _BYTE,  # shared subscription available
}
SESSION_EXPIRY: Final = 0x11
SERVER_KEEP_ALIVE: Final = 0x13
REASON_STRING: Final = 0x1F
RECEIVE_MAXIMUM: Final = 0x21
TOPIC_ALIAS: Final = 0x23
MAXIMUM_PACKET_SIZE: Final = 0x27

#: MQTT 5 reason codes the collector names in its logs (the rest are shown as numbers)
REASONS: Final = {
    0x00: "success",
    0x04: "disconnect with will message",
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x83: "implementation specific error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
    0x8B: "server shutting down",
    0x8C: "bad authentication method",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x8F: "topic filter invalid",
    0x90: "topic name invalid",
    0x91: "packet identifier in use",
    0x93: "receive maximum exceeded",
    0x94: "topic alias invalid",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x99: "payload format invalid",
    0x9C: "use another server",
    0x9D: "server moved",
    0x9E: "shared subscriptions not supported",
    0x9F: "connection rate exceeded",
    0xA2: "wildcard subscriptions not supported",
}
#: MQTT 3.1.1 CONNACK return codes
_V3_REFUSALS: Final = {
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
_MAX_REMAINING: Final = 268_435_455


class MalformedPacketError(ValueError):
    """The byte stream is not MQTT (or not what this side can accept): drop the connection."""


def reason_text(code: int, *, v5: bool = True) -> str:
    """A reason (MQTT 5) or return code (3.1.1) in words."""
    name = REASONS.get(code) if v5 else _V3_REFUSALS.get(code, "success" if code == 0 else None)
    return f"{name} (0x{code:02x})" if name else f"0x{code:02x}"


# -- encoding ---------------------------------------------------------------------------------------
def varint(n: int) -> bytes:
    """The variable byte integer ``n`` (remaining lengths, property lengths)."""
    if not 0 <= n <= _MAX_REMAINING:
        raise ValueError(f"{n} does not fit a variable byte integer")
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _utf8(s: str) -> bytes:
    b = s.encode()
    if len(b) > 0xFFFF:
        raise ValueError("an MQTT string holds at most 65,535 bytes")
    return struct.pack("!H", len(b)) + b


def _binary(b: bytes) -> bytes:
    if len(b) > 0xFFFF:
        raise ValueError("MQTT binary data holds at most 65,535 bytes")
    return struct.pack("!H", len(b)) + b


def _packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def _properties(props: dict[int, int]) -> bytes:
    out = bytearray()
    for pid, value in props.items():
        kind = _PROPERTY_TYPES[pid]
        out.append(pid)
        if kind == _BYTE:
            out.append(value)
        elif kind == _U16:
            out += struct.pack("!H", value)
        elif kind == _U32:
            out += struct.pack("!I", value)
        elif kind == _VARINT:
            out += varint(value)
        else:  # pragma: no cover - only integer properties are sent
            raise ValueError(f"property 0x{pid:02x} is not an integer")
    return varint(len(out)) + bytes(out)


def connect(
    client_id: str,
    *,
    keepalive_s: int,
    v5: bool = True,
    username: str | None = None,
    password: str | None = None,
    properties: dict[int, int] | None = None,
) -> bytes:
    """CONNECT with a persistent session (MQTT 5: clean start off, e.g. a session expiry in
    ``properties``; 3.1.1: clean session off)."""
    flags = 0
    payload = _utf8(client_id)
    if username is not None:
        flags |= 0x80
        payload += _utf8(username)
        if password is not None:
            flags |= 0x40
            payload += _binary(password.encode())
    elif password is not None:
        raise ValueError("a password needs a user name")
    head = b"\x00\x04MQTT" + bytes((5 if v5 else 4, flags)) + struct.pack("!H", keepalive_s)
    if v5:
        head += _properties(properties or {})
    return _packet(CONNECT << 4, head + payload)


def subscribe(packet_id: int, filters: list[tuple[str, int]], *, v5: bool = True) -> bytes:
    """SUBSCRIBE to ``filters`` (topic filter, maximum QoS)."""
    body = struct.pack("!H", packet_id) + (b"\x00" if v5 else b"")
    for topic, qos in filters:
        body += _utf8(topic) + bytes((qos,))
    return _packet(SUBSCRIBE << 4 | 0x02, body)


def publish(
    topic: str, payload: bytes, *, qos: int = 0, packet_id: int = 0, dup: bool = False, v5: bool = True
) -> bytes:
    """PUBLISH (not retained) of ``payload`` to ``topic``."""
    body = _utf8(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if v5:
        body += b"\x00"
    return _packet(PUBLISH << 4 | (0x08 if dup else 0) | qos << 1, body + payload)


def puback(packet_id: int) -> bytes:
    """PUBACK, success (the short form both versions accept)."""
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


def pubacks(packet_ids: list[int]) -> bytes:
    """PUBACKs of many messages, as one write."""
    return b"".join(b"\x40\x02" + p.to_bytes(2, "big") for p in packet_ids)


def disconnect(*, v5: bool = True) -> bytes:
    """DISCONNECT, normal (MQTT 5: the session is kept: no session expiry property is sent)."""
    return b"\xe0\x01\x00" if v5 else b"\xe0\x00"


# -- decoding ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int
    dup: bool
    retain: bool


@dataclass(frozen=True, slots=True)
class ConnAck:
    session_present: bool
    #: 0: accepted; else an MQTT 5 reason code or an MQTT 3.1.1 return code
    code: int
    properties: dict[int, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ack:
    """PUBACK, SUBACK or a server's DISCONNECT: the packet id (0 for DISCONNECT) and the codes."""

    kind: int
    packet_id: int
    codes: tuple[int, ...]
    properties: dict[int, object] = field(default_factory=dict)


Packet = Publish | ConnAck | Ack


def _varint_at(buf: bytes, i: int) -> tuple[int, int] | None:
    """(value, index after it) of the variable byte integer at ``i``; ``None``: not all there."""
    value = 0
    shift = 0
    while True:
        if i >= len(buf):
            return None
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7
        if shift > 21:
            raise MalformedPacketError("a variable byte integer longer than four bytes")


def properties(buf: bytes, i: int, end: int) -> tuple[dict[int, object], int]:
    """The MQTT 5 properties at ``i`` (their length first) and the index after them. A user
    property keeps its last pair; the collector reads none of them."""
    got = _varint_at(buf, i)
    if got is None or got[1] + got[0] > end:
        raise MalformedPacketError("properties run past the packet")
    length, i = got
    stop = i + length
    out: dict[int, object] = {}
    while i < stop:
        pid = buf[i]
        kind = _PROPERTY_TYPES.get(pid)
        i += 1
        if kind is None:
            raise MalformedPacketError(f"unknown property 0x{pid:02x}")
        value: object
        if kind == _BYTE:
            value, i = buf[i], i + 1
        elif kind == _U16:
            value, i = int.from_bytes(buf[i : i + 2], "big"), i + 2
        elif kind == _U32:
            value, i = int.from_bytes(buf[i : i + 4], "big"), i + 4
        elif kind == _VARINT:
            got = _varint_at(buf, i)
            if got is None:
                raise MalformedPacketError("properties run past the packet")
            value, i = got
        elif kind in (_STR, _BIN):
            n = int.from_bytes(buf[i : i + 2], "big")
            raw = buf[i + 2 : i + 2 + n]
            i += 2 + n
            value = _text(raw) if kind == _STR else bytes(raw)
        else:
            n = int.from_bytes(buf[i : i + 2], "big")
            key = _text(buf[i + 2 : i + 2 + n])
            i += 2 + n
            m = int.from_bytes(buf[i : i + 2], "big")
            value = (key, _text(buf[i + 2 : i + 2 + m]))
            i += 2 + m
        if i > stop:
            raise MalformedPacketError("a property runs past the properties")
        out[pid] = value
    return out, stop


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise MalformedPacketError("a string that is not UTF-8") from None


def packet_end(buf: bytes) -> int | None:
    """Where the first packet in ``buf`` ends, or ``None`` while it is incomplete."""
    if len(buf) < 2:
        return None
    got = _varint_at(buf, 1)
    if got is None or got[1] + got[0] > len(buf):
        return None
    return got[1] + got[0]


class Decoder:
    """Splits the byte stream from the broker into packets; keeps a partial packet for the next
    chunk. PUBLISH is decoded inline (the hot path); CONNACK, PUBACK, SUBACK, DISCONNECT and
    PINGRESP are decoded in full; anything a client must not receive is :class:`MalformedPacketError`."""

    def __init__(self, *, v5: bool = True, max_packet: int = _MAX_REMAINING) -> None:
        self.v5 = v5
        self.max_packet = max_packet
        self._rest = b""

    @property
    def pending(self) -> int:
        """Bytes of an incomplete packet kept from the last chunk."""
        return len(self._rest)

    def feed(self, data: bytes) -> list[Packet | int]:
        """The packets completed by ``data``, in order: :class:`Publish`, :class:`ConnAck`,
        :class:`Ack`, or the packet type for PINGRESP."""
        buf = self._rest + data if self._rest else data
        n = len(buf)
        i = 0
        out: list[Packet | int] = []
        v5 = self.v5
        while i + 2 <= n:
            first = buf[i]
            # the remaining length, inline for one or two bytes (almost every packet)
            b1 = buf[i + 1]
            if b1 < 0x80:
                length, j = b1, i + 2
            elif i + 2 < n and buf[i + 2] < 0x80:
                length, j = (b1 & 0x7F) | buf[i + 2] << 7, i + 3
            else:
                got = _varint_at(buf, i + 1)
                if got is None:
                    break
                length, j = got
            if length > self.max_packet:
                raise MalformedPacketError(f"a packet of {length:,} bytes (at most {self.max_packet:,})")
            end = j + length
            if end > n:
                break
            if first >> 4 == PUBLISH:
                qos = (first >> 1) & 3
                if length < 3:
                    raise MalformedPacketError("a PUBLISH shorter than its header")
                tl = buf[j] << 8 | buf[j + 1]
                k = j + 2 + tl
                if k + (2 if qos else 0) > end:
                    raise MalformedPacketError("a PUBLISH shorter than its header")
                try:
                    topic = buf[j + 2 : k].decode()
                except UnicodeDecodeError:
                    raise MalformedPacketError("a topic that is not UTF-8") from None
                pid = 0
                if qos:
                    if qos == 3:
                        raise MalformedPacketError("PUBLISH with QoS 3")
                    pid = buf[k] << 8 | buf[k + 1]
                    k += 2
                if v5:
                    if k >= end:
                        raise MalformedPacketError("a PUBLISH shorter than its header")
                    if buf[k] == 0:
                        k += 1
                    else:
                        props, k = properties(buf, k, end)
                        if TOPIC_ALIAS in props:
                            raise MalformedPacketError("a topic alias (none was allowed)")
                if k > end or not topic:
                    raise MalformedPacketError("a PUBLISH without a topic or shorter than its header")
                out.append(Publish(topic, buf[k:end], qos, pid, bool(first & 0x08), bool(first & 0x01)))
            else:
                out.append(self._other(first, buf, j, end))
            i = end
        self._rest = buf[i:] if i < n else b""
        return out

    def _other(self, first: int, buf: bytes, j: int, end: int) -> Packet | int:
        kind = first >> 4
        v5 = self.v5
        if kind == PINGRESP:
            return PINGRESP
        if kind == CONNACK:
            if end - j < 2:
                raise MalformedPacketError("a short CONNACK")
            props = properties(buf, j + 2, end)[0] if v5 and end > j + 2 else {}
            return ConnAck(bool(buf[j] & 1), buf[j + 1], props)
        if kind in (PUBACK, SUBACK):
            if end - j < 2:
                raise MalformedPacketError("a short acknowledgement")
            pid = buf[j] << 8 | buf[j + 1]
            k = j + 2
            if kind == PUBACK:
                code = buf[k] if v5 and k < end else 0
                props = properties(buf, k + 1, end)[0] if v5 and k + 1 < end else {}
                return Ack(PUBACK, pid, (code,), props)
            props = {}
            if v5:
                props, k = properties(buf, k, end)
            return Ack(SUBACK, pid, tuple(buf[k:end]), props)
        if kind == DISCONNECT and v5:
            code = buf[j] if end > j else 0
            props = properties(buf, j + 1, end)[0] if end > j + 1 else {}
            return Ack(DISCONNECT, 0, (code,), props)
        raise MalformedPacketError(f"an unexpected packet of type {kind}")
