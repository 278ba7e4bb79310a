"""The one error type of the wire protocol, and its kinds (the hub maps them to HTTP codes)."""

from __future__ import annotations


class WireError(ValueError):
    """A batch, header set or answer that does not follow the protocol.

    Args:
        reason: What is wrong, in words (``"expected an integer, got 'x'"``).
        path: Where, as a JSON path (``"$.tables.agg_footfall[3].count"``); ``""`` for the
            whole message or a header.
    """

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


class BodyTooLargeError(WireError):
    """The body, compressed or decompressed, is over the protocol's bounds."""


class UnknownSchemaError(WireError):
    """The batch declares a schema version this side does not speak."""


class SignatureError(WireError):
    """A signature header is missing or malformed, or no signature matches any secret."""


class TimestampError(WireError):
    """The signed timestamp is malformed or outside the tolerance."""
