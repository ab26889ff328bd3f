"""The recording Modbus device sees every function code on the wire, writes included."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from epcwatch.devservices.services import free_port
from epcwatch.testing.modbus_recorder import READ_CODES, recording_device, request_codes


def frame(tid: int, unit: int, pdu: bytes) -> bytes:
    return tid.to_bytes(2, "big") + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu


@given(st.lists(st.tuples(st.integers(0, 255), st.integers(1, 127), st.binary(max_size=10)), max_size=6))
def test_request_codes_splits_concatenated_frames(frames: list[tuple[int, int, bytes]]) -> None:
    packet = b"".join(frame(i, u, bytes([fc]) + body) for i, (u, fc, body) in enumerate(frames))
    assert request_codes(packet) == [(u, fc) for u, fc, _ in frames]


def test_request_codes_flags_what_is_not_modbus_tcp() -> None:
    assert request_codes(b"GET / HTTP/1.1\r\n") == [(-1, -1)]
    assert request_codes(frame(1, 1, b"\x03\x00\x00\x00\x01") + b"\x00") == [(1, 3), (-1, -1)]


@pytest.mark.integration
def test_device_records_reads_and_writes_from_a_real_client() -> None:
    port = free_port()

    async def talk() -> list[int]:
        c = AsyncModbusTcpClient("127.0.0.1", port=port, retries=0)
        await c.connect()
        try:
            r = await c.read_input_registers(0x34, count=2, device_id=17)
            await c.read_holding_registers(0, count=4, device_id=1)
            await c.read_coils(0, count=8, device_id=1)
            await c.read_discrete_inputs(0, count=8, device_id=1)
            await c.write_register(10, 5, device_id=1)
            await c.write_coil(3, True, device_id=1)
            return list(r.registers)
        finally:
            c.close()

    with recording_device(port) as dev:
        regs = asyncio.run(talk())
        frames, codes = dev.snapshot()
    assert regs == [0x3F80, 0x0000]  # float32 1.0, high word first
    assert frames == 6
    assert codes == {4: 1, 3: 1, 1: 1, 2: 1, 6: 1, 5: 1}
    assert set(codes) - READ_CODES == {5, 6}
