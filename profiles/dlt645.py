"""DL/T 645 (2007 and 1997) frames, data identifiers and BCD values: a pure codec, no I/O.

Shared by the edge agent (master) and the simulator (slave). Everything here works on ``bytes``
and plain values; the transports in ``epcwatch.edge.dlt645_bus`` and ``epcwatch.sim.dlt645``
move the bytes.

Frame (DL/T 645-2007 §4.1; the 1997 edition has the same layout)::

    [FE FE FE FE]  68  A0 A1 A2 A3 A4 A5  68  C  L  DATA(L bytes)  CS  16

- ``FE`` preamble bytes (0..4) wake the receiver; a receiver skips them.
- ``A0..A5``: the meter address, 12 BCD digits, **least significant byte first** (A0 holds the
  last two digits printed on the nameplate). ``AA`` in every byte is the wildcard a meter answers
  regardless of its own address (used to discover the address of the only meter on a line);
  ``99…99`` is the broadcast address (time sync; a meter never answers it).
- ``C``: bit 7 direction (1 = reply from the meter), bit 6 error reply, bit 5 more frames follow,
  bits 4..0 the function (2007: 0x11 read data, 0x13 read address; 1997: 0x01 read data).
- ``L``: the number of data bytes. Every data byte travels **plus 0x33** (mod 256).
- ``CS``: the sum mod 256 of every byte from the first ``68`` through the last data byte.

A read request carries the data identifier (DI: 4 bytes in 2007, 2 in 1997, least significant
byte first); the reply repeats it and appends the value: BCD digits, least significant byte
first, with the decimal places fixed by the data item (e.g. ``XXXXXX.XX`` kWh). Where the
standard defines a sign (currents, powers, power factor in 2007), it is bit 7 of the most
significant byte. An error reply (``C`` with bit 6 set, e.g. 0xD1) carries one error byte.

Errors are typed (:class:`Dlt645Error` and its subclasses) so the edge can count bad frames
by kind and never mistake noise for a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal

from epcwatch.errors import EpcwatchError

Version = Literal["2007", "1997"]

START: Final = 0x68
END: Final = 0x16
PREAMBLE_BYTE: Final = 0xFE
OFFSET: Final = 0x33
HEADER_LEN: Final = 10  # 68 A0..A5 68 C L
MAX_DATA_LEN: Final = 255

WILDCARD_ADDRESS: Final = "AAAAAAAAAAAA"
BROADCAST_ADDRESS: Final = "999999999999"

DIRECTION_BIT: Final = 0x80
ERROR_BIT: Final = 0x40
FOLLOW_BIT: Final = 0x20
FUNCTION_MASK: Final = 0x1F

#: control codes of the requests the edge sends (master to meter)
READ_DATA: Final[dict[Version, int]] = {"2007": 0x11, "1997": 0x01}
READ_ADDRESS_2007: Final = 0x13
#: bytes of a data identifier
DI_LEN: Final[dict[Version, int]] = {"2007": 4, "1997": 2}

#: error byte bits of an error reply (DL/T 645-2007 §7.1 table, and 1997 §7 for the old edition)
ERROR_BITS: Final[dict[Version, dict[int, str]]] = {
    "2007": {
        0: "other error",
        1: "no requested data",
        2: "password error / unauthorised",
        3: "baud rate cannot be changed",
        4: "annual time zones exceed the limit",
        5: "daily time periods exceed the limit",
        6: "tariffs exceed the limit",
    },
    "1997": {
        0: "illegal data",
        1: "data identifier error",
        2: "password error",
        4: "annual time zones exceed the limit",
        5: "daily time periods exceed the limit",
        6: "tariffs exceed the limit",
    },
}

_ADDRESS_RE: Final = re.compile(r"^[0-9A]{12}$")


# -- errors ----------------------------------------------------------------------------------------


class Dlt645Error(EpcwatchError, ValueError):
    """Base of every DL/T 645 codec error: an :class:`EpcwatchError`, and a ``ValueError`` (bad
    input data, never a bug)."""


class FrameFormatError(Dlt645Error):
    """Bytes that are not a DL/T 645 frame: no start byte, wrong second start byte, no end byte."""


class ChecksumError(FrameFormatError):
    """A frame whose checksum byte does not match its content."""


class LengthError(FrameFormatError):
    """A frame whose length byte disagrees with the bytes present or with what the reply must hold."""


class AddressMismatchError(Dlt645Error):
    """A reply from another address than the one asked."""


class ReplyMismatchError(Dlt645Error):
    """A valid frame that does not answer the request (wrong function or data identifier)."""


class ErrorReplyError(Dlt645Error):
    """The meter answered with an error reply (control bit 6 set); ``code`` is its error byte."""

    def __init__(self, code: int, version: Version = "2007") -> None:
        self.code = code
        self.version = version
        super().__init__(f"error reply 0x{code:02X} ({describe_error(code, version)})")


class BcdError(Dlt645Error):
    """A value byte holding a nibble that is not a decimal digit, or a value that does not fit."""


class AddressError(Dlt645Error):
    """An address that is not 12 BCD digits (``A`` allowed as the wildcard digit)."""


def describe_error(code: int, version: Version = "2007") -> str:
    names = [name for bit, name in ERROR_BITS[version].items() if code & (1 << bit)]
    return ", ".join(names) if names else "unspecified"


# -- addresses -------------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def check_address(address: str) -> str:
    """The address in canonical form (12 characters, digits or ``A``); raises :class:`AddressError`."""
    a = address.strip().upper()
    if not _ADDRESS_RE.match(a):
        raise AddressError(f"address {address!r} is not 12 digits (A for a wildcard digit)")
    return a


def encode_address(address: str) -> bytes:
    """12 digits as printed on the nameplate -> A0..A5 as sent (least significant byte first)."""
    return bytes.fromhex(check_address(address))[::-1]


def decode_address(raw: bytes) -> str:
    """A0..A5 as received -> the 12 digits; raises :class:`BcdError` on a non-BCD byte."""
    if len(raw) != 6:
        raise LengthError(f"an address has 6 bytes, not {len(raw)}")
    out = raw[::-1].hex().upper()
    if not _ADDRESS_RE.match(out):
        raise BcdError(f"address bytes {raw.hex(' ')} are not BCD")
    return out


def address_number(address: str) -> int:
    """A concrete (wildcard-free) address as a number: ``"000012345678"`` -> 12345678."""
    a = check_address(address)
    if "A" in a:
        raise AddressError(f"address {address!r} has wildcard digits")
    return int(a)


def address_text(number: int) -> str:
    """The inverse of :func:`address_number`."""
    if not 0 <= number <= 999_999_999_999:
        raise AddressError(f"address {number} is not 12 digits")
    return f"{number:012d}"


def addresses_match(asked: str, answered: str) -> bool:
    """Whether a reply from ``answered`` answers a request to ``asked`` (``A`` digits match any)."""
    if asked == answered:
        return True
    return all(q in ("A", r) for q, r in zip(check_address(asked), check_address(answered), strict=True))


# -- frames ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame; ``data`` is the plain data (the +0x33 offset is applied on the wire only)."""

    address: str
    control: int
    data: bytes = b""

    def __post_init__(self) -> None:
        object.__setattr__(self, "address", check_address(self.address))
        if not 0 <= self.control <= 0xFF:
            raise FrameFormatError(f"control code {self.control} is not a byte")
        if len(self.data) > MAX_DATA_LEN:
            raise LengthError(f"{len(self.data)} data bytes exceed {MAX_DATA_LEN}")

    @property
    def function(self) -> int:
        return self.control & FUNCTION_MASK

    @property
    def is_reply(self) -> bool:
        return bool(self.control & DIRECTION_BIT)

    @property
    def is_error(self) -> bool:
        return bool(self.control & ERROR_BIT)

    @property
    def follows(self) -> bool:
        return bool(self.control & FOLLOW_BIT)


