"""MQTT packets: encoders, the stream decoder, and what it refuses."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epcwatch.collector import mqttwire as wire

topics_ = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00+#"),
    min_size=1,
    max_size=40,
)
messages = st.lists(
    st.tuples(
        topics_, st.binary(max_size=300), st.sampled_from([0, 1]), st.integers(1, 65_535), st.booleans()
    ),
    min_size=1,
    max_size=12,
)


def _varint_value(b: bytes) -> int:
    value, shift = 0, 0
    for byte in b:
        value |= (byte & 0x7F) << shift
        shift += 7
    return value


@given(st.integers(0, 268_435_455))
def test_variable_byte_integers_round_trip(n: int) -> None:
    b = wire.varint(n)
    assert _varint_value(b) == n
    assert len(b) == 1 + (n >= 128) + (n >= 16_384) + (n >= 2_097_152)
    assert wire.packet_end(b"\x30" + b + b"x" * n) == 1 + len(b) + n


def test_a_varint_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="variable byte integer"):
        wire.varint(268_435_456)


@given(messages, st.booleans(), st.data())
def test_a_stream_of_publishes_decodes_the_same_however_it_is_cut(msgs, v5, data) -> None:  # type: ignore[no-untyped-def]
    stream = b"".join(
        wire.publish(t, p, qos=q, packet_id=pid if q else 0, dup=dup and q > 0, v5=v5)
        for t, p, q, pid, dup in msgs
    )
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    d = wire.Decoder(v5=v5)
    got = []
    last = 0
    for c in [*cuts, len(stream)]:
        got += d.feed(stream[last:c])
        last = c
    assert d.pending == 0
    assert got == [wire.Publish(t, p, q, pid if q else 0, dup and q > 0, False) for t, p, q, pid, dup in msgs]


def _props(*items: bytes) -> bytes:
    body = b"".join(items)
    return wire.varint(len(body)) + body


def _str(s: str) -> bytes:
    return struct.pack("!H", len(s.encode())) + s.encode()


def test_a_publish_with_properties_keeps_its_payload() -> None:
    props = _props(
        b"\x01\x01",  # payload format: UTF-8
        b"\x02" + struct.pack("!I", 3600),  # message expiry
        b"\x03" + _str("application/json"),
        b"\x26" + _str("k") + _str("v"),
        b"\x0b\x81\x01",  # subscription identifier 129
    )
    body = _str("epc/v1/s1/m1/telemetry") + b"\x00\x07" + props + b'{"v":1}'
    packet = bytes((0x32,)) + wire.varint(len(body)) + body
    [m] = wire.Decoder().feed(packet)
    assert m == wire.Publish("epc/v1/s1/m1/telemetry", b'{"v":1}', 1, 7, False, False)


def test_acknowledgements_and_connack_are_decoded() -> None:
    connack = b"\x20" + bytes((2 + 9,)) + b"\x01\x00" + _props(b"\x21\x00\x14", b"\x13\x00\x3c", b"\x24\x01")
    suback5 = b"\x90\x05\x00\x09\x00\x01\x80"
    suback3 = b"\x90\x04\x00\x09\x01\x80"
    puback_short = b"\x40\x02\x00\x05"
    puback_code = b"\x40\x03\x00\x06\x87"
    disconnect = b"\xe0" + bytes((1 + 8,)) + b"\x8b" + _props(b"\x1f" + _str("bye!"))
    got = wire.Decoder().feed(connack + suback5 + puback_short + puback_code + b"\xd0\x00" + disconnect)
    assert got == [
        wire.ConnAck(True, 0, {0x21: 20, 0x13: 60, 0x24: 1}),
        wire.Ack(wire.SUBACK, 9, (1, 0x80)),
        wire.Ack(wire.PUBACK, 5, (0,)),
        wire.Ack(wire.PUBACK, 6, (0x87,)),
        wire.PINGRESP,
        wire.Ack(wire.DISCONNECT, 0, (0x8B,), {0x1F: "bye!"}),
    ]
    assert wire.Decoder(v5=False).feed(b"\x20\x02\x00\x05" + suback3) == [
        wire.ConnAck(False, 5),
        wire.Ack(wire.SUBACK, 9, (1, 0x80)),
    ]
    assert wire.reason_text(0x86) == "bad user name or password (0x86)"
    assert wire.reason_text(5, v5=False) == "not authorized (0x05)"


def test_encoders_write_what_the_specification_says() -> None:
    c = wire.connect(
        "coll-1", keepalive_s=30, username="u", password="p", properties={0x11: 604_800, 0x21: 20_000}
    )
    props = b"\x08\x11" + struct.pack("!I", 604_800) + b"\x21" + struct.pack("!H", 20_000)
    body = b"\x00\x04MQTT\x05\xc0\x00\x1e" + props + _str("coll-1") + _str("u") + _str("p")
    assert c == b"\x10" + wire.varint(len(body)) + body
    c3 = wire.connect("c", keepalive_s=5, v5=False)
    assert c3 == b"\x10\x0d\x00\x04MQTT\x04\x00\x00\x05\x00\x01c"
    assert (
        wire.subscribe(3, [("$share/g/a/+", 1)], v5=True)
        == b"\x82\x12\x00\x03\x00" + _str("$share/g/a/+") + b"\x01"
    )
    assert wire.subscribe(3, [("a", 1)], v5=False) == b"\x82\x06\x00\x03" + _str("a") + b"\x01"
    assert wire.pubacks([1, 258]) == b"\x40\x02\x00\x01\x40\x02\x01\x02"
    assert wire.disconnect() == b"\xe0\x01\x00" and wire.disconnect(v5=False) == b"\xe0\x00"
    with pytest.raises(ValueError, match="user name"):
        wire.connect("c", keepalive_s=5, password="p")


@pytest.mark.parametrize(
    ("stream", "match"),
    [
        (b"\x30\xff\xff\xff\xff\x01", "four bytes"),
        (b"\x30\x05\x00\x02\xff\xfex", "UTF-8"),
        (b"\x36\x05\x00\x01a\x00\x01", "QoS 3"),
        (b"\x32\x03\x00\x01a", "shorter than its header"),
        (b"\x30\x03\x00\x00\x00", "without a topic"),
        (b"\x30\x07\x00\x01a\x03\x23\x00\x01", "topic alias"),
        (b"\x30\x06\x00\x01a\x02\x99\x00", "unknown property"),
        (b"\x10\x00", "unexpected packet"),
        (b"\x30\x05\x00\x01a\x09\x00", "run past"),
    ],
)
def test_malformed_streams_are_refused(stream: bytes, match: str) -> None:
    with pytest.raises(wire.MalformedPacketError, match=match):
        wire.Decoder().feed(stream)


def test_a_packet_larger_than_allowed_is_refused_before_it_is_read() -> None:
    d = wire.Decoder(max_packet=1000)
    with pytest.raises(wire.MalformedPacketError, match="1,001 bytes"):
        d.feed(b"\x30" + wire.varint(1001))
