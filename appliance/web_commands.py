"""``footfall web``: the store dashboard on its own (``footfall run`` also starts it)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from appliance.config import ConfigError

logger = logging.getLogger(__name__)


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the dashboard until SIGTERM/SIGINT; print the setup token on a fresh box."""
    from webui import create_app
    from webui.serve import setup_token, start_server

    try:
        app = create_app(args.config, args.db)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return 2
    web = app.extensions["footfall"].config.web
    server = start_server(app, args.host or web.host, web.port if args.port is None else args.port)
    print(f"dashboard: {server.url}", flush=True)
    token = setup_token(app)
    if token:
        print(f"setup token (one use, creates the installer account): {token}", flush=True)
    stop = threading.Event()

    def _handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping the dashboard", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    stop.wait()
    server.stop()
    return 0


def add_web_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``footfall web``."""
    web = sub.add_parser("web", help="serve the store dashboard")
    web.add_argument("--config", required=True, help="the store YAML")
    web.add_argument("--db", help="SQLite file (default: storage.db_path)")
    web.add_argument("--host", help="address to listen on (default: web.host)")
    web.add_argument("--port", type=int, help="port (default: web.port; 0 picks a free one)")
    web.set_defaults(func=cmd_web)
