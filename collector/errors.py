"""The collector's error tree; library exceptions are converted into these at the boundary."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError


class CollectorError(EpcwatchError):
    """Base of every error the collector raises on purpose."""


class SettingsError(CollectorError, ValueError):
    """Settings that validate but cannot be used (an InfluxDB URL that is not http(s)://host:port).

    Also a ``ValueError``, what it was before the project's error tree.
    """


class WriteError(CollectorError):
    """A write that did not succeed."""


class TransientWriteError(WriteError):
    """Worth retrying: network error, 5xx, 429, timeouts, 401/403/404 (configuration being fixed)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RejectedWriteError(WriteError):
    """The server refused (some of) the points: a 400 naming what it did not accept.

    On a partial write the points it could parse and store are stored; ``message`` is the
    server's explanation, from which the offending lines are identified.
    """


class TooLargeError(WriteError):
    """413: the request body exceeds the server's limit; split the batch."""


class StoppedError(CollectorError):
    """The collector is shutting down; the work in hand is left unacked (it will be redelivered)."""