def checksum(body: bytes) -> int:
    """Sum mod 256 of the bytes from the first 68 through the last data byte."""
    return sum(body) & 0xFF


_PLUS_33: Final = bytes((b + OFFSET) & 0xFF for b in range(256))
_MINUS_33: Final = bytes((b - OFFSET) & 0xFF for b in range(256))


def add_offset(data: bytes) -> bytes:
    return data.translate(_PLUS_33)


def remove_offset(data: bytes) -> bytes:
    return data.translate(_MINUS_33)


def encode_frame(frame: Frame, preamble: int = 4) -> bytes:
    """The bytes of ``frame`` on the wire, with ``preamble`` FE bytes before it."""
    if not 0 <= preamble <= 16:
        raise ValueError("preamble is 0..16 FE bytes")
    body = (
        bytes([START])
        + encode_address(frame.address)
        + bytes([START, frame.control, len(frame.data)])
        + add_offset(frame.data)
    )
    return bytes([PREAMBLE_BYTE]) * preamble + body + bytes([checksum(body), END])


def next_frame(buf: bytes) -> tuple[Frame | None, int]:
    """Find the first frame in a receive buffer.

    Returns ``(frame, end)`` with ``end`` the index just past the frame, or ``(None, skip)`` when
    no complete frame is there yet (``skip``: leading bytes that can never start a frame —
    preamble and noise — so a caller may drop them). A 68 not followed by a second 68 seven bytes
    later is noise and skipped. A complete candidate with a bad checksum or end byte raises
    :class:`ChecksumError` or :class:`LengthError`: such a frame is damaged, not incomplete.
    """
    i = 0
    n = len(buf)
    while True:
        j = buf.find(bytes([START]), i)
        if j < 0:
            return None, n
        if n - j < HEADER_LEN:
            return None, j
        if buf[j + 7] != START:
            i = j + 1
            continue
        length = buf[j + 9]
        total = HEADER_LEN + length + 2
        if n - j < total:
            return None, j
        body = buf[j : j + HEADER_LEN + length]
        cs, end = buf[j + HEADER_LEN + length], buf[j + HEADER_LEN + length + 1]
        if end != END:
            raise LengthError(f"no end byte 16 where length {length} puts it (got {end:02X})")
        if checksum(body) != cs:
            raise ChecksumError(f"checksum {cs:02X}, computed {checksum(body):02X}")
        address = decode_address(body[1:7])
        return Frame(address, body[8], remove_offset(body[HEADER_LEN:])), j + total


