"""Deterministic, random-access noise: the value at step ``k`` of stream ``name`` is a pure function
of (seed, name, k).

A sequential random generator would force every query to replay the whole history; hashing the
step index (splitmix64) lets the simulator evaluate any minute of any year on its own, and the
same minute always gets the same noise, in the counterfactual as in the actual run.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.special import ndtri

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_MASK: Final = (1 << 64) - 1
_M1: Final = np.uint64(0xBF58476D1CE4E5B9)
_M2: Final = np.uint64(0x94D049BB133111EB)
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)
_S30: Final = np.uint64(30)
_S27: Final = np.uint64(27)
_S31: Final = np.uint64(31)
_S11: Final = np.uint64(11)


def stream_key(seed: int, name: str) -> int:
    """A 64-bit key for a named noise stream (stable across processes, unlike ``hash()``)."""
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & _MASK


def _splitmix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    # uint64 array arithmetic wraps modulo 2**64, which is what splitmix64 wants
    x = x + _GOLDEN
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def uniform(key: int, idx: I64) -> F64:
    """Uniform values in (0, 1), one per index."""
    x = np.asarray(idx, dtype=np.int64).astype(np.uint64) ^ np.uint64(key)
    u = (_splitmix(x) >> _S11).astype(np.float64) * 2.0**-53
    return np.clip(u, 1e-12, 1.0 - 1e-12)


def normal(key: int, idx: I64) -> F64:
    """Standard normal values, one per index (inverse CDF of :func:`uniform`)."""
    out: F64 = np.asarray(ndtri(uniform(key, idx)), dtype=np.float64)
    return out


def smooth_normal(key: int, t: npt.NDArray[np.float64], period: float) -> F64:
    """A continuous standard-normal-ish process: normal knots every ``period`` seconds, linearly
    interpolated, so values drift instead of jumping (weather anomalies, slow load variation)."""
    pos = t / period
    i0 = np.floor(pos).astype(np.int64)
    w = pos - i0
    a = normal(key, i0)
    b = normal(key, i0 + 1)
    # rescale so the interpolated process keeps unit variance on average
    out: F64 = (a * (1.0 - w) + b * w) / np.sqrt((1.0 - w) ** 2 + w**2)
    return out
