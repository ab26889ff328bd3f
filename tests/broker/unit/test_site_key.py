"""``epcwatch security site-key``: a 0600 Ed25519 key, and a keyring that rotates the old key out."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epcwatch import provenance as p
from epcwatch.broker.signing import SigningKeyError, load_site_key
from epcwatch.config import ConfigError
from epcwatch.verify.keyring import load_keyring
from tests.support import EPCWATCH


def _site_key(tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EPCWATCH, "security", "site-key", "civic-centre", "--out", str(tmp / "site.pem"), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_key_file_is_private_and_signs_what_the_keyring_trusts(tmp_path: Path) -> None:
    ring = tmp_path / "keyring.yaml"
    first = _site_key(tmp_path, "--keyring", str(ring))
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "site.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = load_site_key(key_file)
    assert base64.b64decode(first.stdout.strip()) == p.public_bytes(key.public_key())
    kid = p.key_id(key.public_key())
    assert kid in first.stderr
    assert load_keyring(ring).check(kid, "civic-centre", 2**62)[0] == p.KeyStatus.OK

    # no silent overwrite; --force rotates: the old key stays valid for what it signed before
    again = _site_key(tmp_path)
    assert again.returncode != 0 and "--force" in again.stderr
    rotated = _site_key(tmp_path, "--force", "--keyring", str(ring))
    assert rotated.returncode == 0, rotated.stderr
    keys = load_keyring(ring)
    old = keys.find(kid)
    assert old is not None and old.valid_until is not None
    assert keys.check(kid, "civic-centre", old.valid_until - 1)[0] == p.KeyStatus.OK
    assert keys.check(kid, "civic-centre", old.valid_until)[0] == p.KeyStatus.OUT_OF_VALIDITY
    new_kid = p.key_id(load_site_key(key_file).public_key())
    assert keys.check(new_kid, "civic-centre", old.valid_until)[0] == p.KeyStatus.OK


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    assert _site_key(tmp_path).returncode == 0
    (tmp_path / "site.pem").chmod(0o644)
    with pytest.raises(SigningKeyError, match="chmod 600"):
        load_site_key(tmp_path / "site.pem")


def test_keyring_errors_name_file_line_and_field(tmp_path: Path) -> None:
    good = base64.b64encode(p.public_bytes(Ed25519PrivateKey.generate().public_key())).decode()
    ring = tmp_path / "keyring.yaml"
    ring.write_text(
        "keys:\n"
        f"  - site: civic-centre\n    public_key: {good}\n"
        "  - site: Bad Site\n    public_key: c2hvcnQ=\n    valid_from: 2025-01-01T00:00:00\n"
    )
    with pytest.raises(ConfigError) as err:
        load_keyring(ring)
    text = str(err.value)
    assert "keyring.yaml" in text
    assert "keys[1].site" in text and "keys[1].public_key" in text and "keys[1].valid_from" in text
    assert "keyring.yaml:4: keys[1].site" in text and "keyring.yaml:6: keys[1].valid_from" in text
