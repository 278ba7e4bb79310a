"""The dashboard's Flask app factory.

``create_app`` loads and validates the store config, migrates the database,
and wires the blueprints, CSRF protection, sessions and security headers. The
app only reads aggregates and live positions from SQLite; camera frames reach
it only as JPEG bytes from the box's RAM ring buffer, through ``frames``, for
signed-in installers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from flask import Blueprint, Flask, render_template, request
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.wrappers import Response as BaseResponse

from appliance.config.live import LiveConfig
from local_db import connect, migrate
from webui import auth, editor, pages, wizard
from webui.accounts import secret_key
from webui.context import DashboardContext, FrameProvider
from webui.db import close_dbs
from webui.limiter import LoginLimiter
from webui.proxy import TrustedProxies

logger = logging.getLogger(__name__)

_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)


def create_app(
    config_path: str | Path | LiveConfig,
    db_path: str | Path | None = None,
    *,
    frames: FrameProvider | None = None,
    blueprints: Iterable[Blueprint] = (),
    testing: bool = False,
) -> Flask:
    """Build the dashboard app.

    Args:
        config_path: the store YAML (validated now; the editor writes it back), or
            the process's live config of it (``footfall run`` shares its own).
        db_path: the SQLite file (default: the config's ``storage.db_path``); it is
            created and migrated if needed.
        frames: the live camera frames for the installer's calibration view.
        blueprints: more blueprints to register (e.g. ``/healthz`` and ``/metrics``).
        testing: Flask's testing mode.

    Raises:
        appliance.config.ConfigError: the config file is invalid.
    """
    live = config_path if isinstance(config_path, LiveConfig) else LiveConfig(config_path)
    config = live.current()
    db = Path(db_path or config.storage.db_path).expanduser()
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = connect(db)
    try:
        migrate(conn)
        key = secret_key(conn)
    finally:
        conn.close()

    app = Flask(__name__)
    app.config.update(
        TESTING=testing,
        SECRET_KEY=key,
        FOOTFALL_DB=str(db),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=config.web.https,
        SESSION_COOKIE_NAME="footfall_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.web.session_hours),
        SESSION_REFRESH_EACH_REQUEST=False,  # the server ends sessions (webui.sessions)
        MAX_CONTENT_LENGTH=16 << 20,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    app.extensions["footfall"] = DashboardContext(live, frames)
    app.extensions["footfall_login_limiter"] = LoginLimiter(config.web.login_attempts)
    if config.web.trusted_proxies:
        app.wsgi_app = TrustedProxies(app.wsgi_app, config.web.trusted_proxies)  # type: ignore[method-assign]
    app.before_request(auth.refuse_cross_origin)  # before CSRFProtect's: a foreign origin is named
    CSRFProtect(app)
    app.teardown_appcontext(close_dbs)

    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(editor.bp)
    app.register_blueprint(wizard.bp)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)

    @app.context_processor
    def _globals() -> dict[str, object]:
        return {
            "user": auth.current_user(),
            "can": auth.can,
            "store": app.extensions["footfall"].config.store,
        }

    @app.after_request
    def _headers(response: BaseResponse) -> BaseResponse:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on POSTs
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if request.endpoint != "static":  # pages, data and camera frames are never cached
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[str, int]:
        logger.warning("CSRF rejected %s %s: %s", request.method, request.path, exc.description)
        return render_template("error.html", code=400, message=exc.description), 400

    @app.errorhandler(403)
    def _forbidden(_exc: Exception) -> tuple[str, int]:
        return render_template("error.html", code=403, message="Your role cannot do this."), 403

    @app.errorhandler(404)
    def _not_found(_exc: Exception) -> tuple[str, int]:
        return render_template("error.html", code=404, message="No such page."), 404

    @app.errorhandler(413)
    def _too_large(_exc: Exception) -> tuple[str, int]:
        logger.warning("upload too large: %s %s", request.method, request.path)
        return render_template("error.html", code=413, message="That upload is too large."), 413

    return app
