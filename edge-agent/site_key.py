"""The site's Ed25519 signing key for a signing agent, without loading ``cryptography``.

A signing agent signs with the OpenSSL ``libcrypto`` that Python's ``ssl`` module has already
loaded (the MQTT client imports ``ssl``), through four of its functions (``ctypes``). Importing
``cryptography`` instead would map its own Rust extension with a statically linked OpenSSL:
about 7 MiB more resident memory in a process that otherwise needs ≈ 46 MiB at 100 devices
(docs/edge.md "CPU and memory"). Ed25519 signatures are deterministic (RFC 8032), so both give
the same bytes; a property test checks it against ``cryptography``.

The key file is what ``epcwatch security site-key`` writes (``epcwatch.broker.signing``): an
unencrypted PKCS#8 PEM of 48 bytes. Anything else, or a ``libcrypto`` without Ed25519, falls
back to ``cryptography``'s loader, which also gives the precise error for a bad file.
"""

from __future__ import annotations

import base64
import ctypes
import os
import re
from pathlib import Path
from typing import Any, Final

from epcwatch import provenance
from epcwatch.edge.errors import EdgeError

#: DER of an Ed25519 PKCS#8 v1 private key up to its 32-byte seed (RFC 8410)
_PKCS8_PREFIX: Final = bytes.fromhex("302e020100300506032b657004220420")
_PEM = re.compile(rb"-----BEGIN PRIVATE KEY-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END PRIVATE KEY-----\s*$")
_NID_ED25519: Final = 1087  # EVP_PKEY_ED25519


class SiteKeyError(EdgeError):
    """A signing key that cannot be read."""


def _libcrypto() -> Any | None:
    """The ``libcrypto`` already mapped into this process (by ``ssl``), set up for Ed25519."""
    import ssl  # noqa: F401 - maps libcrypto (the MQTT client imports it anyway)

    try:
        with open("/proc/self/maps") as f:
            path = next((ln.split()[-1] for ln in f if re.search(r"/libcrypto\.so[.\d]*$", ln.strip())), None)
    except OSError:
        return None
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        lib.EVP_PKEY_new_raw_private_key.restype = ctypes.c_void_p
        lib.EVP_PKEY_new_raw_private_key.argtypes = [
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
        lib.EVP_PKEY_get_raw_public_key.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_size_t),
        ]
        lib.EVP_PKEY_free.argtypes = [ctypes.c_void_p]
        lib.EVP_MD_CTX_new.restype = ctypes.c_void_p
        lib.EVP_MD_CTX_free.argtypes = [ctypes.c_void_p]
        lib.EVP_DigestSignInit.argtypes = [ctypes.c_void_p] * 5
        lib.EVP_DigestSign.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_size_t),
            ctypes.c_char_p,
            ctypes.c_size_t,
        ]
    except (OSError, AttributeError):  # no such library, or one older than OpenSSL 1.1.1
        return None
    return lib


class OpenSslSigner:
    """An Ed25519 private key held by ``libcrypto``: ``sign`` and ``public_key`` (raw 32 bytes),
    what the forwarder needs of a key (:class:`epcwatch.provenance.Signer`)."""

    def __init__(self, lib: Any, seed: bytes) -> None:
        if len(seed) != 32:
            raise SiteKeyError("an Ed25519 seed is 32 bytes")
        self._lib = lib
        self._pkey = lib.EVP_PKEY_new_raw_private_key(_NID_ED25519, None, seed, 32)
        if not self._pkey:
            raise SiteKeyError("libcrypto refused the Ed25519 key")
        out = ctypes.create_string_buffer(32)
        n = ctypes.c_size_t(32)
        if lib.EVP_PKEY_get_raw_public_key(self._pkey, out, ctypes.byref(n)) != 1 or n.value != 32:
            raise SiteKeyError("libcrypto cannot derive the public key")
        self._public = out.raw

    def public_key(self) -> bytes:
        return self._public

    def sign(self, data: bytes) -> bytes:
        lib = self._lib
        ctx = lib.EVP_MD_CTX_new()
        if not ctx:
            raise MemoryError("EVP_MD_CTX_new")
        try:
            out = ctypes.create_string_buffer(64)
            n = ctypes.c_size_t(64)
            if (
                lib.EVP_DigestSignInit(ctx, None, None, None, self._pkey) != 1
                or lib.EVP_DigestSign(ctx, out, ctypes.byref(n), data, len(data)) != 1
                or n.value != 64
            ):
                raise SiteKeyError("libcrypto failed to sign")
            return out.raw
        finally:
            lib.EVP_MD_CTX_free(ctx)

    def __del__(self) -> None:
        pkey, self._pkey = getattr(self, "_pkey", None), None
        if pkey:
            self._lib.EVP_PKEY_free(pkey)


def seed_of(pem: bytes) -> bytes | None:
    """The 32-byte seed of an unencrypted Ed25519 PKCS#8 PEM, or None for anything else."""
    m = _PEM.match(pem.strip() + b"\n")
    if m is None:
        return None
    try:
        der = base64.b64decode(b"".join(m.group(1).split()), validate=True)
    except ValueError:
        return None
    if len(der) != 48 or not der.startswith(_PKCS8_PREFIX):
        return None
    return der[16:]


def load_signer(path: Path) -> provenance.Signer:
    """The site key at ``path`` (mode 0600) as a signer: an :class:`OpenSslSigner` where the
    process's ``libcrypto`` can sign Ed25519, else ``cryptography``'s key (same signatures)."""
    try:
        if os.stat(path).st_mode & 0o077:
            raise SiteKeyError(f"{path} is readable by others; chmod 600 it")
        pem = path.read_bytes()
    except OSError as exc:
        raise SiteKeyError(f"cannot read {path}: {exc.strerror or exc}") from None
    seed = seed_of(pem)
    lib = _libcrypto() if seed is not None else None
    if seed is not None and lib is not None:
        try:
            return OpenSslSigner(lib, seed)
        except SiteKeyError:
            pass
    from epcwatch.broker.signing import load_site_key

    return load_site_key(path)
