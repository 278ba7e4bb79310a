"""Operations endpoints: ``/healthz`` and ``/metrics``, and a supervised WSGI server.

The dashboard's app factory registers :func:`ops_blueprint`; ``footfall run
--listen`` serves :func:`ops_app` (these two endpoints only) until the
dashboard is wired in. Neither endpoint needs a login: they carry no store data
beyond camera ids and counters, and monitoring must reach them; ``/healthz`` shows
no file path or URL (``public_report`` of the box's ``appliance.box.health.Health``).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any, Protocol
from wsgiref.types import WSGIApplication

from flask import Blueprint, Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from waitress import wasyncore
from waitress.server import create_server

logger = logging.getLogger(__name__)

#: On stop, how long requests already running may take to finish.
STOP_REQUESTS_S = 1.0


class Health(Protocol):
    """What the endpoints read of the running box's health (the box's runtime provides it)."""

    @property
    def registry(self) -> CollectorRegistry:
        """The Prometheus metrics."""

    def public_report(self) -> dict[str, Any]:
        """The ``/healthz`` report: ``status`` and its reasons, without paths or URLs."""


def ops_blueprint(health: Health) -> Blueprint:
    """``GET /healthz`` (200 ok, 503 degraded, JSON with the reasons) and ``GET /metrics``.

    Args:
        health: the running box's health.
    """
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz() -> tuple[Response, int]:
        report = health.public_report()
        return jsonify(report), 200 if report["status"] == "ok" else 503

    @bp.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(health.registry), content_type=CONTENT_TYPE_LATEST)

    return bp


def ops_app(health: Health) -> Flask:
    """A Flask app with only the ops endpoints."""
    app = Flask(__name__)
    app.register_blueprint(ops_blueprint(health))
    return app


class WebServer:
    """Serves a WSGI app with waitress (as ``footfall web`` does); a supervised service.

    Args:
        app: the WSGI app (the dashboard, or :func:`ops_app`).
        host: the address to bind.
        port: the port (0: any free one; :attr:`port` has it once :attr:`ready`).
    """

    name = "web"

    def __init__(self, app: WSGIApplication, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.ready = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set, then close every connection and return promptly.

        Waitress's own ``run()`` loops while any connection is open, so closing only
        the listening socket left a browser's kept-alive connection serving until
        it idled out; here the loop runs in this thread, a trigger wakes it when
        ``stop`` is set, and it closes the listener and every open connection.
        """
        channels: dict[int, wasyncore.dispatcher] = {}
        server = create_server(
            self.app, map=channels, host=self.host, port=self.port, threads=8, ident="footfall"
        )
        self.port = int(server.effective_port)
        closing = threading.Lock()
        closed = False

        def wake_on_stop() -> None:
            stop.wait()
            with closing:  # the trigger's pipe must still be open (its fd may be reused)
                if not closed:
                    server.pull_trigger()

        threading.Thread(target=wake_on_stop, name="web-stop", daemon=True).start()
        logger.info("serving on http://%s:%d", self.host, self.port)
        _warn_if_plain_http_beyond_loopback(self.host, self.port)
        self.ready.set()
        try:
            while not stop.is_set():
                wasyncore.loop(
                    timeout=server.adj.asyncore_loop_timeout,
                    map=channels,
                    use_poll=server.adj.asyncore_use_poll,
                    count=1,
                )
        finally:
            with closing:
                closed = True
                wasyncore.close_all(channels, ignore_all=True)
            server.task_dispatcher.shutdown(timeout=STOP_REQUESTS_S)
            self.ready.clear()


def _warn_if_plain_http_beyond_loopback(host: str, port: int) -> None:
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        logger.warning(
            "serving plain HTTP on %s:%d, reachable from the network: passwords and session "
            "cookies cross it unencrypted. Put a TLS proxy in front (README, Security: TLS "
            "proxy), set web.https: true and web.trusted_proxies, and listen on 127.0.0.1",
            host,
            port,
        )
