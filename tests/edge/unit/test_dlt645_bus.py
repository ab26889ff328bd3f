"""The DL/T 645 transport against a scripted line: preambles, noise, echoes and split chunks are
handled; every defect is a typed edge error; error replies are not retried."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from epcwatch.edge.dlt645_bus import Dlt645Transport
from epcwatch.edge.errors import DeviceTimeoutError, Dlt645ErrorReplyError, FrameError, ReadOnlyError
from epcwatch.edge.poller import DevicePlan, PollOutcome, ReadSpec, poll_device
from epcwatch.profiles import dlt645

METER = "000012345678"
DI = 0x02010100


class ScriptedLink:
    """A line whose answers a function of the request computes: a list of byte chunks."""

    def __init__(self, answer: Callable[[dlt645.Frame], list[bytes]]) -> None:
        self.answer = answer
        self.chunks: list[bytes] = []
        self.sent: list[bytes] = []
        self.is_open = False

    async def open(self) -> None:
        self.is_open = True

    async def write(self, data: bytes) -> None:
        self.sent.append(data)
        self.chunks += self.answer(dlt645.decode_frame(data))

    async def read(self, max_wait: float) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        await asyncio.sleep(min(max_wait, 0.01))
        return b""

    def discard(self) -> None:
        self.chunks.clear()

    async def close(self) -> None:
        self.is_open = False


def _reply(request: dlt645.Frame, value: bytes = b"\x01\x23") -> bytes:
    return dlt645.encode_frame(dlt645.read_reply(request, value), preamble=2)


def _read(link: ScriptedLink, function: int = 0x11, timeout: float = 0.2) -> list[int]:
    async def main() -> list[int]:
        transport = Dlt645Transport(lambda: link, gap_s=0)
        try:
            return await transport.read(function, DI, 2, int(METER), timeout)
        finally:
            await transport.close()

    return asyncio.run(main())


def test_reply_in_single_bytes_after_noise_and_an_echo() -> None:
    def answer(req: dlt645.Frame) -> list[bytes]:
        wire = b"\x00\x68\x13" + dlt645.encode_frame(req, 0) + _reply(req)  # noise, our echo, the reply
        return [bytes([b]) for b in wire]

    link = ScriptedLink(answer)
    assert _read(link) == [0x01, 0x23]
    assert link.sent[0][:4] == b"\xfe" * 4


def test_silence_is_a_timeout() -> None:
    with pytest.raises(DeviceTimeoutError):
        _read(ScriptedLink(lambda req: []))


def test_garbage_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="no complete frame"):
        _read(ScriptedLink(lambda req: [b"\xfe\xfe\x12\x34\x56"]))


def test_bad_checksum_is_a_frame_error() -> None:
    def answer(req: dlt645.Frame) -> list[bytes]:
        wire = bytearray(_reply(req))
        wire[-2] ^= 1
        return [bytes(wire)]

    with pytest.raises(FrameError, match="ChecksumError"):
        _read(ScriptedLink(answer))


def test_reply_from_another_meter_is_a_frame_error() -> None:
    def answer(req: dlt645.Frame) -> list[bytes]:
        return [dlt645.encode_frame(dlt645.read_reply(req, b"\x01\x23", address="000012345679"))]

    with pytest.raises(FrameError, match="AddressMismatchError"):
        _read(ScriptedLink(answer))


def test_value_of_the_wrong_length_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="LengthError"):
        _read(ScriptedLink(lambda req: [_reply(req, b"\x01\x23\x45")]))


def test_error_reply_is_typed_and_not_retried() -> None:
    link = ScriptedLink(lambda req: [dlt645.encode_frame(dlt645.error_reply(req, 0x02))])
    with pytest.raises(Dlt645ErrorReplyError) as err:
        _read(link)
    assert err.value.code == 0x02 and not err.value.retryable

    plan = DevicePlan("p", "meter", (ReadSpec(0x11, DI, 2, "DI 02010100"),), lambda a: ({}, "good"),
                      protocol="dlt645")

    async def main() -> PollOutcome:
        transport = Dlt645Transport(lambda: link, gap_s=0)
        return await poll_device(transport, plan, int(METER), 0.2, 3)

    link.sent.clear()
    out = asyncio.run(main())
    assert len(link.sent) == 1  # deterministic: asked once despite 3 retries
    assert out.error_replies == 1 and "no requested data" in str(out.error)


def test_only_read_control_codes_are_sent() -> None:
    link = ScriptedLink(lambda req: [])
    for function in (0x03, 0x14, 0x1C):  # a Modbus read, DL/T 645 write data, control (relay)
        with pytest.raises(ReadOnlyError):
            _read(link, function)
    assert link.sent == []


def test_discovery_returns_the_meter_address() -> None:
    def answer(req: dlt645.Frame) -> list[bytes]:
        assert req.address == dlt645.WILDCARD_ADDRESS and req.control == 0x13
        return [dlt645.encode_frame(dlt645.Frame(METER, 0x93, dlt645.encode_address(METER)))]

    async def main() -> str:
        return await Dlt645Transport(lambda: ScriptedLink(answer), gap_s=0).discover(0.2)

    assert asyncio.run(main()) == METER
