"""The platform protocol, pure: framing, AES, MD5 identity check and the XML messages.

What the public sources agree on (docs/uplink.md cites them):

- **XML** documents ``<root><common><building_id/><gateway_id/><type/></common>…</root>``.
- **Identity check** (``id_validate``): the gateway sends ``request``; the platform answers
  ``sequence`` with a random string; the gateway answers ``md5`` = MD5(sequence ‖ key) in hex;
  the platform answers ``result`` ``pass`` or ``fail``.
- **Heartbeat** (``heart_beat``): the gateway sends ``notify``; the platform answers ``time``
  with its clock (``YYYYMMDDhhmmss``).
- **Energy data** (``data``): operation ``report`` (the current period) or ``continuous``
  (stored periods resent after an outage), each with ``sequence``, ``parse``, ``time``,
  ``total``/``current`` (packet count of a split report) and ``<meter id><function id coding
  error>value</function></meter>`` elements, ``coding`` the item code (分项编码); the platform
  acknowledges with ``report_ack`` / ``continuous_ack`` carrying the same ``sequence``.
- **Encryption**: AES with a 128-bit key (CBC) over the XML.

Framing and padding differ between the platforms' own documents, so they are parameters
(:class:`FrameFormat`, :class:`Cipher`) with the defaults documented in docs/uplink.md.
"""

from __future__ import annotations

import hashlib
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Final, Literal, cast

from cryptography.hazmat.primitives.ciphers import Cipher as _AesCipher
from cryptography.hazmat.primitives.ciphers import algorithms, modes

from epcwatch.uplink.errors import DecryptError, FrameError, MessageError

MAX_PAYLOAD: Final = 4 * 1024 * 1024
BLOCK: Final = 16

# --------------------------------------------------------------------------- framing


def crc16_modbus(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True, slots=True)
class FrameFormat:
    """``header | length (uint32) | payload | CRC16/MODBUS of payload (uint16) | tail``."""

    header: bytes = b"\x55\xaa\x55\xaa"
    tail: bytes = b"\x68\x68\x16\x16"
    byteorder: Literal["little", "big"] = "little"
    crc: bool = True

    def encode(self, payload: bytes) -> bytes:
        if len(payload) > MAX_PAYLOAD:
            raise FrameError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        e = "<" if self.byteorder == "little" else ">"
        out = self.header + struct.pack(e + "I", len(payload)) + payload
        if self.crc:
            out += struct.pack(e + "H", crc16_modbus(payload))
        return out + self.tail


@dataclass
class FrameDecoder:
    """Splits a byte stream into payloads. Bytes before a header are skipped (counted in
    ``skipped``); a frame with a bad length, CRC or tail raises :class:`FrameError` after
    which the decoder resynchronises on the next header."""

    fmt: FrameFormat = field(default_factory=FrameFormat)
    buf: bytearray = field(default_factory=bytearray)
    skipped: int = 0

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        out: list[bytes] = []
        f = self.fmt
        e = "<" if f.byteorder == "little" else ">"
        trailer = (2 if f.crc else 0) + len(f.tail)
        while True:
            i = self.buf.find(f.header)
            if i < 0:
                keep = len(f.header) - 1
                self.skipped += max(0, len(self.buf) - keep)
                del self.buf[: max(0, len(self.buf) - keep)]
                return out
            if i:
                self.skipped += i
                del self.buf[:i]
            h = len(f.header)
            if len(self.buf) < h + 4:
                return out
            (n,) = struct.unpack(e + "I", bytes(self.buf[h : h + 4]))
            if n > MAX_PAYLOAD:
                del self.buf[:h]
                raise FrameError(f"frame announces {n} bytes (limit {MAX_PAYLOAD})")
            total = h + 4 + n + trailer
            if len(self.buf) < total:
                return out
            payload = bytes(self.buf[h + 4 : h + 4 + n])
            pos = h + 4 + n
            if f.crc:
                (crc,) = struct.unpack(e + "H", bytes(self.buf[pos : pos + 2]))
                pos += 2
                if crc != crc16_modbus(payload):
                    del self.buf[:h]
                    raise FrameError("frame CRC mismatch")
            if bytes(self.buf[pos : pos + len(f.tail)]) != f.tail:
                del self.buf[:h]
                raise FrameError("frame tail missing")
            del self.buf[:total]
            out.append(payload)


