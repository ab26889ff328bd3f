"""InfluxDB writers behind one interface.

A :class:`Writer` POSTs one body of line protocol (millisecond precision) and either returns or
raises one of the errors of :mod:`epcwatch.collector.errors`; it never retries on its own.
Retries, batching, splitting and partial-write resolution live in
:mod:`epcwatch.collector.pipeline`, so both writers behave the same.

- ``v1``: ``POST /write?db=…&precision=ms`` over one keep-alive HTTP connection (the standard
  library's ``http.client``: no pool, no surprises). InfluxDB 1.x and the v1 endpoint of 2.x/3.x,
  with the project's one auth scheme (:func:`epcwatch.influx.basic_auth_header`: user and
  password, or a token as the password).
- ``v2``: ``influxdb-client``'s ``WriteApi`` in synchronous mode for InfluxDB 2.x/3.x
  (bucket, org, token). The client's own retries are switched off; we retry.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import ssl
import time
import urllib.parse
from typing import Any, Protocol

from epcwatch.collector.errors import (
    RejectedWriteError,
    SettingsError,
    TooLargeError,
    TransientWriteError,
    WriteError,
)
from epcwatch.influx import basic_auth_header


class Writer(Protocol):
    name: str

    def write(self, body: bytes) -> None:
        """Store the line protocol in ``body`` (ms precision) or raise a :class:`WriteError`."""
        ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def classify(status: int, message: str, retry_after: str | None) -> WriteError:
    """Map an HTTP error status to the collector's error tree."""
    if status == 413:
        return TooLargeError(f"413: {message}")
    if status in (400, 422):
        return RejectedWriteError(message)
    # 401/403/404 (credentials, database missing) are the operator's to fix: retrying keeps the
    # data in the broker until they do, instead of dead-lettering good readings
    return TransientWriteError(f"HTTP {status}: {message}", parse_retry_after(retry_after))


def _error_message(raw: bytes, header: str | None) -> str:
    if header:
        return header
    text = raw.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError):
        import json

        doc = json.loads(text)
        if isinstance(doc, dict):
            return str(doc.get("error") or doc.get("message") or text)
    return text[:2000]


class V1Writer:
    """``/write`` over one persistent HTTP(S) connection."""

    name = "v1"

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
        gzip: bool = False,
    ) -> None:
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise SettingsError(f"InfluxDB URL must be http(s)://host:port, got {url!r}")
        self.scheme = u.scheme
        self.host = u.hostname
        self.port = u.port or (443 if u.scheme == "https" else 80)
        params = {"db": database, "precision": "ms"}
        if retention_policy:
            params["rp"] = retention_policy
        self.path = (u.path.rstrip("/") or "") + "/write?" + urllib.parse.urlencode(params)
        self.headers = {"Content-Type": "text/plain; charset=utf-8"}
        self.headers.update(basic_auth_header(username, password or token))
        self.gzip = gzip
        if gzip:
            self.headers["Content-Encoding"] = "gzip"
        self.timeout = timeout
        self.ssl_context: ssl.SSLContext | None = None
        if u.scheme == "https":
            self.ssl_context = ssl.create_default_context(cafile=ca_file)
            if not verify_tls:
                self.ssl_context.check_hostname = False
                self.ssl_context.verify_mode = ssl.CERT_NONE
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.ssl_context is not None:
                self._conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self.ssl_context
                )
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def write(self, body: bytes) -> None:
        if self.gzip:
            import gzip

            body = gzip.compress(body, compresslevel=1)
        conn = self._connection()
        try:
            conn.request("POST", self.path, body=body, headers=self.headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise TransientWriteError(f"InfluxDB at {self.host}:{self.port} unreachable: {exc}") from None
        if resp.status in (200, 204):
            if resp.will_close:
                self.close()
            return
        self.close()  # InfluxDB closes the connection after an error answer
        raise classify(
            resp.status,
            _error_message(raw, resp.getheader("X-Influxdb-Error")),
            resp.getheader("Retry-After"),
        )

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


class V2Writer:
    """``influxdb-client`` ``WriteApi`` (synchronous) → ``/api/v2/write``."""

    name = "v2"

    def __init__(
        self,
        url: str,
        bucket: str,
        org: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
    ) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.write_precision import WritePrecision

        self.bucket = bucket
        self.org = org
        self._precision = WritePrecision.MS
        # retries=False: the client's urllib3 retries would hide errors from our own policy
        self._client = InfluxDBClient(
            url=url,
            token=token or "",
            org=org,
            timeout=int(timeout * 1000),
            verify_ssl=verify_tls,
            ssl_ca_cert=ca_file,
            retries=False,
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def write(self, body: bytes) -> None:
        from influxdb_client.rest import ApiException

        try:
            self._api.write(
                bucket=self.bucket,
                org=self.org,
                record=body,
                write_precision=self._precision,  # type: ignore[arg-type]
            )
        except ApiException as exc:
            headers: Any = exc.headers or {}
            raw = exc.body if isinstance(exc.body, bytes) else str(exc.body or "").encode()
            raise classify(
                int(exc.status or 0), _error_message(raw, None), headers.get("Retry-After")
            ) from None
        except Exception as exc:
            # urllib3 (or urllib3-future) connection errors, timeouts: the library's own types
            # vary between versions, so anything else from the client is a network problem
            raise TransientWriteError(f"InfluxDB v2 write failed: {type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._api.close()  # type: ignore[no-untyped-call]
            self._client.close()  # type: ignore[no-untyped-call]
