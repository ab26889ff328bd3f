"""Local services: Mosquitto and InfluxDB (and VictoriaMetrics for the v2 writer tests)
started as child processes with configs generated into a state directory.

Used by ``epcwatch services up|down|status``, by the demo and by the test fixtures, which
start their own instances on free ports in temp dirs. Every service listens on loopback only.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from epcwatch.broker.config import localise, shipped_config
from epcwatch.devservices.errors import ChildExitedError, ServiceError
from epcwatch.devservices.process import ChildProcess, alive, terminate
from epcwatch.local import DEFAULT_DATABASE, DEFAULT_INFLUX_PORT, DEFAULT_MQTT_PORT, default_state_dir

__all__ = [
    "ChildExitedError",
    "ChildProcess",
    "Influxd",
    "Mosquitto",
    "SecureMosquitto",
    "Service",
    "ServiceError",
    "VictoriaMetrics",
    "free_port",
    "influx_query",
    "local_services",
    "mqtt_ping",
    "port_open",
]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Service:
    """A server process owned by epcwatch: config in ``state_dir/name``, PID file beside it."""

    state_dir: Path
    port: int
    host: str = "127.0.0.1"
    name: str = "service"
    binary: str = ""
    package: str = ""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def dir(self) -> Path:
        return self.state_dir / self.name

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid"

    @property
    def log_file(self) -> Path:
        return self.dir / f"{self.name}.log"

    def binary_path(self) -> str:
        path = shutil.which(self.binary) or next(
            (p for p in (f"/usr/sbin/{self.binary}", f"/usr/bin/{self.binary}") if os.access(p, os.X_OK)),
            None,
        )
        if path is None:
            raise ServiceError(
                f"{self.binary} not found: install the Debian package '{self.package}' "
                f"(apt-get install {self.package}) or run scripts/install.sh"
            )
        return path

    # -- to be provided by subclasses -------------------------------------------------------
    def write_config(self) -> list[str]:
        """Write config files; return the argv to start the server."""
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def after_start(self) -> None:
        """Hook run once the service answers (create databases, …)."""

    # -- lifecycle ------------------------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid, self.proc) else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout: float = 60.0) -> None:
        if self.running():
            if not self.ready():
                raise ServiceError(
                    f"{self.name} runs (pid {self.pid()}) but does not answer on port {self.port}"
                )
            return
        if port_open(self.host, self.port):
            raise ServiceError(
                f"{self.name}: port {self.host}:{self.port} is already in use by another process"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.proc is not None:
            self.proc.poll()  # a previous run of ours that ended: its exit is recorded before it goes
        child = ChildProcess(self.name, self.write_config(), self.log_file).start()
        self.proc = child.popen
        assert self.proc is not None
        self.pid_file.write_text(f"{self.proc.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.proc.returncode}; last log lines:\n{self.tail_log()}"
                )
            if self.ready():
                self.after_start()
                return
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"{self.name} did not answer within {timeout:.0f} s; log:\n{self.tail_log()}")

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> bool:
        """Stop the process by PID; returns False if it was not running."""
        pid = self.pid()
        own = self.proc if self.proc is not None and self.proc.poll() is None else None
        if pid is None and own is None:
            return False
        if pid is not None:
            terminate(pid, timeout=timeout, sig=sig, popen=self.proc)
        if own is not None and own.poll() is None:  # our child, its pid file gone or rewritten
            terminate(own.pid, timeout=timeout, sig=sig, popen=own)
        with contextlib.suppress(OSError):
            self.pid_file.unlink()
        return True

    def kill(self) -> None:
        """SIGKILL, as a power cut or OOM kill would."""
        self.stop(timeout=5, sig=signal.SIGKILL)

    def tail_log(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@dataclass
class Mosquitto(Service):
    name: str = "mosquitto"
    binary: str = "mosquitto"
    package: str = "mosquitto"
    #: extra lines appended to the generated config (TLS listeners, ACLs, …)
    extra_config: str = ""
    allow_anonymous: bool = True
    #: the collector group's persistent session queues while collectors are away; sized so a
    #: site portfolio survives a long collector outage (see deploy/mosquitto/epcwatch.conf)
    max_queued_messages: int = 1_000_000
    autosave_interval: int = 10

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def write_config(self) -> list[str]:
        persist = self.dir / "data"
        persist.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            "\n".join(
                [
                    "# generated by epcwatch services",
                    f"user {getpass.getuser()}",
                    "per_listener_settings false",
                    f"listener {self.port} {self.host}",
                    f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
                    "persistence true",
                    f"persistence_location {persist}/",
                    f"autosave_interval {self.autosave_interval}",
                    f"max_queued_messages {self.max_queued_messages}",
                    "max_queued_bytes 0",
                    "max_inflight_messages 1000",
                    "max_packet_size 1048576",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "connection_messages true",
                    self.extra_config,
                    "",
                ]
            )
        )
        return [self.binary_path(), "-c", str(conf)]

    def ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        if self.extra_config or not self.allow_anonymous:
            return True  # authenticated listeners: an open port is the best we can check here
        return mqtt_ping(self.host, self.port)


def mqtt_ping(host: str, port: int, timeout: float = 3.0) -> bool:
    """A real MQTT CONNECT/CONNACK round trip."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv311)
    try:
        rc = client.connect(host, port, keepalive=5)
        if rc != 0:
            return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            client.loop(0.1)
            if client.is_connected():
                client.disconnect()
                return True
        return False
    except OSError:
        return False


