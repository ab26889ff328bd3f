"""MQTT credentials: generate a password, store its hash in a Mosquitto password file, write
the ACL block, and hand the secret over exactly once.

The hash is written by Mosquitto's own ``mosquitto_passwd`` (Debian package ``mosquitto``),
so the file format always matches the broker that reads it. The password is fed through the
tool's standard input (it asks twice), never through ``-b`` on the command line: a process's
arguments are readable by every local user in ``/proc/PID/cmdline`` and ``ps``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from epcwatch.broker import acl as mqtt_acl
from epcwatch.broker.errors import BrokerError

#: 32 bytes from the OS CSPRNG, URL-safe base64: 43 characters, 256 bits
PASSWORD_BYTES = 32


class CredentialError(BrokerError):
    """A credential that cannot be created or stored; the message never contains the secret."""


def generate_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _mosquitto_passwd() -> str:
    path = shutil.which("mosquitto_passwd") or (
        "/usr/bin/mosquitto_passwd" if os.access("/usr/bin/mosquitto_passwd", os.X_OK) else None
    )
    if path is None:
        raise CredentialError(
            "mosquitto_passwd not found: install the Debian package 'mosquitto' (apt-get install mosquitto)"
        )
    return path


def _touch_private(path: Path) -> None:
    """Create ``path`` readable by its owner only, if it does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)


def set_password(passwd_file: Path, username: str, password: str) -> None:
    """Add ``username`` to a Mosquitto password file, or replace its password."""
    mqtt_acl.check_username(username)
    if "\n" in password or not password:
        raise CredentialError("a password must be one non-empty line")
    _touch_private(passwd_file)
    mode = passwd_file.stat().st_mode & 0o777
    proc = subprocess.run(
        [_mosquitto_passwd(), str(passwd_file), username],
        input=f"{password}\n{password}\n",
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode != 0:
        # the tool's own message names the file or the user, never echoes the password;
        # mask it all the same in case a future version does
        detail = (proc.stderr or proc.stdout).replace(password, "***").strip()
        raise CredentialError(f"mosquitto_passwd failed for {username} in {passwd_file}: {detail}")
    # mosquitto_passwd rewrites the file; keep it as private as it was
    os.chmod(passwd_file, mode)


def remove_user(passwd_file: Path, username: str) -> None:
    proc = subprocess.run(
        [_mosquitto_passwd(), "-D", str(passwd_file), username], capture_output=True, text=True, timeout=30
    )
    if proc.returncode != 0:
        raise CredentialError(f"mosquitto_passwd -D failed for {username}: {proc.stderr.strip()}")


def update_acl(acl_file: Path, block: mqtt_acl.AclBlock) -> None:
    """Add or replace ``block`` in ``acl_file`` (created with a header if missing)."""
    try:
        text = acl_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = mqtt_acl.HEADER + "\n"
    except OSError as exc:
        raise CredentialError(f"cannot read ACL file {acl_file}: {exc.strerror or exc}") from None
    try:
        new = mqtt_acl.upsert(text, block)
    except mqtt_acl.AclError as exc:
        raise CredentialError(f"{acl_file}: {exc}") from None
    tmp = acl_file.with_name(acl_file.name + ".tmp")
    acl_file.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, acl_file)


def write_secret_file(path: Path, secret: str) -> None:
    """Write ``secret`` to a new file readable by its owner only (0600), refusing to overwrite
    a file that exists with wider permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.stat().st_mode & 0o077:
        raise CredentialError(f"{path} exists and is readable by others; remove it or chmod 600 it first")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")


@dataclass(frozen=True)
class Issued:
    username: str
    password: str
    block: mqtt_acl.AclBlock


def issue(
    block: mqtt_acl.AclBlock, passwd_file: Path, acl_file: Path | None, password: str | None = None
) -> Issued:
    """Create or rotate one credential: password file entry plus (optionally) its ACL block."""
    pw = password or generate_password()
    set_password(passwd_file, block.username, pw)
    if acl_file is not None:
        update_acl(acl_file, block)
    return Issued(block.username, pw, block)