def decode_frame(raw: bytes) -> Frame:
    """Exactly one frame, optionally preceded by FE bytes; raises a :class:`Dlt645Error`."""
    k = 0
    while k < len(raw) and raw[k] == PREAMBLE_BYTE:
        k += 1
    rest = raw[k:]
    if not rest or rest[0] != START:
        raise FrameFormatError("a frame starts with 68 (after optional FE bytes)")
    if len(rest) < HEADER_LEN + 2:
        raise LengthError(f"{len(rest)} bytes are too short for a frame")
    if rest[7] != START:
        raise FrameFormatError("no second 68 after the address")
    length = rest[9]
    if len(rest) != HEADER_LEN + length + 2:
        held = len(rest) - HEADER_LEN - 2
        raise LengthError(f"length byte says {length} data bytes, the frame holds {held}")
    frame, end = next_frame(rest)
    if frame is None or end != len(rest):  # pragma: no cover - the checks above make it complete
        raise LengthError("incomplete frame")
    return frame


# -- data identifiers and requests -----------------------------------------------------------------


def di_bytes(di: int, version: Version = "2007") -> bytes:
    """A data identifier as sent (DI0 first): 0x02010100 -> 00 01 01 02."""
    n = DI_LEN[version]
    if not 0 <= di < 1 << (8 * n):
        raise ValueError(f"DI {di:#x} does not fit in {n} bytes ({version})")
    return di.to_bytes(n, "little")


def di_text(di: int, version: Version = "2007") -> str:
    """A DI as the standard prints it (DI3 DI2 DI1 DI0 in hex): ``02010100``."""
    return f"{di:0{2 * DI_LEN[version]}X}"


def read_request(address: str, di: int, version: Version = "2007") -> Frame:
    return Frame(address, READ_DATA[version], di_bytes(di, version))


def read_address_request() -> Frame:
    """DL/T 645-2007 read communication address (C=0x13) to the wildcard address."""
    return Frame(WILDCARD_ADDRESS, READ_ADDRESS_2007)


def read_reply(request: Frame, value: bytes, address: str | None = None) -> Frame:
    """The normal reply of a meter at ``address`` (default: the request's) to a read request."""
    return Frame(address or request.address, request.control | DIRECTION_BIT, request.data + value)


def error_reply(request: Frame, code: int, address: str | None = None) -> Frame:
    control = request.control | DIRECTION_BIT | ERROR_BIT
    return Frame(address or request.address, control, bytes([code & 0xFF]))


def _check_reply(request: Frame, reply: Frame, version: Version) -> None:
    if not reply.is_reply:
        raise ReplyMismatchError(f"control {reply.control:02X} is not a reply (direction bit clear)")
    if reply.function != request.function:
        raise ReplyMismatchError(f"reply to function {reply.function:02X}, asked {request.function:02X}")
    if not addresses_match(request.address, reply.address):
        raise AddressMismatchError(f"reply from {reply.address}, asked {request.address}")
    if reply.is_error:
        if len(reply.data) != 1:
            raise LengthError(f"an error reply holds 1 byte, this one {len(reply.data)}")
        raise ErrorReplyError(reply.data[0], version)


def parse_read_reply(request: Frame, reply: Frame, version: Version = "2007") -> bytes:
    """The value bytes of a normal reply to ``request`` (the echoed DI removed).

    Raises :class:`ErrorReplyError`, :class:`AddressMismatchError`, :class:`ReplyMismatchError` or
    :class:`LengthError`.
    """
    _check_reply(request, reply, version)
    n = DI_LEN[version]
    if len(reply.data) <= n:
        raise LengthError(f"a read reply holds the {n}-byte DI and a value; this one {len(reply.data)}")
    if reply.data[:n] != request.data[:n]:
        got, asked = reply.data[:n][::-1].hex(), request.data[:n][::-1].hex()
        raise ReplyMismatchError(f"reply for DI {got}, asked {asked}")
    return reply.data[n:]


