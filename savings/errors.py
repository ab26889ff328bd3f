"""The savings component's error tree: callers catch these, never a library's exceptions."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError


class SavingsError(EpcwatchError):
    """Base of everything the M&V engine refuses; ``str()`` is ready to show to a user."""


class DataError(SavingsError):
    """Input data that cannot be used: unreadable CSV, missing columns, empty periods."""


class SourceError(SavingsError):
    """A data source (InfluxDB, weather file) that cannot be read or written."""
