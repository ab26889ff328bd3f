"""The project's one error root.

Every error epcwatch raises on purpose derives from :class:`EpcwatchError`, through its
component's own subtree (``EdgeError``, ``CollectorError``, ``SavingsError``, …). Library
exceptions are converted at each component's boundary. A command line catches
``EpcwatchError`` only: it prints ``str(exc)`` (written for an operator) and exits 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EpcwatchError(Exception):
    """Base of every error epcwatch raises on purpose; ``str()`` is ready to show to an operator."""
