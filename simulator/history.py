"""Fast history: a period's readings computed straight from the model, without Modbus polling,
published as telemetry messages so that the rest of the pipeline (Mosquitto -> collector ->
InfluxDB -> rollups, dashboards, M&V) treats them exactly like an edge agent's.

What it bypasses: the Modbus wire, register encoding/decoding and the edge agent (poller,
outbox). Values therefore carry the model's full precision rather than a register's resolution;
each reading holds exactly the measurements of the device's profile, tagged as the edge would tag
them, with ``seq`` = the reading's epoch second (monotonic per device). Signed history (a
:class:`HistorySigner` with the site's key) is what a signing edge agent would have sent instead:
per device consecutive seqs from 0, each reading chained and each message signed
(docs/provenance.md), so that a live agent can continue the chains where the history ends.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import orjson

from epcwatch import provenance, topics
from epcwatch.measurements import VOCABULARY, FieldType, Kind
from epcwatch.sim.errors import SimError
from epcwatch.sim.ledger import Counters
from epcwatch.sim.model import ComplexModel
from epcwatch.sim.spec import Device
from epcwatch.sim.values import device_values
from epcwatch.wire import TelemetryMessage

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

#: gauges are rounded (a meter's display precision); counters keep every digit
GAUGE_DECIMALS = 3


@dataclass
class HistorySigner:
    """Signs fast history as a signing edge agent would: per device, consecutive seqs, each reading
    chained, one Ed25519 signature per message (over its chain head and digests). ``heads`` holds
    each device's last seq and chain head; after the history it is where a live agent continues
    (:meth:`epcwatch.edge.outbox.Outbox.continue_chains`)."""

    key: Ed25519PrivateKey
    heads: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    #: the key's id, written into every proof (derived once)
    kid: str = field(init=False)

    def __post_init__(self) -> None:
        self.kid = provenance.key_id(self.key.public_key())

    def proof(
        self, site: str, device: str, layout: provenance.FixedLayout, readings: list[dict[str, Any]]
    ) -> dict[str, str]:
        """Number ``readings`` (one device's, in time order) on from the device's head, chain
        them and return the message's ``proof`` object."""
        import base64

        last, prev = self.heads.get(device, (-1, provenance.GENESIS))
        for i, r in enumerate(readings):
            r["seq"] = last + 1 + i
        values = [[r["values"][n] for n in layout.names] for r in readings]
        digests = layout.chain([r["seq"] for r in readings], [r["ts"] for r in readings], values, prev)
        sr = provenance.SignedRange(site, device, last + 1, last + len(readings), prev, tuple(digests))
        self.heads[device] = (sr.last_seq, sr.head)
        return {
            "kid": self.kid,
            "first_prev": base64.b64encode(prev).decode(),
            "sig": base64.b64encode(provenance.sign(self.key, sr)).decode(),
        }


@dataclass(frozen=True)
class Batch:
    topic: str
    payload: bytes
    readings: int
    device: str


def device_tags(d: Device) -> dict[str, str]:
    tags = {
        "building": d.building,
        "floor": d.floor,
        "category": d.category,
        "tenant": d.tenant,
        "profile": d.profile,
        "item_code": d.item_code,
    }
    return {k: v for k, v in tags.items() if v is not None}


Quantizer = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


def register_quantizer(type_: str, scale: float) -> Quantizer:
    """The value an edge agent decodes from a counter register of ``type_`` scaled by ``scale``:
    float32 rounding reported as its shortest decimal, or a whole number of ``scale`` steps
    (round half even) divided exactly. History rounded like this never steps back where it meets
    live readings of the same counter."""
    exponent = (
        -round(math.log10(scale))
        if scale > 0 and math.isclose(10 ** round(math.log10(scale)), scale)
        else None
    )

    def unscale(raw: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if exponent is not None and exponent > 0:
            return raw / 10.0**exponent  # exact division: the float nearest raw x 10^-n
        return raw * scale

    if type_ == "float32":
        return lambda a: unscale(np.asarray(a / scale).astype(np.float32).astype(str).astype(np.float64))
    if type_ == "float64":
        return lambda a: a
    return lambda a: unscale(np.round(a / scale))


def _columns(
    values: dict[str, Any], names: set[str], quantizers: dict[str, Quantizer] | None = None
) -> list[tuple[str, list[Any]]]:
    """Per-measurement value lists typed as the vocabulary says, for the profile's points."""
    out: list[tuple[str, list[Any]]] = []
    for name in sorted(names & set(values)):
        a = np.asarray(values[name])
        if quantizers is not None and name in quantizers:
            a = quantizers[name](a.astype(np.float64))
        ft = VOCABULARY[name].field_type
        if ft is FieldType.BOOL:
            out.append((name, [bool(x) for x in a.tolist()]))
        elif ft is FieldType.INT:
            out.append((name, [round(x) for x in a.tolist()]))
        elif VOCABULARY[name].kind is Kind.COUNTER:
            out.append((name, a.astype(np.float64).tolist()))  # full precision: energy must add up
        else:
            out.append((name, np.round(a.astype(np.float64), GAUGE_DECIMALS).tolist()))
    return out


def history_batches(
    model: ComplexModel,
    first: dt.date,
    last: dt.date,
    *,
    interval_s: int = 900,
    point_names: dict[str, set[str]] | None = None,
    quantizers: dict[str, dict[str, Quantizer]] | None = None,
    devices: list[Device] | None = None,
    readings_per_message: int = 96,
    retrofits: bool = True,
    signer: HistorySigner | None = None,
) -> Iterator[Batch]:
    """Telemetry messages for the local days ``first``..``last``, a reading every ``interval_s``.

    ``point_names`` maps a device id to the measurements its profile exposes (all the model's
    values if absent). ``quantizers`` (device -> measurement -> function) give counters the
    resolution of the device's registers, so that history and live readings of the same counter
    are rounded alike and never step back where the two paths meet. With ``signer`` the history
    is signed (see :class:`HistorySigner`).
    """
    chosen = devices if devices is not None else model.devices
    counters = Counters(model, retrofits)
    checked: set[str] = set()
    layouts: dict[str, provenance.FixedLayout] = {}
    for ts, loads, counter_values in counters.series(first, last, interval_s):
        vals = device_values(model, loads, counter_values, chosen)
        ts_ms = (ts * 1000).tolist()
        for d in chosen:
            names = point_names.get(d.id, set(vals[d.id])) if point_names is not None else set(vals[d.id])
            cols = _columns(vals[d.id], names, quantizers.get(d.id) if quantizers is not None else None)
            topic = topics.telemetry(model.spec.site, d.id)
            tags = device_tags(d)
            for s in range(0, len(ts_ms), readings_per_message):
                readings = [
                    {
                        "seq": ts_ms[i] // 1000,
                        "ts": ts_ms[i],
                        "values": {name: col[i] for name, col in cols},
                        "quality": "good",
                    }
                    for i in range(s, min(s + readings_per_message, len(ts_ms)))
                ]
                doc: dict[str, Any] = {
                    "v": 1,
                    "site": model.spec.site,
                    "device": d.id,
                    "kind": d.kind,
                    "tags": tags,
                    "readings": readings,
                }
                if signer is not None:
                    layout = layouts.get(d.id)
                    if layout is None:
                        layout = layouts[d.id] = provenance.FixedLayout(
                            model.spec.site, d.id, readings[0]["values"]
                        )
                    doc["proof"] = signer.proof(model.spec.site, d.id, layout, readings)
                if d.id not in checked:  # the contract, checked once per device (the rest is built alike)
                    TelemetryMessage.model_validate(doc)
                    checked.add(d.id)
                yield Batch(topic, orjson.dumps(doc), len(readings), d.id)


class PublishError(SimError):
    """The broker could not be reached or did not acknowledge the history."""


def publish(
    batches: Iterator[Batch],
    host: str,
    port: int,
    *,
    client_id: str = "epcwatch-sim-history",
    max_inflight: int = 200,
    on_batch: Callable[[Batch], None] | None = None,
    timeout: float = 120.0,
) -> tuple[int, int]:
    """Publish every batch with QoS 1 and wait for all PUBACKs; returns (messages, readings)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(max_inflight)
    window = threading.Semaphore(max_inflight)
    # counts, not message ids: paho may run on_publish before publish() returns the id, and it
    # holds its own lock while calling back, so nothing here may hold a lock across publish()
    done = threading.Condition()
    acks = [0]
    failed: list[str] = []

    def on_publish(_c: Any, _u: Any, _mid: int, rc: Any, _p: Any) -> None:
        if getattr(rc, "is_failure", False):
            failed.append(str(rc))
        with done:
            acks[0] += 1
            done.notify_all()
        window.release()

    client.on_publish = on_publish
    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise PublishError(f"MQTT broker {host}:{port} unreachable: {exc}") from None
    client.loop_start()
    messages = readings = 0
    try:
        for b in batches:
            if not window.acquire(timeout=timeout):
                raise PublishError(f"broker acknowledged nothing for {timeout:.0f} s")
            info = client.publish(b.topic, b.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise PublishError(f"publish failed: {mqtt.error_string(info.rc)}")
            messages += 1
            readings += b.readings
            if on_batch is not None:
                on_batch(b)
        with done:
            if not done.wait_for(lambda: acks[0] >= messages, timeout):
                raise PublishError(f"{messages - acks[0]} messages not acknowledged within {timeout:.0f} s")
        if failed:
            raise PublishError(f"broker refused {len(failed)} messages: {failed[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
    return messages, readings


def bcd_quantizer(decimals: int, scale: float, modulus: int) -> Quantizer:
    """The value an edge agent decodes from a DL/T 645 counter of ``decimals`` BCD decimals and
    ``scale``, as the simulated meter encodes it (``epcwatch.sim.dlt645.encode_reading``): a whole
    number of steps, round half even, wrapping at ``modulus`` steps like the meter's register."""
    den = 10**decimals
    if float(scale).is_integer():
        return lambda a: np.mod(np.round(a / scale * den), modulus) * int(scale) / den
    return lambda a: np.mod(np.round(a / scale * den), modulus) / den * scale


def profile_quantizers(model: Any, devices: Any = None) -> dict[str, dict[str, Any]]:
    """For each device, its counters' register resolution (see history.register_quantizer and
    bcd_quantizer); Modbus and DL/T 645 profiles alike."""
    from epcwatch.profiles.dlt645_profile import Dlt645Profile, load_any_profile

    out: dict[str, dict[str, Any]] = {}
    for d in devices if devices is not None else model.devices:
        profile = load_any_profile(d.profile)
        if isinstance(profile, Dlt645Profile):
            out[d.id] = {
                p.name: bcd_quantizer(p.bcd.decimals, p.scale, p.bcd.max_magnitude + 1)
                for p in profile.points
                if VOCABULARY[p.name].kind is Kind.COUNTER
            }
            continue
        out[d.id] = {
            p.name: register_quantizer(p.type, p.scale)
            for p in profile.points
            if VOCABULARY[p.name].kind is Kind.COUNTER and p.scale_factor is None
        }
    return out


def profile_points(model: Any, devices: Any = None) -> dict[str, set[str]]:
    """The measurements each device's profile exposes (Modbus or DL/T 645)."""
    from epcwatch.profiles.dlt645_profile import load_any_profile

    out: dict[str, set[str]] = {}
    cache: dict[str, set[str]] = {}
    for d in devices if devices is not None else model.devices:
        if d.profile not in cache:
            cache[d.profile] = {p.name for p in load_any_profile(d.profile).points}
        out[d.id] = cache[d.profile]
    return out
