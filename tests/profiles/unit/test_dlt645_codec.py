"""The DL/T 645 codec: round trips, checksum, the +0x33 offset, BCD edge cases and bad frames.

Known-answer frames are written out byte by byte from the standard's frame layout, so the codec
is checked against the standard, not against itself.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from epcwatch.profiles import dlt645
from epcwatch.profiles.dlt645 import BcdFormat, Frame

addresses = st.text(alphabet="0123456789", min_size=12, max_size=12)
wild_addresses = st.text(alphabet="0123456789A", min_size=12, max_size=12)
controls = st.integers(0, 255)
payloads = st.binary(max_size=dlt645.MAX_DATA_LEN)
frames = st.builds(Frame, wild_addresses, controls, payloads)
versions = st.sampled_from(["2007", "1997"])


@st.composite
def formats(draw: st.DrawFn) -> BcdFormat:
    digits = draw(st.integers(1, 16))
    return BcdFormat(digits, draw(st.integers(0, digits)), draw(st.booleans()))


@st.composite
def format_and_raw(draw: st.DrawFn) -> tuple[BcdFormat, int]:
    fmt = draw(formats())
    lo = -fmt.max_magnitude if fmt.signed else 0
    return fmt, draw(st.integers(lo, fmt.max_magnitude))


# -- known answers ---------------------------------------------------------------------------------


def test_read_request_matches_the_standard_layout() -> None:
    # read A-phase voltage (DI 02 01 01 00) from meter 000012345678, 2007 edition
    wire = dlt645.encode_frame(dlt645.read_request("000012345678", 0x02010100), preamble=4)
    body = bytes([0x68, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0x68, 0x11, 0x04, 0x33, 0x34, 0x34, 0x35])
    assert wire == b"\xfe" * 4 + body + bytes([sum(body) % 256, 0x16])


def test_reply_with_a_value_decodes() -> None:
    # the meter answers 230.1 V: DI echoed, value 01 23 (BCD, LSB first) -> 0x01+0x33, 0x23+0x33
    body = bytes([0x68, 0x78, 0x56, 0x34, 0x12, 0x00, 0x00, 0x68, 0x91, 0x06,
                  0x33, 0x34, 0x34, 0x35, 0x34, 0x56])
    raw = b"\xfe\xfe" + body + bytes([sum(body) % 256, 0x16])
    reply = dlt645.decode_frame(raw)
    assert reply == Frame("000012345678", 0x91, bytes([0x00, 0x01, 0x01, 0x02, 0x01, 0x23]))
    request = dlt645.read_request("000012345678", 0x02010100)
    value = dlt645.parse_read_reply(request, reply)
    assert dlt645.decode_value(value, BcdFormat.parse("XXX.X")) == 2301 / 10


def test_address_discovery_request_and_reply() -> None:
    request = dlt645.encode_frame(dlt645.read_address_request(), preamble=0)
    assert request[:10] == bytes([0x68, *[0xAA] * 6, 0x68, 0x13, 0x00])
    reply = Frame("202411110002", 0x93, dlt645.encode_address("202411110002"))
    assert dlt645.parse_address_reply(dlt645.decode_frame(dlt645.encode_frame(reply))) == "202411110002"


def test_signed_values_use_bit_7_of_the_top_byte() -> None:
    fmt = BcdFormat.parse("XXX.XXX", signed=True)
    assert dlt645.decode_value(bytes([0x00, 0x05, 0x81]), fmt) == -10.5
    assert dlt645.encode_value(-10.5, fmt) == bytes([0x00, 0x05, 0x81])
    assert dlt645.decode_value(bytes([0x00, 0x05, 0x01]), fmt) == 10.5


def test_odd_digit_formats_keep_a_leading_zero_nibble() -> None:
    fmt = BcdFormat.parse("XXX")  # 1997 voltage: two bytes
    assert fmt.size == 2 and dlt645.encode_value(230, fmt) == bytes([0x30, 0x02])
    with pytest.raises(dlt645.BcdError):
        dlt645.encode_value(1000, fmt)


# -- laws ------------------------------------------------------------------------------------------


@given(frames, st.integers(0, 4))
def test_frame_round_trip(frame: Frame, preamble: int) -> None:
    wire = dlt645.encode_frame(frame, preamble)
    assert dlt645.decode_frame(wire) == frame
    assert dlt645.next_frame(wire) == (frame, len(wire))


@given(frames)
def test_checksum_is_the_byte_sum_and_data_carries_0x33(frame: Frame) -> None:
    wire = dlt645.encode_frame(frame, preamble=0)
    assert wire[-1] == dlt645.END
    assert wire[-2] == sum(wire[:-2]) % 256
    on_wire = wire[dlt645.HEADER_LEN : dlt645.HEADER_LEN + len(frame.data)]
    assert all((w - d) % 256 == 0x33 for w, d in zip(on_wire, frame.data, strict=True))
    assert wire[9] == len(frame.data)


@given(st.binary(max_size=300))
def test_offset_round_trip(data: bytes) -> None:
    assert dlt645.remove_offset(dlt645.add_offset(data)) == data


@given(format_and_raw())
def test_bcd_round_trip(case: tuple[BcdFormat, int]) -> None:
    fmt, raw = case
    wire = dlt645.encode_bcd_int(raw, fmt)
    assert len(wire) == fmt.size
    assert all((b >> 4) <= 9 and (b & 0xF) <= 9 for b in (wire[:-1] if fmt.signed else wire))
    assert dlt645.decode_bcd_int(wire, fmt) == raw
    assert dlt645.decode_value(wire, fmt) == raw / 10**fmt.decimals
    if fmt.digits <= 15:  # a float holds 15 significant digits exactly
        assert dlt645.encode_value(raw / 10**fmt.decimals, fmt) == wire


@given(formats())
def test_bcd_limits(fmt: BcdFormat) -> None:
    top = fmt.max_magnitude
    assert dlt645.decode_bcd_int(dlt645.encode_bcd_int(top, fmt), fmt) == top
    with pytest.raises(dlt645.BcdError):
        dlt645.encode_bcd_int(top + 1, fmt)
    if fmt.signed:
        assert dlt645.decode_bcd_int(dlt645.encode_bcd_int(-top, fmt), fmt) == -top
    else:
        with pytest.raises(dlt645.BcdError):
            dlt645.encode_bcd_int(-1, fmt)


@given(formats(), st.data())
def test_non_bcd_nibbles_are_typed_errors(fmt: BcdFormat, data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.binary(min_size=fmt.size, max_size=fmt.size)))
    i = data.draw(st.integers(0, fmt.size - 1))
    nibble = data.draw(st.integers(0xA, 0xF))
    raw[i] = (raw[i] & 0x0F) | (nibble << 4) if data.draw(st.booleans()) else (raw[i] & 0xF0) | nibble
    top = raw[i] >> 4
    assume(not (fmt.signed and i == fmt.size - 1 and top >= 8 and top - 8 <= 9 and raw[i] & 0xF <= 9))
    # (the sign bit made the top nibble a digit again)
    with pytest.raises(dlt645.BcdError):
        dlt645.decode_bcd_int(bytes(raw), fmt)


@given(addresses)
def test_address_round_trip(address: str) -> None:
    raw = dlt645.encode_address(address)
    assert raw[0] == int(address[10:], 16)  # A0 holds the last two digits
    assert dlt645.decode_address(raw) == address
    assert dlt645.address_text(dlt645.address_number(address)) == address


@given(addresses, st.integers(0, 0xFFFFFFFF), st.binary(min_size=1, max_size=8))
def test_read_reply_round_trip(address: str, di: int, value: bytes) -> None:
    request = dlt645.read_request(address, di)
    reply = dlt645.read_reply(request, value)
    assert reply.control == 0x91
    assert dlt645.parse_read_reply(request, dlt645.decode_frame(dlt645.encode_frame(reply))) == value


@given(addresses, st.integers(0, 0xFFFF), st.binary(min_size=1, max_size=8))
def test_1997_read_uses_two_byte_identifiers(address: str, di: int, value: bytes) -> None:
    request = dlt645.read_request(address, di, "1997")
    assert request.control == 0x01 and request.data == di.to_bytes(2, "little")
    reply = dlt645.read_reply(request, value)
    assert reply.control == 0x81
    assert dlt645.parse_read_reply(request, reply, "1997") == value


# -- bad frames ------------------------------------------------------------------------------------


@given(frames, st.data())
def test_any_corrupted_byte_is_a_typed_error(frame: Frame, data: st.DataObject) -> None:
    """Flipping bits of one byte between the first 68 and the checksum is always detected
    (a checksum or length error, a format error, a non-BCD address), never a wrong frame."""
    wire = bytearray(dlt645.encode_frame(frame, preamble=0))
    i = data.draw(st.integers(0, len(wire) - 1))
    wire[i] ^= data.draw(st.integers(1, 255))
    try:
        got = dlt645.decode_frame(bytes(wire))
    except dlt645.Dlt645Error:
        return
    # only a change that keeps the frame self-consistent can pass: impossible with one byte
    # changed and the checksum covering all others, unless the byte is the checksum itself
    raise AssertionError(f"corrupted frame decoded as {got}")


@given(frames)
def test_truncated_frames_are_length_errors(frame: Frame) -> None:
    wire = dlt645.encode_frame(frame, preamble=0)
    with pytest.raises(dlt645.FrameFormatError):
        dlt645.decode_frame(wire[:-1])
    assert dlt645.next_frame(wire[:-1]) == (None, 0)  # incomplete while streaming: wait for more


@given(frames, st.binary(max_size=40))
def test_noise_before_a_frame_is_skipped(frame: Frame, noise: bytes) -> None:
    assume(0x68 not in noise)
    wire = dlt645.encode_frame(frame)
    assert dlt645.next_frame(noise + wire) == (frame, len(noise) + len(wire))


def test_wrong_length_byte() -> None:
    wire = bytearray(dlt645.encode_frame(Frame("000000000001", 0x91, b"\x00\x01\x01\x02\x01\x23"), 0))
    wire[9] += 1
    with pytest.raises(dlt645.LengthError):
        dlt645.decode_frame(bytes(wire))


def test_bad_checksum() -> None:
    wire = bytearray(dlt645.encode_frame(Frame("000000000001", 0x91, b"\x00\x01\x01\x02\x01\x23"), 0))
    wire[-2] ^= 0xFF
    with pytest.raises(dlt645.ChecksumError):
        dlt645.decode_frame(bytes(wire))
    with pytest.raises(dlt645.ChecksumError):
        dlt645.next_frame(bytes(wire))


@given(addresses, addresses, st.integers(0, 0xFFFFFFFF))
def test_reply_from_another_address_is_a_mismatch(asked: str, answered: str, di: int) -> None:
    assume(asked != answered)
    request = dlt645.read_request(asked, di)
    with pytest.raises(dlt645.AddressMismatchError):
        dlt645.parse_read_reply(request, dlt645.read_reply(request, b"\x01", address=answered))


@given(addresses, st.integers(0, 0xFFFFFFFF), st.integers(0, 255), versions)
def test_error_reply_is_typed_with_its_code(address: str, di: int, code: int, version: str) -> None:
    v: dlt645.Version = "2007" if version == "2007" else "1997"
    request = dlt645.read_request(address, di & (0xFFFF if v == "1997" else 0xFFFFFFFF), v)
    reply = dlt645.error_reply(request, code)
    assert reply.control == request.control | 0xC0
    with pytest.raises(dlt645.ErrorReplyError) as err:
        dlt645.parse_read_reply(request, dlt645.decode_frame(dlt645.encode_frame(reply)), v)
    assert err.value.code == code


def test_error_reply_names_its_bits() -> None:
    assert "no requested data" in str(dlt645.ErrorReplyError(0x02))
    assert "password" in str(dlt645.ErrorReplyError(0x04, "1997"))


@given(addresses, st.integers(0, 0xFFFFFFFE))
def test_reply_for_another_identifier_is_a_mismatch(address: str, di: int) -> None:
    request = dlt645.read_request(address, di)
    other = dlt645.read_request(address, di + 1)
    with pytest.raises(dlt645.ReplyMismatchError):
        dlt645.parse_read_reply(request, dlt645.read_reply(other, b"\x01"))


def test_a_request_is_not_a_reply() -> None:
    request = dlt645.read_request("000000000001", 0x00010000)
    with pytest.raises(dlt645.ReplyMismatchError):
        dlt645.parse_read_reply(request, request)


def test_wildcard_request_accepts_any_reply_address() -> None:
    request = dlt645.read_request("AAAAAAAAAAAA", 0x00010000)
    reply = dlt645.read_reply(request, b"\x01", address="123456789012")
    assert dlt645.parse_read_reply(request, reply) == b"\x01"


@pytest.mark.parametrize("bad", ["12345678901", "1234567890123", "12345678901x", "", "-00000000001"])
def test_bad_addresses(bad: str) -> None:
    with pytest.raises(dlt645.AddressError):
        dlt645.encode_address(bad)


def test_wildcard_is_not_a_meter_address() -> None:
    with pytest.raises(dlt645.AddressError):
        dlt645.address_number(dlt645.WILDCARD_ADDRESS)


def test_errors_are_in_the_error_tree() -> None:
    from epcwatch.errors import EpcwatchError

    for cls in (dlt645.ChecksumError, dlt645.LengthError, dlt645.AddressMismatchError, dlt645.BcdError,
                dlt645.ErrorReplyError, dlt645.ReplyMismatchError, dlt645.AddressError):
        assert issubclass(cls, dlt645.Dlt645Error) and issubclass(cls, EpcwatchError)
        assert issubclass(cls, ValueError)
