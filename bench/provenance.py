"""Edge cost of signing: CPU time per reading to store (outbox append) and send (message build,
proof) readings, with and without a site key, on the same outbox and forwarder code the agent
runs. No network: the publisher only records the payloads.

    .venv/bin/python bench/provenance.py [--readings 20000] [--per-message 1]

``--per-message 1`` is live traffic (one reading per message: one signature per reading);
``--per-message 100`` a backlog drained after an outage.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epcwatch.edge.forwarder import DeviceInfo, Forwarder
from epcwatch.edge.outbox import NewReading, Outbox
from epcwatch.wire import DeviceTags

VALUES = {
    "voltage_l1": 230.1,
    "current_l1": 12.5,
    "active_power": 8420.0,
    "power_factor": 0.97,
    "frequency": 50.02,
    "energy_import": 123456.78,
}
T0 = 1_700_000_000_000


class Sink:
    connected = True

    def __init__(self) -> None:
        self.n = 0
        self.bytes = 0

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        self.n += 1
        self.bytes += len(payload)
        return self.n


def run(n: int, per_message: int, signed: bool) -> tuple[float, float, float]:
    """CPU µs per reading to append and to send, and payload bytes per reading."""
    key = Ed25519PrivateKey.generate() if signed else None
    with tempfile.TemporaryDirectory() as d:
        outbox = Outbox(Path(d) / "o.sqlite", synchronous="normal", site="s1" if signed else None)
        readings = [NewReading(f"m{i % 10}", T0 + i, VALUES) for i in range(n)]
        c0 = time.process_time()
        for i in range(0, n, 100):  # the agent commits groups of readings
            outbox.append(readings[i : i + 100])
        c1 = time.process_time()
        sink = Sink()
        fwd = Forwarder(
            "s1",
            outbox,
            sink,
            {f"m{i}": DeviceInfo("meter", DeviceTags()) for i in range(10)},
            ThreadPoolExecutor(1),
            max_inflight=10**9,
            max_readings=per_message,
            signing_key=key,
        )

        async def drain() -> None:
            while await fwd.step():
                pass

        asyncio.run(drain())
        c2 = time.process_time()
        outbox.close()
    return (c1 - c0) / n * 1e6, (c2 - c1) / n * 1e6, sink.bytes / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=20_000)
    ap.add_argument("--per-message", type=int, default=1)
    a = ap.parse_args()
    print(f"{a.readings} readings, {a.per_message} per message; CPU µs per reading")
    print(f"{'':10} {'append':>8} {'send':>8} {'total':>8} {'bytes/reading':>14}")
    for signed in (False, True):
        ap_us, send_us, size = run(a.readings, a.per_message, signed)
        label = "signed" if signed else "unsigned"
        print(f"{label:10} {ap_us:8.1f} {send_us:8.1f} {ap_us + send_us:8.1f} {size:14.0f}")


if __name__ == "__main__":
    main()
