"""Serving the dashboard: waitress (a production WSGI server) on the store LAN."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from waitress.server import create_server

from local_db import connect
from webui.accounts import issue_setup_token

logger = logging.getLogger(__name__)


@dataclass
class RunningServer:
    """A dashboard server running in a background thread."""

    url: str
    thread: threading.Thread
    _server: object

    def stop(self) -> None:
        """Close the listening socket and wait for the thread."""
        self._server.close()  # type: ignore[attr-defined]
        self.thread.join(timeout=10)


def setup_token(app: Flask) -> str | None:
    """A fresh one-time setup token if the box has no account yet (print it), else None."""
    conn = connect(Path(app.config["FOOTFALL_DB"]))
    try:
        return issue_setup_token(conn)
    finally:
        conn.close()


def start_server(
    app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 8
) -> RunningServer:
    """Serve ``app`` in a daemon thread; ``port=0`` picks a free port.

    Returns:
        The server, with the URL it answers on.
    """
    server = create_server(app, host=host, port=port, threads=threads, ident="footfall")
    bound = int(server.effective_port)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    thread = threading.Thread(target=server.run, name="webui", daemon=True)
    thread.start()
    url = f"http://{shown}:{bound}"
    logger.info("dashboard on %s", url)
    return RunningServer(url, thread, server)