# --------------------------------------------------------------------------- AES


@dataclass(frozen=True, slots=True)
class Cipher:
    """AES-128-CBC. ``iv`` defaults to the key (the platforms' reference code does so);
    ``padding`` ``pkcs7`` or ``zeros``."""

    key: bytes
    iv: bytes | None = None
    padding: Literal["pkcs7", "zeros"] = "pkcs7"

    def __post_init__(self) -> None:
        if len(self.key) != 16:
            raise ValueError(f"AES key must be 16 bytes (128 bit), got {len(self.key)}")
        if self.iv is not None and len(self.iv) != 16:
            raise ValueError(f"AES IV must be 16 bytes, got {len(self.iv)}")

    def _aes(self) -> _AesCipher[modes.CBC]:
        return _AesCipher(algorithms.AES(self.key), modes.CBC(self.iv or self.key))

    def encrypt(self, plain: bytes) -> bytes:
        if self.padding == "pkcs7":
            n = BLOCK - len(plain) % BLOCK
            padded = plain + bytes([n]) * n
        else:
            padded = plain + b"\x00" * (-len(plain) % BLOCK)
        enc = self._aes().encryptor()
        return enc.update(padded) + enc.finalize()

    def decrypt(self, data: bytes) -> bytes:
        if not data or len(data) % BLOCK:
            raise DecryptError(f"encrypted payload of {len(data)} bytes is not a multiple of {BLOCK}")
        dec = self._aes().decryptor()
        plain = dec.update(data) + dec.finalize()
        if self.padding == "pkcs7":
            n = plain[-1]
            if not 1 <= n <= BLOCK or plain[-n:] != bytes([n]) * n:
                raise DecryptError("payload does not decrypt with this AES key (bad padding)")
            plain = plain[:-n]
        else:
            plain = plain.rstrip(b"\x00")
        if not plain.lstrip().startswith(b"<"):
            raise DecryptError("payload does not decrypt to XML with this AES key")
        return plain


