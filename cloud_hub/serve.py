"""Serving the hub with waitress until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

from flask import Flask
from waitress.server import create_server

logger = logging.getLogger(__name__)

#: Requests still running at a stop get this long to finish.
STOP_REQUESTS_S: Final = 5.0


def serve(app: Flask, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve ``app`` on ``host:port`` (0: a free port) until SIGTERM/SIGINT.

    Args:
        app: The hub's app.
        host: The address to bind.
        port: The port; 0 picks a free one.
        on_ready: Called with the URL once the socket listens.

    Raises:
        OSError: The address cannot be bound.
    """
    from waitress import wasyncore

    channels: dict[int, Any] = {}
    server = create_server(app, map=channels, host=host, port=port, threads=8, ident="footfall-hub")
    stop = threading.Event()

    def _handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping the hub", signal.Signals(signum).name)
        stop.set()
        server.pull_trigger()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    on_ready(f"http://{host}:{server.effective_port}")
    try:
        while not stop.is_set():
            wasyncore.loop(timeout=1.0, map=channels, count=1)
    finally:
        wasyncore.close_all(channels, ignore_all=True)
        server.task_dispatcher.shutdown(timeout=STOP_REQUESTS_S)
