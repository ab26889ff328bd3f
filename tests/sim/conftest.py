"""Fixtures of the simulator tests: ``epcwatch sim serve`` as a child process, stopped by PID."""

from __future__ import annotations

from tests.support import EPCWATCH, Child, spawn

__all__ = ["EPCWATCH", "Child", "spawn"]
