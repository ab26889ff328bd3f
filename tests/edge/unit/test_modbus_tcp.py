"""The lean Modbus TCP client: frames agree with pymodbus's encoder byte for byte, every malformed
answer is a FrameError (never a wrong value), only reads can be encoded; and the asyncio client
pipelines, times out per request and survives a dead unit, against a scripted TCP peer."""

from __future__ import annotations

import asyncio
import contextlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadCoilsResponse,
    ReadDiscreteInputsRequest,
    ReadDiscreteInputsResponse,
)
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)

from epcwatch.edge.errors import DeviceTimeoutError, ExceptionResponseError, FrameError, ReadOnlyError
from epcwatch.edge.modbus_tcp import TcpClientTransport, decode_response, encode_request, frame_length

FRAMER = FramerSocket(DecodePDU(False))
REQUESTS = {
    1: ReadCoilsRequest,
    2: ReadDiscreteInputsRequest,
    3: ReadHoldingRegistersRequest,
    4: ReadInputRegistersRequest,
}


@st.composite
def reads(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    fc = draw(st.sampled_from([1, 2, 3, 4]))
    limit = 2000 if fc in (1, 2) else 125
    count = draw(st.integers(1, limit))
    address = draw(st.integers(0, 0x10000 - count))
    return draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 255)), fc, address, count


@settings(max_examples=300)
@given(reads())
def test_requests_match_pymodbus_byte_for_byte(read: tuple[int, int, int, int, int]) -> None:
    tid, unit, fc, address, count = read
    ref = FRAMER.buildFrame(REQUESTS[fc](address=address, count=count, dev_id=unit, transaction_id=tid))
    assert encode_request(tid, unit, fc, address, count) == ref


def _response(tid: int, unit: int, fc: int, values: list[int] | list[bool]) -> bytes:
    if fc in (1, 2):
        cls = ReadCoilsResponse if fc == 1 else ReadDiscreteInputsResponse
        return bytes(FRAMER.buildFrame(cls(bits=[bool(v) for v in values], dev_id=unit, transaction_id=tid)))
    cls2 = ReadHoldingRegistersResponse if fc == 3 else ReadInputRegistersResponse
    return bytes(FRAMER.buildFrame(cls2(registers=[int(v) for v in values], dev_id=unit, transaction_id=tid)))


@settings(max_examples=300)
@given(st.data())
def test_answers_built_by_pymodbus_decode_to_their_values(data: st.DataObject) -> None:
    fc = data.draw(st.sampled_from([1, 2, 3, 4]))
    unit = data.draw(st.integers(0, 255))
    if fc in (1, 2):
        values: list[int] | list[bool] = data.draw(st.lists(st.booleans(), min_size=1, max_size=2000))
    else:
        values = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125))
    frame = _response(7, unit, fc, values)
    assert frame_length(frame) == len(frame)
    assert decode_response(frame, unit, fc, len(values)) == values


@settings(max_examples=500)
@given(st.binary(min_size=0, max_size=40), st.sampled_from([1, 2, 3, 4]), st.integers(1, 8))
def test_garbage_is_a_frame_error_or_a_correct_read(junk: bytes, fc: int, count: int) -> None:
    """Whatever bytes arrive, the decoder either raises one of our errors or returns exactly
    ``count`` values of the right kind: it never guesses."""
    try:
        out = decode_response(junk, 1, fc, count)
    except (FrameError, ExceptionResponseError):
        return
    assert len(out) == count
    assert all(isinstance(v, bool) for v in out) == (fc in (1, 2))


def test_exception_answer_and_mismatches() -> None:
    exc = struct.pack(">HHHBBB", 1, 0, 3, 9, 0x84, 2)
    with pytest.raises(ExceptionResponseError) as info:
        decode_response(exc, 9, 4, 2)
    assert info.value.code == 2
    good = _response(1, 9, 3, [1, 2])
    with pytest.raises(FrameError, match="unit 8"):
        decode_response(good, 8, 3, 2)
    with pytest.raises(FrameError, match="function"):
        decode_response(good, 9, 4, 2)
    with pytest.raises(FrameError, match="asked for 3"):
        decode_response(good, 9, 3, 3)