@dataclass
class Influxd(Service):
    name: str = "influxdb"
    binary: str = "influxd"
    package: str = "influxdb"
    database: str = DEFAULT_DATABASE
    rpc_port: int = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def write_config(self) -> list[str]:
        if not self.rpc_port:
            self.rpc_port = free_port(self.host)
        d = self.dir
        for sub in ("meta", "data", "wal"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        conf = d / "influxdb.conf"
        conf.write_text(
            f"""# generated by epcwatch services
reporting-disabled = true
bind-address = "{self.host}:{self.rpc_port}"

[meta]
  dir = "{d / "meta"}"

[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false
  cache-snapshot-write-cold-duration = "1m"

[http]
  enabled = true
  bind-address = "{self.host}:{self.port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 67108864

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  enabled = false

[logging]
  level = "warn"
"""
        )
        return [self.binary_path(), "run", "-config", str(conf)]

    def ready(self) -> bool:
        from epcwatch.influx import InfluxClient

        return InfluxClient(self.url, timeout=1).ping()

    def after_start(self) -> None:
        influx_query(self.url, f'CREATE DATABASE "{self.database}"', method="POST")


def influx_query(
    url: str, q: str, db: str | None = None, method: str = "GET", epoch: str = "ms"
) -> dict[str, object]:
    """Run InfluxQL with :class:`epcwatch.influx.InfluxClient`; the ``{"results": …}`` document.

    ``method`` is accepted for old callers and ignored (the client always POSTs the form).
    Failures raise :class:`ServiceError`.
    """
    del method
    from epcwatch.influx import InfluxClient, InfluxError

    try:
        results = InfluxClient(url, db, timeout=60).query_results(q, epoch=epoch)
    except InfluxError as exc:
        raise ServiceError(str(exc)) from None
    return {"results": results}


@dataclass
class VictoriaMetrics(Service):
    """VictoriaMetrics single-node: a real implementation of InfluxDB's ``/api/v2/write``."""

    name: str = "victoria-metrics"
    binary: str = "victoria-metrics"
    package: str = "victoria-metrics"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def write_config(self) -> list[str]:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        return [
            self.binary_path(),
            f"-storageDataPath={self.dir / 'data'}",
            f"-httpListenAddr={self.host}:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-loggerLevel=ERROR",
        ]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False


def local_services(
    state_dir: Path | None = None, mqtt_port: int = DEFAULT_MQTT_PORT, influx_port: int = DEFAULT_INFLUX_PORT
) -> tuple[Mosquitto, Influxd]:
    sd = state_dir or default_state_dir()
    return Mosquitto(state_dir=sd, port=mqtt_port), Influxd(state_dir=sd, port=influx_port)


@dataclass
class SecureMosquitto(Mosquitto):
    """A Mosquitto started from the shipped production config, localised into ``state_dir``.

    ``port`` is the TLS port; ``plain_port`` (optional) an authenticated non-TLS loopback
    listener for lab clients. Certificates, password file and ACL are given by path.
    """

    name: str = "mosquitto-secure"
    cafile: Path = Path()
    certfile: Path = Path()
    keyfile: Path = Path()
    password_file: Path = Path()
    acl_file: Path = Path()
    plain_port: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)

    def write_config(self) -> list[str]:
        persist = self.dir / "data"
        persist.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            localise(
                shipped_config(),
                tls_port=self.port,
                host=self.host,
                plain_port=self.plain_port,
                overrides=self.overrides,
                paths={
                    "cafile": self.cafile,
                    "certfile": self.certfile,
                    "keyfile": self.keyfile,
                    "password_file": self.password_file,
                    "acl_file": self.acl_file,
                    "persistence_location": persist,
                },
            )
        )
        return [self.binary_path(), "-c", str(conf)]

    def ready(self) -> bool:
        return port_open(self.host, self.port) and (
            self.plain_port is None or port_open(self.host, self.plain_port)
        )

    def reload(self) -> None:
        """SIGHUP: re-read password file and ACL (new credentials) without dropping sessions."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
