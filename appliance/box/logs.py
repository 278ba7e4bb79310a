"""Logging set-up for the ``footfall`` command: plain text, or one JSON object per line.

Every handler of the root logger gets a :class:`vision.redaction.RedactingFilter`, so
no line written by the box carries a camera password or token.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

from vision.redaction import RedactingFilter

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC ISO-8601), ``level``, ``logger``, ``msg``.

    ``thread`` is added, and ``exc`` with the traceback when the record has one.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single JSON line."""
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            # the redacting filter leaves the traceback's redacted text in exc_text
            entry["exc"] = record.exc_text or self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def log_handler(fmt: LogFormat = "text", stream: TextIO | None = None) -> logging.Handler:
    """The box's log handler: ``stream`` (default stderr), the chosen format, redacted.

    Args:
        fmt: ``text`` for people, ``json`` for log shippers.
        stream: where to write.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter())
    return handler


def setup_logging(level: int, fmt: LogFormat = "text", stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (default stderr) in the chosen format, redacted.

    Any handler the root logger already had gets the redacting filter too.

    Args:
        level: the root logger's level.
        fmt: ``text`` for people, ``json`` for log shippers.
        stream: where to write.
    """
    logging.basicConfig(level=level, handlers=[log_handler(fmt, stream)])
    for each in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in each.filters):
            each.addFilter(RedactingFilter())
