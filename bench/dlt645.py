"""DL/T 645 benchmark: codec frames/s, and a three-phase meter's poll time on a simulated line.

    .venv/bin/python bench/dlt645.py [--seconds 3] [--baud 2400]

Measured in the same run, on the same machine:

* codec: encode a read request and decode + parse its reply (the edge's per-value CPU work),
  as exchanges per second; the ceiling is a bare ``bytes`` round trip of the same frames
  (``bytes.find`` + slicing), so the ratio says what the checks (checksum, BCD, address, DI)
  cost on top of moving the bytes;
* line: one poll of ``chint-dtsu666-dlt645`` (15 data identifiers) against the simulated slave
  over TCP, wall time per poll; the physical limit is the frames' bit time at ``--baud`` (8E1,
  11 bits a byte), which a real RS-485 line adds and TCP on loopback does not.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from epcwatch.edge.dlt645_bus import Dlt645Transport
from epcwatch.edge.poller import poll_device
from epcwatch.edge.profile_plan import device_plan
from epcwatch.edge.site import Dlt645TcpBus
from epcwatch.profiles import dlt645
from epcwatch.profiles.dlt645_profile import load_dlt645_profile
from epcwatch.sim.dlt645 import Dlt645Meter, Dlt645Slave, serve_tcp

PROFILE = "chint-dtsu666-dlt645"
ADDRESS = "000012345678"


def codec_rate(seconds: float) -> tuple[float, float]:
    profile = load_dlt645_profile(PROFILE)
    fmt = profile.points[0].bcd
    request = dlt645.read_request(ADDRESS, profile.points[0].di)
    reply_wire = dlt645.encode_frame(dlt645.read_reply(request, dlt645.encode_value(230.1, fmt)))
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(1000):
            dlt645.encode_frame(dlt645.read_request(ADDRESS, profile.points[0].di))
            frame, _ = dlt645.next_frame(reply_wire)
            assert frame is not None
            dlt645.decode_value(dlt645.parse_read_reply(request, frame), fmt)
        n += 1000
    codec = n / (time.perf_counter() - t0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(1000):
            j = reply_wire.find(0x68)
            bytes(b - 0x33 & 0xFF for b in reply_wire[j + 10 : -2])
        n += 1000
    bare = n / (time.perf_counter() - t0)
    return codec, bare


async def line_time(polls: int) -> float:
    profile = load_dlt645_profile(PROFILE)
    values = {p.name: 1.0 for p in profile.points}
    slave = Dlt645Slave([Dlt645Meter(ADDRESS, profile, lambda: values)])
    server = await serve_tcp(slave, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bus = Dlt645TcpBus(type="dlt645_tcp", id="b", host="127.0.0.1", port=port, inter_frame_gap_ms=0)
    transport = Dlt645Transport.for_bus(bus)
    plan = device_plan(PROFILE)
    try:
        await poll_device(transport, plan, int(ADDRESS), 2.0, 0)  # connect
        t0 = time.perf_counter()
        for _ in range(polls):
            out = await poll_device(transport, plan, int(ADDRESS), 2.0, 0)
            assert out.quality == "good", out.error
        return (time.perf_counter() - t0) / polls
    finally:
        await transport.close()
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--baud", type=int, default=2400)
    args = ap.parse_args()
    codec, bare = codec_rate(args.seconds)
    print(f"codec: {codec:,.0f} exchanges/s (bare byte handling {bare:,.0f}/s, ratio {codec / bare:.2f})")
    per_poll = asyncio.run(line_time(50))
    profile = load_dlt645_profile(PROFILE)
    # request: 4 FE + 16 bytes; reply: 2 FE + 16 + value bytes; 11 bits a byte at 8E1
    wire_bytes = sum(4 + 16 + 2 + 16 + p.bcd.size for p in profile.points)
    line_s = wire_bytes * 11 / args.baud
    print(
        f"poll of {PROFILE} ({len(profile.points)} DIs) over loopback TCP: {per_poll * 1000:.1f} ms; "
        f"bit time alone at {args.baud} baud: {line_s * 1000:.0f} ms (ratio {per_poll / line_s:.3f})"
    )


if __name__ == "__main__":
    main()