def md5_answer(sequence: str, key: str) -> str:
    """The identity check's answer: MD5 of the sequence followed by the key, lower-case hex."""
    return hashlib.md5((sequence + key).encode("utf-8"), usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Function:
    id: str
    coding: str
    value: float | None
    error: str = "0"


@dataclass(frozen=True, slots=True)
class MeterData:
    id: str
    functions: tuple[Function, ...]


IdOp = Literal["request", "sequence", "md5", "result"]
BeatOp = Literal["notify", "time"]


@dataclass(frozen=True, slots=True)
class IdValidate:
    operation: IdOp
    sequence: str = ""
    md5: str = ""
    result: str = ""


@dataclass(frozen=True, slots=True)
class HeartBeat:
    operation: BeatOp
    time: str = ""


DataOp = Literal["report", "continuous", "report_ack", "continuous_ack"]


@dataclass(frozen=True, slots=True)
class Data:
    operation: DataOp
    sequence: str
    time: str = ""
    meters: tuple[MeterData, ...] = ()
    total: int = 1
    current: int = 1
    parse: str = "yes"


Body = IdValidate | HeartBeat | Data


@dataclass(frozen=True, slots=True)
class Message:
    building_id: str
    gateway_id: str
    body: Body

    @property
    def type(self) -> str:
        return self.body.operation


def _num(v: float) -> str:
    text = f"{v:.4f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def to_xml(msg: Message) -> bytes:
    root = ET.Element("root")
    common = ET.SubElement(root, "common")
    ET.SubElement(common, "building_id").text = msg.building_id
    ET.SubElement(common, "gateway_id").text = msg.gateway_id
    ET.SubElement(common, "type").text = msg.type
    b = msg.body
    if isinstance(b, IdValidate):
        el = ET.SubElement(root, "id_validate", operation=b.operation)
        if b.operation == "sequence":
            ET.SubElement(el, "sequence").text = b.sequence
        elif b.operation == "md5":
            ET.SubElement(el, "md5").text = b.md5
        elif b.operation == "result":
            ET.SubElement(el, "result").text = b.result
    elif isinstance(b, HeartBeat):
        el = ET.SubElement(root, "heart_beat", operation=b.operation)
        if b.operation == "time":
            ET.SubElement(el, "time").text = b.time
    else:
        el = ET.SubElement(root, "data", operation=b.operation)
        ET.SubElement(el, "sequence").text = b.sequence
        if b.operation in ("report", "continuous"):
            ET.SubElement(el, "parse").text = b.parse
            ET.SubElement(el, "time").text = b.time
            ET.SubElement(el, "total").text = str(b.total)
            ET.SubElement(el, "current").text = str(b.current)
            for m in b.meters:
                me = ET.SubElement(el, "meter", id=m.id)
                for fn in m.functions:
                    fe = ET.SubElement(me, "function", id=fn.id, coding=fn.coding, error=fn.error)
                    fe.text = "" if fn.value is None else _num(fn.value)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>' + text


def _text(el: ET.Element | None, tag: str) -> str:
    if el is None:
        return ""
    child = el.find(tag)
    return (child.text or "").strip() if child is not None else ""


def from_xml(raw: bytes) -> Message:
    """Parse a message; raises :class:`MessageError` naming what is wrong."""
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise MessageError(f"not XML: {exc}") from None
    if root.tag != "root":
        raise MessageError(f"top element is <{root.tag}>, expected <root>")
    common = root.find("common")
    if common is None:
        raise MessageError("no <common> element")
    building, gateway, typ = _text(common, "building_id"), _text(common, "gateway_id"), _text(common, "type")
    if not building or not gateway:
        raise MessageError("<common> lacks building_id or gateway_id")
    body: Body
    if (el := root.find("id_validate")) is not None:
        op = el.get("operation") or typ
        if op not in ("request", "sequence", "md5", "result"):
            raise MessageError(f"id_validate operation {op!r} unknown")
        body = IdValidate(cast(IdOp, op), _text(el, "sequence"), _text(el, "md5"), _text(el, "result"))
        if op == "result" and body.result not in ("pass", "fail"):
            raise MessageError(f"id_validate result {body.result!r} is neither pass nor fail")
    elif (el := root.find("heart_beat")) is not None:
        op = el.get("operation") or typ
        if op not in ("notify", "time"):
            raise MessageError(f"heart_beat operation {op!r} unknown")
        body = HeartBeat(cast(BeatOp, op), _text(el, "time"))
    elif (el := root.find("data")) is not None:
        op = el.get("operation") or typ
        if op not in ("report", "continuous", "report_ack", "continuous_ack"):
            raise MessageError(f"data operation {op!r} unknown")
        meters = []
        for me in el.findall("meter"):
            fns = []
            for fe in me.findall("function"):
                text = (fe.text or "").strip()
                try:
                    value = float(text) if text else None
                except ValueError:
                    raise MessageError(
                        f"meter {me.get('id')} function {fe.get('id')}: value {text!r}"
                    ) from None
                fns.append(Function(fe.get("id", ""), fe.get("coding", ""), value, fe.get("error", "0")))
            meters.append(MeterData(me.get("id", ""), tuple(fns)))
        try:
            total, current = int(_text(el, "total") or 1), int(_text(el, "current") or 1)
        except ValueError:
            raise MessageError("data total/current are not integers") from None
        body = Data(
            cast(DataOp, op),
            _text(el, "sequence"),
            _text(el, "time"),
            tuple(meters),
            total,
            current,
            _text(el, "parse") or "yes",
        )
    else:
        raise MessageError("no id_validate, heart_beat or data element")
    if typ and typ != body.operation:
        raise MessageError(f"<type>{typ}</type> does not match operation {body.operation!r}")
    return Message(building, gateway, body)


@dataclass(frozen=True, slots=True)
class Codec:
    """Message ⇄ frame bytes: XML, then AES, then the frame."""

    cipher: Cipher
    frame: FrameFormat = field(default_factory=FrameFormat)

    def encode(self, msg: Message) -> bytes:
        return self.frame.encode(self.cipher.encrypt(to_xml(msg)))

    def decode_payload(self, payload: bytes) -> Message:
        return from_xml(self.cipher.decrypt(payload))

    def decoder(self) -> FrameDecoder:
        return FrameDecoder(self.frame)
