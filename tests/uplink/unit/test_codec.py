"""The platform codec: frames, AES, the MD5 identity answer, XML messages, schedule arithmetic."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    crc16_modbus,
    from_xml,
    md5_answer,
    to_xml,
)
from epcwatch.uplink.cursor import latest_due, operation, platform_time, sequence_of
from epcwatch.uplink.errors import DecryptError, FrameError, MessageError

KEY = b"0123456789abcdef"
REPORT = Message(
    "330100D001",
    "01",
    Data(
        "report",
        "1940000",
        "20250303001500",
        (
            MeterData("1", (Function("1", "01000", 12.5), Function("2", "01A00", 3.25))),
            MeterData("2", (Function("1", "02000", None, "1"),)),
        ),
    ),
)
MESSAGES = [
    Message("b", "g", IdValidate("request")),
    Message("b", "g", IdValidate("sequence", sequence="a1b2c3d4")),
    Message("b", "g", IdValidate("md5", md5="0" * 32)),
    Message("b", "g", IdValidate("result", result="pass")),
    Message("b", "g", HeartBeat("notify")),
    Message("b", "g", HeartBeat("time", time="20250303120000")),
    REPORT,
    Message("b", "g", Data("continuous_ack", "77")),
]


def test_crc16_modbus_check_value() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37  # the CRC-16/MODBUS catalogue check value


def test_md5_answer_is_md5_of_sequence_then_key() -> None:
    assert md5_answer("ab", "c") == "900150983cd24fb0d6963f7d28e17f72"  # RFC 1321: MD5("abc")
    assert md5_answer("seq", "key") == hashlib.md5(b"seqkey").hexdigest()
    assert md5_answer("seq", "key") != md5_answer("key", "seq")


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: m.type)
def test_xml_round_trip(msg: Message) -> None:
    raw = to_xml(msg)
    assert raw.startswith(b'<?xml version="1.0" encoding="utf-8"?><root><common><building_id>')
    assert from_xml(raw) == msg


def test_report_xml_shape() -> None:
    raw = to_xml(REPORT).decode()
    assert "<type>report</type>" in raw and '<data operation="report"><sequence>1940000</sequence>' in raw
    assert '<meter id="1"><function id="1" coding="01000" error="0">12.5</function>' in raw
    assert '<function id="1" coding="02000" error="1" />' in raw  # a missing value is flagged


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"<root><common>", "not XML"),
        (b"<html/>", "expected <root>"),
        (b"<root><heart_beat operation='notify'/></root>", "no <common>"),
        (
            b"<root><common><building_id>b</building_id><gateway_id>g</gateway_id></common></root>",
            "no id_validate",
        ),
        (
            b"<root><common><building_id>b</building_id><gateway_id>g</gateway_id><type>report</type></common>"
            b"<heart_beat operation='notify'/></root>",
            "does not match",
        ),
        (
            b"<root><common><building_id>b</building_id><gateway_id>g</gateway_id></common>"
            b"<id_validate operation='result'><result>maybe</result></id_validate></root>",
            "neither pass nor fail",
        ),
        (
            b"<root><common><building_id>b</building_id><gateway_id>g</gateway_id></common>"
            b"<data operation='report'><meter id='1'><function id='1'>twelve</function></meter>"
            b"</data></root>",
            "value 'twelve'",
        ),
    ],
)
def test_malformed_messages_say_why(raw: bytes, why: str) -> None:
    with pytest.raises(MessageError, match=why):
        from_xml(raw)


@pytest.mark.parametrize("padding", ["pkcs7", "zeros"])
def test_aes_round_trip_and_wrong_key(padding: str) -> None:
    c = Cipher(KEY, padding=padding)  # type: ignore[arg-type]
    raw = to_xml(REPORT)
    enc = c.encrypt(raw)
    assert len(enc) % 16 == 0 and raw not in enc
    assert c.decrypt(enc) == raw
    with pytest.raises(DecryptError):
        Cipher(b"fedcba9876543210", padding=padding).decrypt(enc)  # type: ignore[arg-type]
    with pytest.raises(DecryptError):
        c.decrypt(enc[:-1])


def test_aes_matches_a_reference_vector() -> None:
    """AES-128-CBC with IV = key over one padded block, checked against the primitive itself."""
    from cryptography.hazmat.primitives.ciphers import Cipher as AesCipher
    from cryptography.hazmat.primitives.ciphers import algorithms, modes

    plain = b"<root/>"
    enc = AesCipher(algorithms.AES(KEY), modes.CBC(KEY)).encryptor()
    expected = enc.update(plain + bytes([9]) * 9) + enc.finalize()
    assert Cipher(KEY).encrypt(plain) == expected
    with pytest.raises(ValueError, match="16 bytes"):
        Cipher(b"short")


@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=5), st.data())
def test_frames_survive_any_chunking(payloads: list[bytes], data: st.DataObject) -> None:
    f = FrameFormat()
    stream = b"\x00junk" + b"".join(f.encode(p) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    dec = FrameDecoder(f)
    got: list[bytes] = []
    prev = 0
    for c in [*cuts, len(stream)]:
        got += dec.feed(stream[prev:c])
        prev = c
    assert got == payloads
    assert dec.skipped == 5


def test_bad_crc_raises_then_resynchronises() -> None:
    f = FrameFormat()
    good = f.encode(b"second")
    bad = bytearray(f.encode(b"first"))
    bad[10] ^= 0xFF
    dec = FrameDecoder(f)
    with pytest.raises(FrameError, match="CRC"):
        dec.feed(bytes(bad) + good)
    assert dec.feed(b"") == [b"second"]


def test_big_endian_without_crc_variant() -> None:
    f = FrameFormat(header=b"\x1f\x1f", tail=b"", byteorder="big", crc=False)
    assert f.encode(b"ab") == b"\x1f\x1f\x00\x00\x00\x02ab"
    assert FrameDecoder(f).feed(f.encode(b"ab")) == [b"ab"]


def test_codec_end_to_end() -> None:
    codec = Codec(Cipher(KEY))
    assert [codec.decode_payload(p) for p in codec.decoder().feed(codec.encode(REPORT))] == [REPORT]


def test_schedule() -> None:
    period, delay = 900_000, 120_000
    t0 = 1_740_931_200_000  # 2025-03-03 00:00 Asia/Shanghai (16:00 UTC the day before)
    assert latest_due(t0 + period + delay, period, delay) == t0
    assert latest_due(t0 + period + delay - 1, period, delay) == t0 - period
    assert operation(t0, t0 + period + delay, period, delay) == "report"
    assert operation(t0 - period, t0 + period + delay, period, delay) == "continuous"
    assert sequence_of(t0, period) == sequence_of(t0 + 1, period) != sequence_of(t0 + period, period)
    assert platform_time(t0, "Asia/Shanghai") == "20250303000000"
