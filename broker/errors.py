"""The broker component's error tree (ACL rules, credentials, lab CA, broker configuration)."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError


class BrokerError(EpcwatchError):
    """Base of every error the broker component raises on purpose."""