@pytest.mark.parametrize("fc", [0, 5, 6, 15, 16, 22, 23, 43])
def test_only_reads_can_be_encoded(fc: int) -> None:
    with pytest.raises(ReadOnlyError):
        encode_request(1, 1, fc, 0, 1)


# -- the client against a scripted peer ------------------------------------------------------------


class Peer:
    """A TCP peer that answers FC3 reads with ``address + i`` per register, after ``delay[unit]``
    seconds, never for ``dead`` units, and records the largest number of requests it held at once."""

    def __init__(self) -> None:
        self.delay: dict[int, float] = {}
        self.dead: set[int] = set()
        self.held = 0
        self.max_held = 0
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.append(writer)
        tasks = self.tasks
        try:
            while True:
                head = await reader.readexactly(12)
                tid, _, _, unit, fc, address, count = struct.unpack(">HHHBBHH", head)
                self.requests += 1
                t = asyncio.create_task(self._answer(writer, tid, unit, fc, address, count))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def _answer(
        self, writer: asyncio.StreamWriter, tid: int, unit: int, fc: int, address: int, count: int
    ) -> None:
        self.held += 1
        self.max_held = max(self.max_held, self.held)
        try:
            if unit in self.dead:
                await asyncio.sleep(3600)
            await asyncio.sleep(self.delay.get(unit, 0.0))
            writer.write(_response(tid, unit, fc, [(address + i) & 0xFFFF for i in range(count)]))
        finally:
            self.held -= 1

    async def stop(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        for w in self.writers:
            w.close()
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()
        self.writers.clear()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_pipelined_requests_on_one_connection_are_matched_by_transaction_id() -> None:
    async def main() -> None:
        peer = Peer()
        port = await peer.start()
        peer.delay = {1: 0.3, 2: 0.1}  # unit 1 answers last: answers arrive out of order
        client = TcpClientTransport("127.0.0.1", port, connections=1, pipeline=4)
        try:
            out = await asyncio.gather(*(client.read(3, 10 * u, 2, u, 2.0) for u in (1, 2, 1, 2)))
            assert out == [[10, 11], [20, 21], [10, 11], [20, 21]]
            assert peer.max_held == 4
        finally:
            await client.close()
            await peer.stop()

    asyncio.run(main())


def test_a_dead_unit_costs_its_own_timeout_only() -> None:
    async def main() -> None:
        peer = Peer()
        port = await peer.start()
        peer.dead = {9}
        client = TcpClientTransport("127.0.0.1", port, connections=1, pipeline=2)
        try:
            loop = asyncio.get_running_loop()
            dead = asyncio.ensure_future(client.read(3, 0, 1, 9, 1.0))
            t0 = loop.time()
            for i in range(20):  # the other slot keeps serving the live unit meanwhile
                assert await client.read(3, i, 1, 1, 1.0) == [i]
            assert loop.time() - t0 < 0.9
            with pytest.raises(DeviceTimeoutError):
                await dead
            assert await client.read(3, 5, 1, 1, 1.0) == [5]  # the slot is free again
        finally:
            await client.close()
            await peer.stop()

    asyncio.run(main())


def test_a_refused_connection_is_bus_unavailable_then_recovers() -> None:
    from epcwatch.edge.errors import BusUnavailableError

    async def main() -> None:
        peer = Peer()
        port = await peer.start()
        await peer.stop()
        client = TcpClientTransport("127.0.0.1", port)
        with pytest.raises(BusUnavailableError):
            await client.read(3, 0, 1, 1, 0.5)
        peer.server = await asyncio.start_server(peer._serve, "127.0.0.1", port)
        try:
            assert await client.read(3, 4, 2, 1, 1.0) == [4, 5]
        finally:
            await client.close()
            await peer.stop()

    asyncio.run(main())
