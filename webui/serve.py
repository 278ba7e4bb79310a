"""Serving the dashboard: waitress (a production WSGI server) on the store LAN."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask

from local_db import connect
from webui.accounts import issue_setup_token
from webui.ops import WebServer

logger = logging.getLogger(__name__)

#: The server closes its connections at once and gives running requests a second.
STOP_TIMEOUT_S = 5.0


@dataclass
class RunningServer:
    """A dashboard server running in a background thread."""

    url: str
    thread: threading.Thread
    _stop: threading.Event

    def stop(self) -> None:
        """Close the listening socket and every connection, and wait for the thread."""
        self._stop.set()
        self.thread.join(timeout=STOP_TIMEOUT_S)
        if self.thread.is_alive():
            logger.warning(
                "the dashboard server at %s did not stop in %s s", self.url, STOP_TIMEOUT_S
            )


def setup_token(app: Flask) -> str | None:
    """A fresh one-time setup token if the box has no account yet (print it), else None."""
    conn = connect(Path(app.config["FOOTFALL_DB"]))
    try:
        return issue_setup_token(conn)
    finally:
        conn.close()


def start_server(app: Flask, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``app`` in a daemon thread; ``port=0`` picks a free port.

    Returns:
        The server, with the URL it answers on.

    Raises:
        OSError: the address cannot be bound.
    """
    server = WebServer(app, host, port)
    stop = threading.Event()
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(stop)
        except BaseException as exc:
            failed.append(exc)
            raise
        finally:
            server.ready.set()  # wake the caller if binding failed

    thread = threading.Thread(target=serve, name="webui", daemon=True)
    thread.start()
    server.ready.wait()
    if failed:
        raise failed[0]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return RunningServer(f"http://{shown}:{server.port}", thread, stop)
