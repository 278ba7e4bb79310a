"""Sign-in, roles, server-side sessions, the login rate limit and the Origin check.

Roles map to permissions in one table, :data:`PERMISSIONS`; a view names the
permission it needs with :func:`requires`. Anonymous users get the login page
(or, for an htmx request, a 401 whose ``HX-Redirect`` sends the page there).
The session cookie carries only a session id (:mod:`webui.sessions`); failed
sign-ins are counted in SQLite (:mod:`webui.limiter`). Every POST from a
browser must come from the dashboard's own origin (:func:`refuse_cross_origin`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import wraps
from typing import Literal, ParamSpec, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from appliance.config import WebConfig
from webui.accounts import (
    ROLES,
    AccountError,
    Role,
    User,
    authenticate,
    change_password,
    create_user,
    delete_user,
    get_user,
    has_users,
    list_users,
    redeem_setup_token,
)
from webui.db import read_db, write_db
from webui.limiter import Attempt, LoginLimiter
from webui.sessions import SessionPolicy, end_session, session_user, start_session

logger = logging.getLogger(__name__)

Permission = Literal["view", "acknowledge", "export", "edit_config", "live_camera", "manage_users"]
PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "staff": frozenset({"view"}),
    "manager": frozenset({"view", "acknowledge", "export"}),
    "installer": frozenset({"view", "edit_config", "live_camera", "manage_users"}),
}

P = ParamSpec("P")
R = TypeVar("R")

bp = Blueprint("auth", __name__)

#: Usernames are at most 64 characters; longer input is counted under its first 65.
_NAME_KEY_CHARS = 65
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _now_ms() -> int:
    """UTC milliseconds now: the app's ``FOOTFALL_AUTH_CLOCK`` (UTC seconds; tests) or the wall."""
    clock: Callable[[], float] = current_app.config.get("FOOTFALL_AUTH_CLOCK", time.time)
    return round(clock() * 1000)


def _web() -> WebConfig:
    web: WebConfig = current_app.extensions["footfall"].config.web
    return web


def _policy() -> SessionPolicy:
    web = _web()
    return SessionPolicy(
        lifetime_ms=round(web.session_hours * 3_600_000),
        idle_ms=round(web.session_idle_minutes * 60_000),
    )


def current_user() -> User | None:
    """The signed-in user of this request (loaded once per request from its server-side session).

    A session that has ended (logout, password change, lifetime, idle, account
    removed) leaves the request anonymous and its id is dropped from the cookie.
    """
    if "user" not in g:
        g.user = None
        sid = session.get("sid")
        if isinstance(sid, str):
            name = session_user(read_db(), write_db, sid, _now_ms(), _policy())
            g.user = None if name is None else get_user(read_db(), name)
            if g.user is None:
                session.pop("sid", None)
    user: User | None = g.user
    return user


def _sign_in(user: User) -> None:
    """Start a new server-side session for ``user`` in a fresh cookie."""
    session.clear()
    session["sid"] = start_session(write_db(), user.username, _now_ms(), _policy())
    session.permanent = True
    g.user = user


def _me() -> User:
    """The signed-in user, in a view that :func:`requires` a permission (so there is one)."""
    user = current_user()
    if user is None:  # pragma: no cover - requires() sent anonymous users to sign in
        abort(401)
    return user


def _reserve(username: str) -> Attempt:
    """Reserve a sign-in attempt for ``username`` from this request's client address."""
    return _limiter().reserve(write_db(), request.remote_addr, username, _now_ms())


def _too_many(
    attempt: Attempt, message: str, template: str, **context: str
) -> tuple[str, int, dict[str, str]]:
    """The 429 page for a refused attempt, with ``Retry-After``."""
    logger.warning(
        "sign-in rate limit on %s for %s / %r", request.path, request.remote_addr, attempt.username
    )
    retry_s = str(max(1, math.ceil(attempt.wait_s)))
    flash(f"{message} Try again in {retry_s} s.", "error")
    return render_template(template, **context), 429, {"Retry-After": retry_s}


def _origin(url: str) -> tuple[str, str, int] | None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[parts.scheme]


def refuse_cross_origin() -> tuple[str, int] | None:
    """Before each state-changing request: 403 unless it comes from the dashboard's own origin.

    The browser's ``Origin`` (or, without one, ``Referer``) must name this
    dashboard: its scheme, host and port, or, with ``web.https`` (a TLS proxy in
    front), the same host over HTTPS. Requests that carry neither header (not
    from a browser) go on to the CSRF check, which they must pass as well.
    """
    if request.method in _SAFE_METHODS:
        return None
    header = "Origin"
    claimed = request.headers.get(header)
    if claimed is None:
        header = "Referer"
        claimed = request.headers.get(header)
        if claimed is None:
            return None
    here = _origin(request.host_url)
    allowed = {here}
    if here is not None and _web().https:
        allowed.add(_origin(f"https://{request.host}"))
    origin = _origin(claimed)
    if origin is not None and origin in allowed:
        return None
    shown = claimed[:200]
    logger.warning(
        "cross-origin %s %s refused: %s %s from %s",
        request.method,
        request.path,
        header,
        shown,
        request.remote_addr,
    )
    message = f"cross-origin request refused: {header} {shown} is not this dashboard"
    return render_template("error.html", code=403, message=message), 403


