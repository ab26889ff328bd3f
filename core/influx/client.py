"""The one InfluxDB client: InfluxQL over ``/query``, line protocol to ``/write``, ``/ping``.

The v1 endpoints are answered by InfluxDB 1.x, by 2.x (with a DBRP mapping) and by 3.x, so
every component reads and writes through them. One auth scheme: HTTP basic auth
(``Authorization: Basic``) with a user name and password; InfluxDB 2.x/3.x take an API token as
the password and ignore the user name. Credentials never travel in a URL and never appear in an
error message. Every failure is an :class:`InfluxError`.
"""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from epcwatch.errors import EpcwatchError


class InfluxError(EpcwatchError):
    """InfluxDB unreachable, refusing a request, or answering with an InfluxQL error."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        #: the HTTP status of a refused request (``None`` when the server was not reached)
        self.status = status


def basic_auth_header(username: str | None, password: str | None) -> dict[str, str]:
    """The ``Authorization`` header of the one auth scheme (empty without credentials)."""
    if username is None and password is None:
        return {}
    cred = base64.b64encode(f"{username or ''}:{password or ''}".encode()).decode()
    return {"Authorization": f"Basic {cred}"}


@dataclass(frozen=True)
class Series:
    """One series of a result: its measurement, tags and rows keyed by column (in column order)."""

    name: str
    tags: dict[str, str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def values(self) -> list[list[Any]]:
        """The rows as lists, in column order (``time`` first)."""
        return [list(r.values()) for r in self.rows]


@dataclass(frozen=True)
class InfluxClient:
    """One database on one server, over the v1 HTTP API (no connection kept open)."""

    url: str
    database: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 60.0

    def _request(self, path: str, params: dict[str, str], body: bytes | None, content_type: str) -> bytes:
        target = f"{self.url.rstrip('/')}{path}"
        if params:
            target += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(target, data=body, method="POST" if body is not None else "GET")
        req.add_header("Content-Type", content_type)
        for k, v in basic_auth_header(self.username, self.password).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return bytes(r.read())
        except urllib.error.HTTPError as exc:
            with exc:  # the error holds the response: close it (no unclosed-socket warning)
                detail = exc.read()[:300].decode("utf-8", "replace").strip()
            raise InfluxError(
                f"InfluxDB {self.url} answered {exc.code} to {path}: {detail}", exc.code
            ) from None
        except (OSError, urllib.error.URLError) as exc:
            raise InfluxError(f"InfluxDB at {self.url} unreachable: {getattr(exc, 'reason', exc)}") from None

    def _db_params(self, **extra: str) -> dict[str, str]:
        return {"db": self.database, **extra} if self.database else dict(extra)

    def query_results(self, q: str, *, epoch: str = "ms") -> list[dict[str, Any]]:
        """The raw ``results`` of one or more statements (``;``-separated); raises on any error."""
        form = urllib.parse.urlencode({"q": q}).encode()
        raw = self._request("/query", self._db_params(epoch=epoch), form, "application/x-www-form-urlencoded")
        try:
            doc = orjson.loads(raw)  # several times faster than json on long query answers
        except ValueError:
            raise InfluxError(f"InfluxDB {self.url} answered /query with something not JSON") from None
        results: list[dict[str, Any]] = list(doc.get("results") or [])
        for res in results:
            if "error" in res:
                raise InfluxError(f"InfluxQL error: {res['error']} (query: {q[:200]})")
        if "error" in doc:
            raise InfluxError(f"InfluxQL error: {doc['error']} (query: {q[:200]})")
        return results

    def query(self, q: str, *, epoch: str = "ms") -> list[Series]:
        """Every series the statement(s) returned (empty when nothing matched)."""
        out = []
        for res in self.query_results(q, epoch=epoch):
            for s in res.get("series") or []:
                cols = s["columns"]
                rows = [dict(zip(cols, v, strict=True)) for v in s.get("values") or []]
                out.append(Series(s.get("name", ""), dict(s.get("tags") or {}), rows))
        return out

    def execute(self, statement: str) -> None:
        """A statement without a result worth reading (``CREATE DATABASE``, ``DROP …``)."""
        self.query_results(statement)

    def create_database(self, name: str | None = None) -> None:
        from epcwatch.influx.influxql import ident

        self.execute(f"CREATE DATABASE {ident(name or self.database or '')}")

    def write(self, lines: Iterable[str], *, precision: str = "ms") -> None:
        """Write line protocol (timestamps in ``precision``: ``ms``, ``s``, ``u``, ``ns``)."""
        text = "\n".join(lines)
        if not text:
            return
        self._request(
            "/write",
            self._db_params(precision=precision),
            text.encode("utf-8"),
            "text/plain; charset=utf-8",
        )

    def ping(self) -> bool:
        """True when the server answers ``/ping``."""
        try:
            self._request("/ping", {}, None, "text/plain")
        except InfluxError:
            return False
        return True
