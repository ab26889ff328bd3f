"""The shipped production broker config (``templates/epcwatch.conf``), localised for a
lab, a test or the chaos run: same settings, different paths and ports.

Tests start brokers from the real file through :func:`localise`, so a change to the shipped
config is what the tests exercise; a setting the lab needs to replace but cannot find fails
loudly instead of leaving a production path in a test broker.
"""

from __future__ import annotations

import getpass
from importlib import resources
from pathlib import Path

from epcwatch.broker.errors import BrokerError

#: settings whose value is a path or the listener, replaced by :func:`localise`
PATH_KEYS = ("cafile", "certfile", "keyfile", "password_file", "acl_file", "persistence_location")


class BrokerConfigError(BrokerError, ValueError):
    """The shipped config does not have a setting the localisation must replace."""


def shipped_template(name: str) -> str:
    """A file shipped in the package's ``templates/`` (``epcwatch.conf``, ``acl.example``)."""
    return (resources.files("epcwatch.broker") / "templates" / name).read_text(encoding="utf-8")


def shipped_config() -> str:
    """The production Mosquitto config as shipped (also at ``deploy/mosquitto/epcwatch.conf``)."""
    return shipped_template("epcwatch.conf")


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
