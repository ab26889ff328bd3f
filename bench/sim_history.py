"""How fast does the simulator produce fast history, compared with the broker taking it?

Generates 60 days of every device's readings every 15 minutes (the demo's fast history) and
times it; then publishes the very same payloads, prebuilt, to a private Mosquitto on a free port
(QoS 1, waiting for every PUBACK) — the limit the history cannot beat, measured in the same run —
and finally times generation and publishing together as ``epcwatch sim history`` does. Ratios:
generate+publish vs publish alone (1.0 = the simulator costs nothing), and the projected time
for the demo's two years.

    .venv/bin/python bench/sim_history.py
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from epcwatch.devservices.services import Mosquitto, free_port
from epcwatch.sim.history import history_batches, profile_points, publish
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import demo_complex

FIRST = dt.date(2025, 3, 1)
DAYS = 60


def main() -> None:
    model = ComplexModel(demo_complex())
    names = profile_points(model)
    last = FIRST + dt.timedelta(days=DAYS - 1)

    t0 = time.perf_counter()
    batches = list(history_batches(model, FIRST, last, interval_s=900, point_names=names))
    gen_s = time.perf_counter() - t0
    readings = sum(b.readings for b in batches)
    mbytes = sum(len(b.payload) for b in batches) / 1e6

    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(state_dir=Path(tmp), port=free_port())
        broker.start()
        try:
            t0 = time.perf_counter()
            publish(iter(batches), "127.0.0.1", broker.port, client_id="bench-prebuilt")
            pub_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            publish(
                history_batches(model, FIRST, last, interval_s=900, point_names=names),
                "127.0.0.1",
                broker.port,
                client_id="bench-live",
            )
            both_s = time.perf_counter() - t0
        finally:
            broker.stop()

    print(
        f"{DAYS} days x {len(model.devices)} devices every 15 min: {readings:,} readings, "
        f"{len(batches):,} messages, {mbytes:.0f} MB"
    )
    print(f"generate only          {gen_s:6.1f} s  {readings / gen_s:10,.0f} readings/s")
    print(f"publish prebuilt       {pub_s:6.1f} s  {readings / pub_s:10,.0f} readings/s  (the limit)")
    print(f"generate + publish     {both_s:6.1f} s  {readings / both_s:10,.0f} readings/s")
    print(f"ratio generate+publish / publish alone: {both_s / pub_s:.2f}")
    print(f"projected two years (731 days): {both_s * 731 / DAYS:.0f} s")


if __name__ == "__main__":
    main()