def parse_address_reply(reply: Frame) -> str:
    """The meter address from its reply to :func:`read_address_request`."""
    _check_reply(read_address_request(), reply, "2007")
    if len(reply.data) != 6:
        raise LengthError(f"an address reply holds 6 bytes, this one {len(reply.data)}")
    address = decode_address(reply.data)
    if address != reply.address:
        raise AddressMismatchError(f"address reply names {address} in a frame from {reply.address}")
    return address


# -- BCD values ------------------------------------------------------------------------------------


_FORMAT_RE: Final = re.compile(r"^(X+)(?:\.(X+))?$")


@dataclass(frozen=True, slots=True)
class BcdFormat:
    """A data item's layout as the standard prints it: ``XXX.XXX`` = 6 digits, 3 decimals, 3 bytes.

    ``signed``: bit 7 of the most significant byte is the sign (1 = negative), leaving 7 as the
    largest leading digit.
    """

    digits: int
    decimals: int
    signed: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= 2 * 32:
            raise ValueError("a BCD value has 1..64 digits")
        if not 0 <= self.decimals <= self.digits:
            raise ValueError("decimals must be within the digits")

    @classmethod
    def parse(cls, text: str, signed: bool = False) -> BcdFormat:
        """``"XXXXXX.XX"`` -> 8 digits, 2 decimals."""
        m = _FORMAT_RE.match(text.strip().upper())
        if not m:
            raise ValueError(f"format {text!r} is not like XXXXXX.XX")
        whole, frac = m.group(1), m.group(2) or ""
        return cls(len(whole) + len(frac), len(frac), signed)

    @property
    def size(self) -> int:
        """Bytes on the wire (an odd digit count leaves a leading 0 nibble: 1997's ``XXX`` is 2 bytes)."""
        return (self.digits + 1) // 2

    @property
    def max_magnitude(self) -> int:
        """The largest raw integer magnitude (before the decimal point is placed) that encodes."""
        top = int(10**self.digits) - 1
        return min(top, 8 * int(10 ** (2 * self.size - 1)) - 1) if self.signed else top

    def text(self) -> str:
        whole = "X" * (self.digits - self.decimals)
        return whole + ("." + "X" * self.decimals if self.decimals else "")


def decode_bcd_int(raw: bytes, fmt: BcdFormat) -> int:
    """The raw signed integer held by ``raw`` (least significant byte first). Every nibble of the
    bytes counts (a meter may fill the padding nibble of an odd format); non-BCD nibbles raise."""
    if len(raw) != fmt.size:
        raise LengthError(f"{fmt.text()} needs {fmt.size} bytes, got {len(raw)}")
    negative = False
    if fmt.signed and raw[-1] & 0x80:
        negative = True
        raw = raw[:-1] + bytes([raw[-1] & 0x7F])
    value = 0
    for b in reversed(raw):
        hi, lo = b >> 4, b & 0x0F
        if hi > 9 or lo > 9:
            raise BcdError(f"byte {b:02X} is not BCD (value bytes {raw.hex(' ')})")
        value = value * 100 + hi * 10 + lo
    return -value if negative else value


def encode_bcd_int(value: int, fmt: BcdFormat) -> bytes:
    """The bytes holding the raw integer ``value``; raises :class:`BcdError` if it does not fit."""
    if value < 0 and not fmt.signed:
        raise BcdError(f"{value} is negative; {fmt.text()} is unsigned")
    mag = abs(value)
    if mag > fmt.max_magnitude:
        raise BcdError(f"{value} does not fit {fmt.text()}{' signed' if fmt.signed else ''}")
    digits = f"{mag:0{2 * fmt.size}d}"
    out = bytearray(int(digits[i : i + 2], 16) for i in range(2 * fmt.size - 2, -1, -2))
    if value < 0:
        out[-1] |= 0x80
    return bytes(out)


def decode_value(raw: bytes, fmt: BcdFormat) -> float:
    """The value with its decimal places: ``45 23 01 00`` as ``XXXXXX.XX`` is 123.45."""
    return decode_bcd_int(raw, fmt) / int(10**fmt.decimals)


def encode_value(value: float, fmt: BcdFormat) -> bytes:
    """The bytes of ``value`` rounded to the format's decimals (half to even); exact for formats of
    up to 15 digits, a float's precision (the shipped profiles' values have at most 8)."""
    scaled = round(value * 10**fmt.decimals)
    return encode_bcd_int(int(scaled), fmt)
