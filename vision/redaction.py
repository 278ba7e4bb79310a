"""Secrets out of every message: URL passwords, query tokens, and (for public pages) locations.

A camera source is often ``rtsp://user:password@host/stream``, or an HTTP URL with
``?token=…``; error messages, camera events and log lines quote it. :func:`redact`
is the one place that strips those credentials. It is applied where messages are
made (:class:`vision.sources.SourceError`), before anything is stored, and by a
logging filter on the box's log handlers (:class:`RedactingFilter`), so no log
line carries a secret whatever its origin.

This module imports nothing from the rest of the project, so that ``vision``,
``local_db`` and ``appliance`` can all use it.
"""

from __future__ import annotations

import logging
import re
from typing import Final

MASK: Final = "***"
URL_PLACEHOLDER: Final = "<url>"
PATH_PLACEHOLDER: Final = "<path>"

#: ``scheme://userinfo@``: the userinfo (greedy up to the last ``@`` before the path)
_USERINFO: Final = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/?#\s'\"<>]*@")
#: ``token=…``, ``password=…``, ``api_key=…``, ``X-Amz-Signature=…``: a secret's value
_SECRET_PARAM: Final = re.compile(
    r"(?P<name>(?<![\w-])[\w-]*?(?:token|passw(?:or)?d|pwd|pass|key|secret|sig|signature"
    r"|auth|authorization|credential|session)s?)=(?P<value>[^&\s'\"#;,)]+)",
    re.IGNORECASE,
)
#: a hub signing secret (``whsec_`` + base64), wherever it appears
_WEBHOOK_SECRET: Final = re.compile(r"\bwhsec_[A-Za-z0-9+/=]+")
#: any URL, for public output that must not show one at all
_URL: Final = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
#: an absolute or home-relative path (``/var/lib/footfall/box.db``, ``~/videos/a.mp4``)
_PATH: Final = re.compile(r"(?<![\w.:/~-])~?/[^\s'\"<>:,;()]+")


def redact(text: str, *, locations: bool = False) -> str:
    """Remove credentials from a message.

    Args:
        text: any message (an error, a camera event detail, a log line).
        locations: also replace every URL with ``<url>`` and every absolute or
            ``~`` path with ``<path>`` (for the public ``/healthz``).

    Returns:
        ``text`` with URL userinfo (``scheme://user:pass@`` → ``scheme://***@``)
        and secret-looking parameters (``token=``, ``password=``, ``key=``,
        ``secret=``, ``sig=`` and the like) and hub secrets (``whsec_…``) masked; it is
        idempotent.
    """
    text = _USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    text = _SECRET_PARAM.sub(rf"\g<name>={MASK}", text)
    text = _WEBHOOK_SECRET.sub(f"whsec_{MASK}", text)
    if locations:
        text = _PATH.sub(PATH_PLACEHOLDER, _URL.sub(URL_PLACEHOLDER, text))
    return text


class RedactingFilter(logging.Filter):
    """A handler filter that redacts each record's message and traceback before formatting.

    The record's arguments are merged into its message (``%`` formatting), so the
    formatted line and every later handler see only the redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
