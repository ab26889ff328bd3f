"""Where this machine's local servers are: the state directory of ``epcwatch services`` and the
ports it remembered there. Commands that default to "the local InfluxDB/broker" read this; the
supervisor that starts the servers (``epcwatch.devservices``) writes it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MQTT_PORT = 11883
DEFAULT_INFLUX_PORT = 18086
DEFAULT_DATABASE = "epcwatch"
HOST = "127.0.0.1"


def default_state_dir() -> Path:
    """``$EPCWATCH_STATE_DIR``, else ``$XDG_STATE_HOME/epcwatch`` (``~/.local/state/epcwatch``)."""
    env = os.environ.get("EPCWATCH_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "epcwatch"


@dataclass(frozen=True)
class LocalPorts:
    mqtt: int = DEFAULT_MQTT_PORT
    influx: int = DEFAULT_INFLUX_PORT

    @property
    def influx_url(self) -> str:
        return f"http://{HOST}:{self.influx}"


def _ports_file(state_dir: Path) -> Path:
    return state_dir / "services.json"


def load_ports(state_dir: Path | None = None) -> LocalPorts:
    """The ports ``services up`` last used in ``state_dir`` (the defaults if it never ran)."""
    try:
        saved = json.loads(_ports_file(state_dir or default_state_dir()).read_text())
        return LocalPorts(int(saved["mqtt_port"]), int(saved["influx_port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return LocalPorts()


def save_ports(state_dir: Path, ports: LocalPorts) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    _ports_file(state_dir).write_text(json.dumps({"mqtt_port": ports.mqtt, "influx_port": ports.influx}))
