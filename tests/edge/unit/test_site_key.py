"""The signing agent's key through the process's libcrypto: the same public key and the same
(deterministic, RFC 8032) signatures as ``cryptography``, and ``cryptography`` never loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epcwatch import provenance
from epcwatch.broker.signing import create_site_key, public_key_of
from epcwatch.edge import site_key
from epcwatch.edge.site_key import OpenSslSigner, SiteKeyError, load_signer


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Ed25519PrivateKey, OpenSslSigner]:
    path = tmp_path_factory.mktemp("key") / "site.key"
    reference = create_site_key(path)
    signer = load_signer(path)
    assert isinstance(signer, OpenSslSigner)  # this machine's libcrypto signs Ed25519
    return reference, signer


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_signatures_are_byte_for_byte_those_of_cryptography(
    keys: tuple[Ed25519PrivateKey, OpenSslSigner], data: bytes
) -> None:
    reference, signer = keys
    assert signer.sign(data) == reference.sign(data)


def test_the_public_key_and_key_id_match(keys: tuple[Ed25519PrivateKey, OpenSslSigner]) -> None:
    reference, signer = keys
    assert signer.public_key() == public_key_of(reference)
    assert provenance.key_id(signer.public_key()) == provenance.key_id(reference.public_key())
    sr = provenance.SignedRange("s1", "m1", 0, 1, provenance.GENESIS, (bytes(32), bytes(range(32))))
    assert provenance.verify(reference.public_key(), provenance.sign(signer, sr), sr)


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    create_site_key(path)
    path.chmod(0o644)
    with pytest.raises(SiteKeyError, match="chmod 600"):
        load_signer(path)


def test_without_libcrypto_it_falls_back_to_cryptography(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "site.key"
    reference = create_site_key(path)
    monkeypatch.setattr(site_key, "_libcrypto", lambda: None)
    key = load_signer(path)
    assert isinstance(key, Ed25519PrivateKey) and key.sign(b"x") == reference.sign(b"x")


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n",  # truncated
        b"-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    ],
)
def test_only_an_unencrypted_ed25519_pkcs8_pem_gives_a_seed(pem: bytes) -> None:
    assert site_key.seed_of(pem) is None


def test_a_signing_agent_never_loads_cryptography(tmp_path: Path) -> None:
    path = tmp_path / "site.key"
    create_site_key(path)
    code = (
        "import sys; import epcwatch.edge.__main__, epcwatch.edge.agent; "
        "from epcwatch.edge.site_key import load_signer; from pathlib import Path; "
        f"s = load_signer(Path({str(path)!r})); assert len(s.sign(b'x')) == 64; "
        "print(type(s).__name__, 'cryptography' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["OpenSslSigner", "False"]
