"""Operations endpoints: ``/healthz`` and ``/metrics``, and a supervised WSGI server.

The dashboard's app factory registers :func:`ops_blueprint`; ``footfall run
--listen`` serves :func:`ops_app` (these two endpoints only) until the
dashboard is wired in. Neither endpoint needs a login: they carry no store data
beyond camera ids and counters, and monitoring must reach them; ``/healthz`` shows
no file path or URL (:meth:`appliance.health.Health.public_report`).
"""

from __future__ import annotations

import logging
import threading
from wsgiref.types import WSGIApplication

from flask import Blueprint, Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from waitress.server import create_server

from appliance.health import Health

logger = logging.getLogger(__name__)


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
        """Serve until ``stop`` is set."""
        server = create_server(
            self.app, host=self.host, port=self.port, threads=8, ident="footfall"
        )
        self.port = int(server.effective_port)

        def stop_server() -> None:
            stop.wait()
            server.close()

        threading.Thread(target=stop_server, name="web-stop", daemon=True).start()
        logger.info("serving on http://%s:%d", self.host, self.port)
        self.ready.set()
        try:
            server.run()
        except OSError:
            if not stop.is_set():  # closing the socket from the stop thread ends run()
                raise
        finally:
            self.ready.clear()
