"""The edge agent's error tree; library exceptions (pymodbus, paho, sqlite3) are converted at
the boundary so callers only ever catch these."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError


class EdgeError(EpcwatchError):
    """Base of every error the edge agent raises."""


class SiteConfigError(EdgeError):
    """A site configuration that is valid YAML and schema but cannot be used (profile missing, …)."""


class ModbusError(EdgeError):
    """A device read (Modbus or DL/T 645) that did not produce data."""


class DeviceTimeoutError(ModbusError):
    """No (valid) answer within the device's timeout: dead device, wrong unit id, broken wiring."""


class ExceptionResponseError(ModbusError):
    """The device answered with a Modbus exception response (illegal address, busy, …)."""

    #: whether the poller may retry it (Modbus: only busy/acknowledge/gateway codes, see poller)
    retryable = True

    def __init__(self, code: int, message: str = "") -> None:
        self.code = code
        super().__init__(message or f"Modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})")


class FrameError(ModbusError):
    """An answer that is not a valid response to the request (garbage, wrong length, wrong unit)."""


class Dlt645ErrorReplyError(ExceptionResponseError):
    """A DL/T 645 meter answered with an error reply (control bit 6 set); ``code`` is its error
    byte. Deterministic (no such data, unauthorised): never retried."""

    retryable = False


class BusUnavailableError(ModbusError):
    """The bus itself cannot be used: serial port missing, gateway refusing connections."""


class ReadOnlyError(EdgeError):
    """Something asked the agent to issue a function code other than 1, 2, 3 or 4."""


class OutboxError(EdgeError):
    """The durable outbox cannot be opened or written."""


class PublishError(EdgeError):
    """The MQTT publisher cannot be configured (TLS files, secrets)."""


EXCEPTION_NAMES: dict[int, str] = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
