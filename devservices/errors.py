"""The development services' error tree."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError


class ServiceError(EpcwatchError):
    """A development server or child process that cannot be started, reached or stopped."""


class ChildExitedError(ServiceError):
    """A child process exited (or did not get ready) when it should still be running."""
