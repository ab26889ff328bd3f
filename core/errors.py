"""The root of every error epcwatch raises on purpose; each component has its own subtree."""

from __future__ import annotations


class EpcwatchError(Exception):
    """An error the user can act on (bad input, a server that cannot be reached)."""
