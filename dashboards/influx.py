"""A narrow InfluxDB 1.x-API client: InfluxQL over ``/query`` and line protocol to ``/write``.

The v1 endpoints are answered by InfluxDB 1.x, 2.x (with a DBRP mapping) and 3.x, which is
what dashboards and statistics need. Errors become :class:`InfluxError`; credentials travel
as query parameters the way the v1 API expects and never appear in an error message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from epcwatch.dashboards.errors import InfluxError


@dataclass(frozen=True)
class Series:
    """One series of a result: its tags and rows keyed by column."""

    name: str
    tags: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class InfluxClient:
    url: str
    database: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 60.0

    def _params(self, **extra: str) -> dict[str, str]:
        p = {"db": self.database, **extra}
        if self.username:
            p["u"] = self.username
            p["p"] = self.password or ""
        return p

    def _request(self, path: str, params: dict[str, str], body: bytes | None, content_type: str) -> bytes:
        target = f"{self.url.rstrip('/')}{path}"
        if body is None:
            body = urllib.parse.urlencode(params).encode()
        else:
            target += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(target, data=body, method="POST")
        req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return bytes(r.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:300].decode("utf-8", "replace")
            raise InfluxError(f"InfluxDB {self.url} answered {exc.code} to {path}: {detail}") from None
        except (OSError, urllib.error.URLError) as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable: {getattr(exc, 'reason', exc)}") from None

    def query(self, q: str) -> list[Series]:
        """Run one InfluxQL statement; return its series (empty when nothing matched)."""
        raw = self._request(
            "/query", self._params(q=q, epoch="ms"), None, "application/x-www-form-urlencoded"
        )
        doc = json.loads(raw)
        results = doc.get("results") or [{}]
        res = results[0]
        if "error" in res:
            raise InfluxError(f"InfluxQL error: {res['error']} (query: {q[:200]})")
        out = []
        for s in res.get("series") or []:
            cols = s["columns"]
            rows = [dict(zip(cols, v, strict=True)) for v in s.get("values") or []]
            out.append(Series(s.get("name", ""), dict(s.get("tags") or {}), rows))
        return out

    def write(self, lines: list[str]) -> None:
        """Write line protocol (ms precision)."""
        if lines:
            self._request(
                "/write", self._params(precision="ms"), "\n".join(lines).encode(), "text/plain; charset=utf-8"
            )
