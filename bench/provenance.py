"""Edge cost of signing: CPU time per reading to store (outbox append) and send (message build,
proof) readings, with and without a site key, on the same outbox and forwarder code the agent
runs; and the storage cost: the line protocol bytes per reading the collector writes to InfluxDB
for those messages (its pipeline, fast path and proof checks, into a recording writer). No
network: the publisher only records the payloads.

    .venv/bin/python bench/provenance.py [--readings 20000] [--per-message 10] [--wire 2]

10 devices report in turn. ``--wire 2`` (the agent's default) sends schema-2 site messages (one
proof per device block); ``--per-message 10`` with wire 2 is live traffic (one poll cycle of the
10 devices per message: one signature per reading); ``--per-message 100`` a backlog drained after
an outage (10 readings per block, one signature per 10 readings). With ``--wire 1`` each message
holds one device's readings (``--per-message 1``: one signature per reading).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epcwatch import provenance, topics
from epcwatch.collector.pipeline import Inbound, Pipeline
from epcwatch.edge.forwarder import DeviceInfo, Forwarder
from epcwatch.edge.outbox import NewReading, Outbox
from epcwatch.provenance import Keyring, TrustedKey
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
        self.messages: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        self.n += 1
        self.bytes += len(payload)
        self.messages.append((topic, payload))
        return self.n


class LineBytes:
    """A collector writer that counts the line protocol bytes of readings and provenance points."""

    name = "count"

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, body: bytes) -> None:
        self.bytes += sum(
            len(line) + 1 for line in body.split(b"\n") if line.startswith((b"meter", b"provenance"))
        )


class NoBroker:
    def ack(self, items: object) -> None: ...
    def dead_letter(self, letters: object) -> None:
        raise AssertionError("the collector refused a message")

    def confirm(self, acks: object) -> None: ...


def stored_bytes(messages: list[tuple[str, bytes]], keyring: Keyring | None) -> int:
    """Line protocol bytes the collector writes for ``messages`` (checked against ``keyring``)."""
    w = LineBytes()
    p = Pipeline(w, NoBroker(), group="g", collector="c", health_interval_s=1e9, keyring=keyring)
    p.health.line(0.0, p.monotonic())
    for i, (topic, payload) in enumerate(messages):
        p.add(Inbound(i + 1, 1, topic, payload, T0 + 10**7 + i))
        if p.full():
            p.flush()
    p.flush()
    return w.bytes


def run(n: int, per_message: int, signed: bool, wire: int) -> tuple[float, float, float, float]:
    """CPU µs per reading to append and to send, payload bytes and stored bytes per reading."""
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
            wire=wire,
        )

        async def drain() -> None:
            while await fwd.step():
                pass

        asyncio.run(drain())
        c2 = time.process_time()
        outbox.close()
    assert all(t.endswith(topics.SITE_SEGMENT + "/telemetry") == (wire == 2) for t, _ in sink.messages)
    ring = Keyring([TrustedKey("s1", provenance.public_bytes(key.public_key()))]) if key else None
    stored = stored_bytes(sink.messages, ring)
    return (c1 - c0) / n * 1e6, (c2 - c1) / n * 1e6, sink.bytes / n, stored / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readings", type=int, default=20_000)
    ap.add_argument("--per-message", type=int, default=10)
    ap.add_argument("--wire", type=int, choices=(1, 2), default=2)
    a = ap.parse_args()
    print(f"{a.readings} readings, {a.per_message} per message, schema {a.wire}; CPU µs per reading")
    print(f"{'':10} {'append':>8} {'send':>8} {'total':>8} {'wire B/reading':>15} {'stored B/reading':>17}")
    for signed in (False, True):
        ap_us, send_us, size, stored = run(a.readings, a.per_message, signed, a.wire)
        label = "signed" if signed else "unsigned"
        print(f"{label:10} {ap_us:8.1f} {send_us:8.1f} {ap_us + send_us:8.1f} {size:15.0f} {stored:17.0f}")


if __name__ == "__main__":
    main()
