"""Structured logging: one event per line, ``key=value`` for people or JSON for machines.

Components log an event name plus fields (``log.info("published", extra=fields(n=3))``).
Secrets registered with :func:`redact` are masked in every record, whatever the caller logged.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

_SECRETS: set[str] = set()
_FIELDS = "epc_fields"


def fields(**kv: Any) -> dict[str, Any]:
    """``extra=`` argument carrying structured fields."""
    return {_FIELDS: kv}


def redact(secret: str | None) -> None:
    """Register a secret; it is replaced by ``***`` wherever it would be logged."""
    if secret and len(secret) >= 3:
        _SECRETS.add(secret)


def _mask(text: str) -> str:
    for s in _SECRETS:
        if s in text:
            text = text.replace(s, "***")
    return text


class _Formatter(logging.Formatter):
    def __init__(self, json_lines: bool) -> None:
        super().__init__()
        self.json_lines = json_lines

    def format(self, record: logging.LogRecord) -> str:
        kv: dict[str, Any] = dict(getattr(record, _FIELDS, {}) or {})
        msg = record.getMessage()
        if record.exc_info:
            kv["exc"] = self.formatException(record.exc_info)
        if self.json_lines:
            doc = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "logger": record.name,
                "event": msg,
                **kv,
            }
            return _mask(orjson.dumps(doc, default=str).decode())
        parts = [
            time.strftime("%H:%M:%S", time.localtime(record.created)),
            f"{record.levelname.lower():7s}",
            f"{record.name}:",
            msg,
        ]
        parts += [f"{k}={v}" for k, v in kv.items()]
        return _mask(" ".join(str(p) for p in parts))


def setup(level: str = "info", json_lines: bool = False, stream: Any = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Formatter(json_lines))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # libraries are chatty at INFO; their problems reach us as exceptions
    for noisy in ("pymodbus", "urllib3", "influxdb_client", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
