"""The profiles component's error tree (profile files, decoding, encoding, read plans)."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError


class ProfilesError(EpcwatchError):
    """Base of every error the profiles component raises on purpose."""
