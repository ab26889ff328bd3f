"""The keyring file: the public keys a collector or a verifier trusts, per site, with validity
periods and revocation. YAML, validated with file:line:field errors::

    keys:
      - site: civic-centre
        public_key: A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHd2GZBJVMbg=   # raw Ed25519, base64
        valid_from: 2025-01-01T00:00:00+08:00
        valid_until: 2026-01-01T00:00:00+08:00    # rotated out: what it signed before still verifies
        revoked: false                            # revoked: nothing it signed verifies
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from epcwatch.config import load_yaml_model
from epcwatch.provenance import Keyring, TrustedKey, key_id
from epcwatch.wire import Id


class KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: Id
    public_key: str = Field(description="raw 32-byte Ed25519 public key, base64")
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None
    revoked: bool = False
    note: str | None = None

    @field_validator("public_key")
    @classmethod
    def _raw_key(cls, v: str) -> str:
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not base64") from None
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
        return v

    @field_validator("valid_from", "valid_until")
    @classmethod
    def _aware(cls, v: dt.datetime | None) -> dt.datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("give a UTC offset, e.g. 2025-01-01T00:00:00+08:00")
        return v


class KeyringFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[KeyEntry] = []


def _ms(t: dt.datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


def to_keyring(doc: KeyringFile) -> Keyring:
    return Keyring(
        [
            TrustedKey(
                e.site,
                base64.b64decode(e.public_key),
                valid_from=_ms(e.valid_from) or 0,
                valid_until=_ms(e.valid_until),
                revoked=e.revoked,
            )
            for e in doc.keys
        ]
    )


def load_keyring(path: Path) -> Keyring:
    """Read a keyring file; raises :class:`epcwatch.config.ConfigError` naming file:line:field."""
    return to_keyring(load_yaml_model(path, KeyringFile))


def add_key(path: Path, site: str, public: bytes, valid_from: dt.datetime) -> str:
    """Append a site's key to the keyring file (created if missing), ending the validity of the
    site's current keys at ``valid_from`` (a rotation). Returns the new key id."""
    doc = load_yaml_model(path, KeyringFile) if path.exists() else KeyringFile()
    kid = key_id(public)
    for e in doc.keys:
        if e.site == site and e.valid_until is None and not e.revoked:
            e.valid_until = valid_from
    doc.keys.append(
        KeyEntry(
            site=site,
            public_key=base64.b64encode(public).decode(),
            valid_from=valid_from,
            note=f"key id {kid}",
        )
    )
    path.write_text(
        yaml.safe_dump(doc.model_dump(mode="json", exclude_none=True), sort_keys=False, allow_unicode=True)
    )
    return kid
