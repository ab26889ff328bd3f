"""The shipped production broker config (``deploy/mosquitto/epcwatch.conf``), localised for a
lab, a test or the chaos run: same settings, different paths and ports.

Tests start brokers from the real file through :func:`localise`, so a change to the shipped
config is what the tests exercise; a setting the lab needs to replace but cannot find fails
loudly instead of leaving a production path in a test broker.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from epcwatch.services import Mosquitto

#: settings whose value is a path or the listener, replaced by :func:`localise`
PATH_KEYS = ("cafile", "certfile", "keyfile", "password_file", "acl_file", "persistence_location")


class BrokerConfigError(ValueError):
    """The shipped config does not have a setting the localisation must replace."""


def shipped_config_path() -> Path:
    """``deploy/mosquitto/epcwatch.conf`` of the source tree (installed editable)."""
    # resolve a module file: an editable install is a tree of links into the source tree
    here = Path(str(resources.files("epcwatch") / "__init__.py")).resolve()
    for base in here.parents:
        p = base / "deploy" / "mosquitto" / "epcwatch.conf"
        if p.is_file():
            return p
    raise BrokerConfigError("deploy/mosquitto/epcwatch.conf not found beside the epcwatch package")


def shipped_config() -> str:
    return shipped_config_path().read_text(encoding="utf-8")


def localise(
    template: str,
    *,
    tls_port: int,
    paths: dict[str, Path],
    host: str = "127.0.0.1",
    user: str | None = None,
    log_dest: str = "stdout",
    overrides: dict[str, str] | None = None,
    plain_port: int | None = None,
) -> str:
    """Rewrite ``template`` for a local broker.

    - the TLS ``listener 8883`` becomes ``listener {tls_port} {host}`` (loopback only);
    - every key in :data:`PATH_KEYS` takes its value from ``paths`` (all are required);
    - ``log_dest`` goes to stdout (the service captures it), ``user`` is the current user so
      the broker can read the 0600 key and password files it was given;
    - ``overrides`` replace other settings' values (e.g. a shorter ``autosave_interval``);
    - ``plain_port`` adds a second, non-TLS loopback listener with the same password file and
      ACL, for clients that cannot do TLS in a lab. Never in production.
    """
    missing = [k for k in PATH_KEYS if k not in paths]
    if missing:
        raise BrokerConfigError(f"paths needed for {', '.join(missing)}")
    pending = dict(overrides or {})
    seen: set[str] = set()
    out = [f"# localised from deploy/mosquitto/epcwatch.conf by epcwatch; user {user or getpass.getuser()}"]
    out.append(f"user {user or getpass.getuser()}")
    for raw in template.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            out.append(raw)
            continue
        key, _, value = line.partition(" ")
        if key == "user":
            continue
        if key == "listener":
            if value.strip() != "8883":
                raise BrokerConfigError(f"unexpected listener {value!r}; the shipped config listens on 8883")
            out.append(f"listener {tls_port} {host}")
        elif key in PATH_KEYS:
            p = str(paths[key])
            if key == "persistence_location" and not p.endswith("/"):
                p += "/"
            out.append(f"{key} {p}")
        elif key == "log_dest":
            if "log_dest" not in seen:
                out.append(f"log_dest {log_dest}")
        elif key in pending:
            out.append(f"{key} {pending.pop(key)}")
        else:
            out.append(raw)
        seen.add(key)
    absent = [k for k in ("listener", *PATH_KEYS) if k not in seen]
    if absent:
        raise BrokerConfigError(f"the shipped config has no {', '.join(absent)} setting")
    if pending:
        raise BrokerConfigError(f"cannot override {', '.join(pending)}: not in the shipped config")
    if plain_port is not None:
        out += [
            "",
            "# lab only: plain MQTT on loopback, same credentials and ACL",
            f"listener {plain_port} {host}",
            "protocol mqtt",
            "allow_anonymous false",
            f"password_file {paths['password_file']}",
            f"acl_file {paths['acl_file']}",
        ]
    return "\n".join(out) + "\n"


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
        from epcwatch.services import port_open

        return port_open(self.host, self.port) and (
            self.plain_port is None or port_open(self.host, self.plain_port)
        )

    def reload(self) -> None:
        """SIGHUP: re-read password file and ACL (new credentials) without dropping sessions."""
        import os
        import signal

        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