def can(permission: Permission, user: User | None = None) -> bool:
    """Whether ``user`` (default: the signed-in user) holds ``permission``."""
    user = user or current_user()
    return user is not None and permission in PERMISSIONS[user.role]


def _to_login() -> BaseResponse:
    target = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request") == "true":
        return Response("sign in first", status=401, headers={"HX-Redirect": target})
    return redirect(target)


def requires(permission: Permission) -> Callable[[Callable[P, R]], Callable[P, R | BaseResponse]]:
    """Decorate a view: anonymous → login page, signed in without ``permission`` → 403."""

    def decorate(view: Callable[P, R]) -> Callable[P, R | BaseResponse]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R | BaseResponse:
            user = current_user()
            if user is None:
                return _to_login()
            if permission not in PERMISSIONS[user.role]:
                logger.warning(
                    "%s (%s) denied %s %s", user.username, user.role, request.method, request.path
                )
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("pages.index")


def _limiter() -> LoginLimiter:
    limiter: LoginLimiter = current_app.extensions["footfall_login_limiter"]
    return limiter


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """The sign-in form; 429 while this address (or, slowed, this name) must wait."""
    if not has_users(read_db()):
        return redirect(url_for("auth.setup"))
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip().lower()[:_NAME_KEY_CHARS]
    attempt = _reserve(username)
    if attempt.wait_s > 0:
        return _too_many(
            attempt, "Too many failed sign-ins.", "login.html", next=request.form.get("next", "")
        )
    user = authenticate(read_db(), username, request.form.get("password", ""))
    if user is None:
        logger.info("failed sign-in for %r from %s", username, request.remote_addr)
        flash("Wrong username or password.", "error")
        return render_template("login.html", next=request.form.get("next", "")), 401
    _limiter().succeeded(write_db(), attempt)
    _sign_in(user)
    logger.info("%s signed in from %s", user.username, request.remote_addr)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> BaseResponse:
    """Sign out (a POST, so it carries the CSRF token): the session ends on the server too."""
    user = current_user()
    sid = session.get("sid")
    if isinstance(sid, str):
        end_session(write_db(), sid)
    if user is not None:
        logger.info("%s signed out", user.username)
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@requires("view")
def password() -> str | BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Change one's own password (the current one required); ends every other session."""
    user = _me()
    if request.method == "GET":
        return render_template("password.html")
    attempt = _reserve(user.username)
    if attempt.wait_s > 0:
        return _too_many(attempt, "Too many wrong passwords.", "password.html")
    try:
        if authenticate(read_db(), user.username, request.form.get("current", "")) is None:
            raise AccountError("current password: wrong")
        _limiter().succeeded(write_db(), attempt)
        new = request.form.get("new", "")
        if new != request.form.get("repeat", ""):
            raise AccountError("new password: the two entries do not match")
        ended = change_password(write_db(), user.username, new)
    except AccountError as exc:
        logger.info("password change for %s refused: %s", user.username, exc)
        flash(str(exc), "error")
        return render_template("password.html"), 400
    _sign_in(user)
    logger.info("%s changed their password; %d session(s) ended", user.username, ended)
    flash("Password changed. Every other sign-in of this account has ended.", "ok")
    return redirect(url_for("pages.index"))


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> str | BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """First run: the console's one-time token creates the installer account."""
    if has_users(read_db()):
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("setup.html")
    attempt = _reserve("(setup)")
    if attempt.wait_s > 0:
        return _too_many(attempt, "Too many wrong setup tokens.", "setup.html")
    try:
        user = redeem_setup_token(
            write_db(),
            request.form.get("token", ""),
            request.form.get("username", "").strip().lower(),
            request.form.get("password", ""),
        )
    except AccountError as exc:
        logger.warning("setup refused from %s: %s", request.remote_addr, exc)
        flash(str(exc), "error")
        return render_template("setup.html"), 400
    _limiter().succeeded(write_db(), attempt)
    _sign_in(user)
    logger.info("setup done: installer account %s", user.username)
    return redirect(url_for("pages.index"))


@bp.route("/users", methods=["GET", "POST"])
@requires("manage_users")
def users() -> str | tuple[str, int]:
    """List, add and remove accounts (installers only)."""
    me = _me()
    status = 200
    if request.method == "POST":
        try:
            if request.form.get("action") == "delete":
                name = request.form.get("username", "")
                if name == me.username:
                    raise AccountError("you cannot delete your own account")
                delete_user(write_db(), name)
                flash(f"Removed {name}.", "ok")
            else:
                made = create_user(
                    write_db(),
                    request.form.get("username", "").strip().lower(),
                    request.form.get("password", ""),
                    request.form.get("role", ""),
                )
                flash(f"Added {made.username} ({made.role}).", "ok")
        except AccountError as exc:
            flash(str(exc), "error")
            status = 400
    return render_template("users.html", users=list_users(read_db()), roles=ROLES), status
