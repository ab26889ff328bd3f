"""The one MQTT connection model and paho factory, shared by site.yaml and collector.yaml.

Keys (``mqtt:`` in both files; each component adds its own, e.g. the collector's ``group``):

- ``host``, ``port`` (default 1883, or 8883 when ``tls`` is given), ``protocol`` (``5`` or
  ``3.1.1``), ``client_id``, ``keepalive_s``, ``session_expiry_s``, ``reconnect_min_s`` and
  ``reconnect_max_s`` (paho's capped exponential reconnect backoff);
- ``username`` and ``password: {env: NAME}`` or ``password: {file: PATH}``. A password is never
  written inline in a configuration file, and never without a user name; a relative file path
  is relative to the config file;
- ``tls:`` ``ca_file`` (system CAs when absent), ``cert_file`` and ``key_file`` (a client
  certificate, together), and two explicit switches, both true by default:
  ``verify_certificate`` (false: accept any certificate, CERT_NONE) and ``verify_hostname``
  (false: check the certificate chain but not the broker's host name). Turning off the
  certificate check turns off the host-name check too, so it must be said explicitly.

The old keys ``password_env``, ``password_file``, ``password: {value: …}`` and ``tls.insecure``
(which meant one thing in the edge and another in the collector) are refused with a message
naming the new ones (docs/mqtt.md).

:func:`make_client` builds a paho client from the model and converts TLS and connect problems
into :class:`MqttError` (a missing CA file is named, never a raw traceback).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from epcwatch.config import read_secret
from epcwatch.errors import EpcwatchError

if TYPE_CHECKING:
    import paho.mqtt.client as paho


class MqttError(EpcwatchError):
    """An MQTT connection that cannot be set up: TLS files, secrets, bad host or port."""


def _replaced_by(new: str) -> AfterValidator:
    """A validator for an old key: any value given is refused with a message naming ``new``."""

    def check(_: object) -> object:
        raise ValueError(f"this key was replaced: use {new}")

    return AfterValidator(check)


#: old keys, accepted by the schema only to be refused with a useful message
_OLD: Any = Field(default=None, exclude=True)
_INSECURE_NEW = (
    "verify_hostname: false (skip only the host name check) or verify_certificate: false "
    "(accept any certificate; needs verify_hostname: false too)"
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttPassword(_Strict):
    """``{env: NAME}`` or ``{file: PATH}``: exactly one."""

    env: str | None = Field(default=None, description="environment variable holding the password")
    file: Path | None = Field(default=None, description="file holding the password (relative: to the config)")
    value: Annotated[Any, _replaced_by("{env: NAME} or {file: PATH}; a password is never inline")] = _OLD

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env or file")
        return self

    def resolve(self) -> str:
        """The password, registered for redaction in logs; :class:`MqttError` names what is missing."""
        from epcwatch import logs

        try:
            secret = read_secret(env=self.env, file=str(self.file) if self.file else None)
        except ValueError as exc:
            raise MqttError(f"mqtt.password: {exc}") from None
        assert secret is not None
        logs.redact(secret)
        return secret


class MqttTls(_Strict):
    ca_file: Path | None = Field(default=None, description="CA bundle; system CAs when absent")
    cert_file: Path | None = Field(default=None, description="client certificate (with key_file)")
    key_file: Path | None = Field(default=None, description="client key (with cert_file)")
    verify_certificate: bool = Field(default=True, description="false: accept any certificate (testing only)")
    verify_hostname: bool = Field(default=True, description="false: skip the host name check (testing only)")
    insecure: Annotated[Any, _replaced_by(_INSECURE_NEW)] = _OLD

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if not self.verify_certificate and self.verify_hostname:
            raise ValueError(
                "verify_certificate: false also skips the host name check; say verify_hostname: false too"
            )
        return self


class MqttConnection(_Strict):
    """Where and how to connect to the broker (both components' ``mqtt:`` section)."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535, description="default 1883, or 8883 with TLS")
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(
        default=None, min_length=1, max_length=128, description="stable per instance"
    )
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    username: str | None = None
    password: MqttPassword | None = None
    tls: MqttTls | None = None
    reconnect_min_s: float = Field(default=1.0, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    password_env: Annotated[Any, _replaced_by("password: {env: NAME}")] = _OLD
    password_file: Annotated[Any, _replaced_by("password: {file: PATH}")] = _OLD

    @model_validator(mode="after")
    def _reconnect(self) -> Self:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    @model_validator(mode="after")
    def _user(self) -> Self:
        # a password is only ever sent with a user name (MQTT 3.1.1 requires one); without it,
        # the client would connect as if no password had been configured
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username: give both, or neither")
        return self

    def effective_port(self) -> int:
        return self.port if self.port is not None else (8883 if self.tls is not None else 1883)

    def resolve_password(self) -> str | None:
        """The password (``None`` without one); :class:`MqttError` when its source is missing."""
        return self.password.resolve() if self.password is not None else None

    def relative_to(self, base: Path) -> Self:
        """A copy with relative file paths (TLS files, password file) resolved against ``base``."""

        def r(p: Path | None) -> Path | None:
            if p is None:
                return None
            p = Path(os.path.expanduser(p))
            return p if p.is_absolute() else base / p

        update: dict[str, Any] = {}
        if self.tls is not None:
            t = self.tls
            update["tls"] = t.model_copy(
                update={"ca_file": r(t.ca_file), "cert_file": r(t.cert_file), "key_file": r(t.key_file)}
            )
        if self.password is not None and self.password.file is not None:
            update["password"] = self.password.model_copy(update={"file": r(self.password.file)})
        return self.model_copy(update=update)


def tls_context(tls: MqttTls) -> ssl.SSLContext:
    """The TLS context of ``tls``; :class:`MqttError` names a missing or unreadable file."""
    for key in ("ca_file", "cert_file", "key_file"):
        p: Path | None = getattr(tls, key)
        if p is not None and not Path(p).is_file():
            raise MqttError(f"mqtt.tls.{key}: {p} does not exist or is not a file")
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file is not None:
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    except ssl.SSLError as exc:
        raise MqttError(f"mqtt.tls: cannot use the certificate files: {exc.reason or exc}") from None
    except OSError as exc:
        raise MqttError(f"mqtt.tls: {exc.strerror or exc}: {exc.filename or ''}") from None
    if not tls.verify_hostname:
        ctx.check_hostname = False
    if not tls.verify_certificate:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def make_client(
    conn: MqttConnection,
    *,
    client_id: str,
    password: str | None = None,
    manual_ack: bool = False,
) -> paho.Client:
    """A paho 2.x client (callback API v2) for ``conn``: protocol, persistent session, TLS,
    credentials and the reconnect backoff set; not yet connected.

    ``password`` is the resolved password (see :meth:`MqttConnection.resolve_password`).
    Raises :class:`MqttError` for TLS files or settings that cannot be used.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    v5 = conn.protocol == "5"
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        clean_session=None if v5 else False,
        manual_ack=manual_ack,
    )
    if conn.tls is not None:
        try:
            client.tls_set_context(tls_context(conn.tls))
        except ValueError as exc:  # paho: TLS already configured
            raise MqttError(f"mqtt.tls: {exc}") from None
    if conn.username is not None:
        client.username_pw_set(conn.username, password)
    client.reconnect_delay_set(
        min_delay=max(1, round(conn.reconnect_min_s)), max_delay=max(1, round(conn.reconnect_max_s))
    )
    return client


def connect_async(
    client: paho.Client, conn: MqttConnection, *, properties: dict[str, int] | None = None
) -> None:
    """Start connecting (paho's network loop finishes it) with a persistent session.

    MQTT 5: ``clean_start=False`` and the CONNECT ``properties`` given (e.g.
    ``SessionExpiryInterval``); 3.1.1: the session is kept by ``clean_session=False``.
    Raises :class:`MqttError` for an address that cannot be used.
    """
    kwargs: dict[str, Any] = {}
    if conn.protocol == "5":
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        for name, value in (properties or {}).items():
            setattr(props, name, value)
        kwargs = {"clean_start": False, "properties": props}
    port = conn.effective_port()
    try:
        client.connect_async(conn.host, port, keepalive=conn.keepalive_s, **kwargs)
    except (OSError, ValueError) as exc:
        raise MqttError(f"cannot connect to MQTT broker {conn.host}:{port}: {exc}") from None
