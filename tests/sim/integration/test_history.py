"""Fast history: readings computed from the model, published over MQTT as telemetry."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from epcwatch.devservices.services import Mosquitto
from epcwatch.sim.history import history_batches, profile_points, publish
from epcwatch.sim.ledger import Counters, daily_totals
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import demo_complex
from epcwatch.sim.timegrid import local_midnight
from epcwatch.wire import TelemetryMessage

pytestmark = pytest.mark.integration

FIRST, LAST = dt.date(2024, 12, 31), dt.date(2025, 1, 1)  # across the retrofit date


class Collect:
    """A QoS 1 subscriber keeping every telemetry message it receives."""

    def __init__(self, broker: Mosquitto) -> None:
        self.messages: list[TelemetryMessage] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-history-test")
        self.client.on_connect = lambda c, *_: c.subscribe("epc/v1/+/+/telemetry", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            TelemetryMessage.model_validate_json(m.payload)
        )
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def wait(self, readings: int, timeout: float = 60) -> None:
        deadline = threading.Event()
        for _ in range(int(timeout * 10)):
            if sum(len(m.readings) for m in self.messages) >= readings:
                return
            deadline.wait(0.1)
        raise AssertionError(f"{sum(len(m.readings) for m in self.messages)} of {readings} readings arrived")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_history_messages_carry_exact_counters_and_profile_points(mosquitto: Mosquitto):
    model = ComplexModel(demo_complex())
    devices = [model.device(f"b1-{r}") for r in ("main", "chiller", "lc1")]
    devices[1:1] = model.spec.category_meters("b1")
    devices.append(model.device("weather"))
    names = profile_points(model, devices)
    sub = Collect(mosquitto)
    try:
        msgs, readings = publish(
            history_batches(model, FIRST, LAST, interval_s=900, point_names=names, devices=devices),
            "127.0.0.1",
            mosquitto.port,
        )
        assert readings == len(devices) * 2 * 96
        sub.wait(readings)
    finally:
        sub.close()
    assert len(sub.messages) == msgs

    by_device: dict[str, list] = {}
    for m in sub.messages:
        assert m.site == "civic-centre"
        by_device.setdefault(m.device, []).extend(m.readings)
        d = model.device(m.device)
        assert m.kind == d.kind and m.tags.profile == d.profile and m.tags.category == d.category
    for d in devices:
        rs = sorted(by_device[d.id], key=lambda r: r.ts)
        assert len(rs) == 2 * 96 and len({r.seq for r in rs}) == len(rs)
        assert all(b.ts - a.ts == 900_000 for a, b in itertools.pairwise(rs))
        assert set(rs[0].values) == names[d.id] - {"start_count", "max_demand_power"}

    # counters at the readings are the model's exact integrals: a day's readings span the day
    totals = daily_totals(model, FIRST, LAST)
    counters = Counters(model)
    for d in devices[:-1]:
        rs = {r.ts: r.values["energy_import"] for r in by_device[d.id]}
        t0 = local_midnight(FIRST, model.tz) * 1000
        assert rs[t0] == pytest.approx(counters.at(t0 / 1000)[(d.id, "energy_import")], rel=1e-12)
        # the second day's increment up to its last reading + the step left = the daily total
        t1 = local_midnight(LAST, model.tz) * 1000
        last_ts = max(rs)
        tail = counters.at(last_ts / 1000 + 900)[(d.id, "energy_import")] - rs[last_ts]
        assert rs[last_ts] - rs[t1] + tail == pytest.approx(totals.actual_kwh[d.id][1], rel=1e-9)
    # sub-metering identity on the published data: main = A + B + C + D, reading by reading
    for ts in sorted({r.ts for r in by_device["b1-main"]})[1:]:
        inc = {
            dev: next(r.values["energy_import"] for r in by_device[dev] if r.ts == ts)
            - next(r.values["energy_import"] for r in by_device[dev] if r.ts == ts - 900_000)
            for dev in ["b1-main", *(d.id for d in model.spec.category_meters("b1"))]
        }
        assert inc["b1-main"] == pytest.approx(sum(v for k, v in inc.items() if k != "b1-main"), rel=1e-9)
