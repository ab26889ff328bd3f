"""The uplink component's error tree; ``str()`` is ready to show to an operator."""

from __future__ import annotations

from epcwatch.errors import EpcwatchError


class UplinkError(EpcwatchError):
    """Base of every error this component raises."""


class FrameError(UplinkError):
    """Bytes on the connection that are not a frame of the protocol."""


class DecryptError(UplinkError):
    """A payload that does not decrypt to XML: most often the two sides hold different AES keys."""


class MessageError(UplinkError):
    """XML that is not a message of the protocol (a malformed answer)."""


class LoginRefusedError(UplinkError):
    """The platform answered the identity check with ``fail``: the authentication key differs."""


class PlatformUnavailableError(UplinkError):
    """The platform cannot be reached, closed the connection or did not answer in time."""
