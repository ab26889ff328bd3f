"""Helpers for the collector's integration tests: a collector as a subprocess, a publisher, a
dead-letter listener, and counting what InfluxDB stored per series."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from epcwatch.devservices.services import influx_query
from tests.support import EPCWATCH, wait_for

__all__ = ["EPCWATCH", "wait_for"]


def telemetry(site: str, device: str, seq: int, ts: int, readings: int = 1, **tags: str) -> bytes:
    return orjson.dumps(
        {
            "site": site,
            "device": device,
            "kind": "meter",
            "tags": tags,
            "readings": [
                {
                    "seq": seq + i,
                    "ts": ts + 1000 * i,
                    "values": {
                        "active_power": float(seq + i),
                        "energy_import": (seq + i) * 0.01,
                        "alarm_code": 0,
                    },
                }
                for i in range(readings)
            ],
        }
    )


class Publisher:
    """A paho QoS 1 publisher (what the edge agent does, minus the outbox)."""

    def __init__(self, port: int, client_id: str = "") -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, messages: Iterable[tuple[str, bytes]], wait: bool = True) -> int:
        infos = [self.client.publish(t, p, qos=1) for t, p in messages]
        if wait:
            for info in infos:
                info.wait_for_publish(60)
                assert info.is_published()
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class DeadLetters:
    """A persistent subscriber on a group's dead-letter topic."""

    def __init__(self, port: int, group: str) -> None:
        self.items: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"dl-{group}", protocol=mqtt.MQTTv311, clean_session=False
        )
        self.client.on_message = self._on_message
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(f"epc/deadletter/v1/{group}", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "dead-letter subscription not confirmed"

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.items.append(orjson.loads(msg.payload))

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Acks:
    """Listens to every site's end-to-end acknowledgements (``epc/v1/+/ack``) and collects
    the seqs they confirm per (site, device)."""

    def __init__(self, port: int) -> None:
        from epcwatch.wire import Ack

        self.acks: list[Ack] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe("epc/v1/+/ack", qos=1)
        self.client.on_message = lambda c, u, msg: self._add(Ack.model_validate_json(msg.payload))
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert subscribed.wait(10), "ack subscription not confirmed"

    def _add(self, ack: Any) -> None:
        with self._lock:
            self.acks.append(ack)

    def seqs(self) -> dict[tuple[str, str], set[int]]:
        out: dict[tuple[str, str], set[int]] = {}
        with self._lock:
            for a in self.acks:
                for d, ranges in a.devices.items():
                    for first, last in ranges:
                        out.setdefault((a.site, d), set()).update(range(first, last + 1))
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class CollectorProcess:
    """``epcwatch collector run`` in a subprocess (so that it can be SIGKILLed)."""

    def __init__(self, workdir: Path, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> CollectorProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            [EPCWATCH, "collector", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        # the SUBACK, not the CONNACK: a message published before the subscription exists is
        # delivered to nobody (this once cost the dead-letter test one message of 10,000)
        n = self.log().count("MQTT subscribed")
        assert wait_for(lambda: self.log().count("MQTT subscribed") > n, 30), self.log()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def collector_config(
    mqtt_port: int, influx_url: str, database: str, *, client_id: str, group: str, **over: Any
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "mqtt": {"port": mqtt_port, "client_id": client_id, "group": group, "reconnect_max_s": 2},
        "influx": {"url": influx_url, "database": database, "timeout_s": 10},
        "batch": {"max_points": 5000, "max_wait_s": 0.5},
        "retry": {"initial_s": 0.2, "max_s": 2},
        "health": {"interval_s": 1},
        "rollup": {"enabled": False},
    }
    for section, values in over.items():
        cfg.setdefault(section, {}).update(values)
    return cfg


@pytest.fixture
def collectors(tmp_path: Path) -> Iterator[Callable[..., CollectorProcess]]:
    started: list[CollectorProcess] = []

    def make(name: str, config: dict[str, Any]) -> CollectorProcess:
        c = CollectorProcess(tmp_path, name, config)
        started.append(c)
        return c

    yield make
    for c in started:
        c.stop()


class FreezableProxy:
    """A TCP proxy to a server that can be frozen: while frozen it forwards nothing, so a
    request in flight hangs as if the database stalled mid-write."""

    def __init__(self, upstream_port: int) -> None:
        import socket

        self.upstream_port = upstream_port
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: Any, dst: Any) -> None:
        src.settimeout(0.2)
        try:
            while not self._stop.is_set():
                if self.frozen.is_set():
                    time.sleep(0.05)
                    continue
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def counts_per_device(
    url: str, db: str, measurement: str = "meter", field: str = "active_power"
) -> dict[str, int]:
    """Stored points per device series (the same series + timestamp counts once)."""
    try:
        doc = influx_query(url, f'SELECT count("{field}") FROM "{measurement}" GROUP BY "device"', db=db)
    except Exception:
        return {}
    out = {}
    for res in doc.get("results", []):  # type: ignore[union-attr]
        for s in res.get("series", []):
            out[s["tags"]["device"]] = int(s["values"][0][1])
    return out


def total(url: str, db: str, measurement: str = "meter") -> int:
    return sum(counts_per_device(url, db, measurement).values())
