"""Register decoding and encoding, kept importable from one place for existing callers.

Decoding (the edge agent) lives in :mod:`epcwatch.profiles.decode`, encoding (the simulator
and tests) in :mod:`epcwatch.profiles.encode`; import from those in new code.
"""

from __future__ import annotations

from epcwatch.profiles.decode import (
    AnyValue,
    Decoded,
    DecodeError,
    Decoder,
    NoValue,
    Response,
    decode,
    decode_point,
    decode_raw,
)
from epcwatch.profiles.encode import SF_RANGE, EncodeError, encode_point, register_image

__all__ = [
    "SF_RANGE",
    "AnyValue",
    "DecodeError",
    "Decoded",
    "Decoder",
    "EncodeError",
    "NoValue",
    "Response",
    "decode",
    "decode_point",
    "decode_raw",
    "encode_point",
    "register_image",
]
