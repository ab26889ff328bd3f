"""A site's Ed25519 signing key: created once per edge site, stored 0600 as PKCS#8 PEM."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epcwatch.errors import EpcwatchError
from epcwatch.provenance import public_bytes


class SigningKeyError(EpcwatchError):
    """A signing key that cannot be created or read."""


def create_site_key(path: Path, *, overwrite: bool = False) -> Ed25519PrivateKey:
    """Write a new key to ``path`` (mode 0600, never world- or group-readable, even briefly)."""
    if path.exists() and not overwrite:
        raise SigningKeyError(f"{path} exists; pass --force to replace it (a rotation)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise SigningKeyError(f"cannot write {path}: {exc.strerror or exc}") from None
    return key


def load_site_key(path: Path) -> Ed25519PrivateKey:
    try:
        if path.stat().st_mode & 0o077:
            raise SigningKeyError(f"{path} is readable by others; chmod 600 it")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise SigningKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key")
    return key


def public_key_of(key: Ed25519PrivateKey) -> bytes:
    return public_bytes(key.public_key())
