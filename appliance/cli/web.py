"""``footfall web`` (the dashboard alone; ``footfall run`` serves it too) and ``footfall demo``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from appliance.config import ConfigError

logger = logging.getLogger(__name__)


def stop_on_signals(what: str) -> threading.Event:
    """An event that SIGTERM or SIGINT sets (logging that ``what`` stops)."""
    stop = threading.Event()

    def _handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping %s", signal.Signals(signum).name, what)
        stop.set()

    signal.signal(signal.SIGTERM, _handle)
    signal.signal(signal.SIGINT, _handle)
    return stop


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
    stop = stop_on_signals("the dashboard")  # before serving: a SIGTERM from then on stops cleanly
    server = start_server(app, args.host or web.host, web.port if args.port is None else args.port)
    print(f"dashboard: {server.url}", flush=True)
    token = setup_token(app)
    if token:
        print(f"setup token (one use, creates the installer account): {token}", flush=True)
    stop.wait()
    server.stop()
    return 0


def demo_folder(option: str | None) -> Path:
    """Where ``footfall demo`` keeps its databases: ``--dir``, else ``$FOOTFALL_CACHE/demo``."""
    from vision.assets import cache_dir

    return Path(option).expanduser() if option else cache_dir() / "demo"


def cmd_demo(args: argparse.Namespace) -> int:
    """Four store dashboards and their hub on localhost: vtest.avi and three live simulations."""
    from lab.demo import run_demo
    from vision.assets import AssetError, demo_video

    try:
        video = demo_video()
    except AssetError as exc:
        print(f"demo: {exc} (`make demo` fetches it)", file=sys.stderr)
        return 2
    stop = stop_on_signals("the demo")
    folder = demo_folder(args.dir)
    run_demo(folder, video, args.host, args.port, args.serve_s, stop, args.offline_s)
    return 0


def add_web_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``footfall web``."""
    web = sub.add_parser("web", help="serve the store dashboard")
    web.add_argument("--config", required=True, help="the store YAML")
    web.add_argument("--db", help="SQLite file (default: storage.db_path)")
    web.add_argument("--host", help="address to listen on (default: web.host)")
    web.add_argument("--port", type=int, help="port (default: web.port; 0 picks a free one)")
    web.set_defaults(func=cmd_web)

    demo = sub.add_parser(
        "demo", help="vtest.avi and three live simulated stores on dashboards, syncing to a hub"
    )
    demo.add_argument(
        "--dir", help="where the databases and config copies go (default: $FOOTFALL_CACHE/demo)"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument(
        "--port",
        type=int,
        default=8080,
        help="vtest store; the simulated ones get the next three ports, the hub the one after",
    )
    demo.add_argument(
        "--serve-s", type=float, help="stop after this many seconds (default: Ctrl-C)"
    )
    demo.add_argument(
        "--offline-s",
        type=float,
        default=60.0,
        help="the fashion store's uplink is down this long, then it catches up (default: 60)",
    )
    demo.set_defaults(func=cmd_demo)
