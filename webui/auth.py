"""Sign-in, roles and the login rate limit.

Roles map to permissions in one table, :data:`PERMISSIONS`; a view names the
permission it needs with :func:`requires`. Anonymous users get the login page
(or, for an htmx request, a 401 whose ``HX-Redirect`` sends the page there).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
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

from webui.accounts import (
    ROLES,
    AccountError,
    Role,
    User,
    authenticate,
    create_user,
    delete_user,
    get_user,
    has_users,
    list_users,
    redeem_setup_token,
)
from webui.db import read_db, write_db

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


class LoginLimiter:
    """At most ``attempts`` failed logins per client address and per username in ``window_s``."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures[key]
        while times and times[0] <= now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, keys: list[str], now: float | None = None) -> float:
        """Seconds until these keys may try again (0 when they may now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            waits = [
                times[0] + self.window_s - now
                for times in (self._recent(k, now) for k in keys)
                if len(times) >= self.attempts
            ]
        return max(waits, default=0.0)

    def failed(self, keys: list[str], now: float | None = None) -> None:
        """Record one failed attempt for each key."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, keys: list[str]) -> None:
        """Forget the failures of these keys."""
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)


def current_user() -> User | None:
    """The signed-in user of this request (loaded once per request from the session)."""
    if "user" not in g:
        name = session.get("user")
        g.user = get_user(read_db(), name) if isinstance(name, str) else None
        if name is not None and g.user is None:
            session.clear()  # the account was deleted
    user: User | None = g.user
    return user


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
    """The sign-in form; 429 after too many failures from one address or for one name."""
    if not has_users(read_db()):
        return redirect(url_for("auth.setup"))
    if request.method == "GET":
        return render_template("login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip().lower()
    keys = [f"ip:{request.remote_addr}", f"user:{username}"]
    wait = _limiter().retry_after(keys)
    if wait > 0:
        logger.warning("login rate limit for %s / %s", request.remote_addr, username)
        flash(f"Too many failed sign-ins. Try again in {int(wait) + 1} s.", "error")
        page = render_template("login.html", next=request.form.get("next", ""))
        return page, 429, {"Retry-After": str(int(wait) + 1)}
    user = authenticate(read_db(), username, request.form.get("password", ""))
    if user is None:
        _limiter().failed(keys)
        logger.info("failed sign-in for %r from %s", username, request.remote_addr)
        flash("Wrong username or password.", "error")
        return render_template("login.html", next=request.form.get("next", "")), 401
    _limiter().succeeded(keys)
    session.clear()
    session["user"] = user.username
    session.permanent = True
    logger.info("%s signed in from %s", user.username, request.remote_addr)
    return redirect(_safe_next(request.form.get("next")))


@bp.post("/logout")
def logout() -> BaseResponse:
    """Sign out (a POST, so it carries the CSRF token)."""
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> str | BaseResponse | tuple[str, int]:
    """First run: the console's one-time token creates the installer account."""
    if has_users(read_db()):
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("setup.html")
    keys = [f"ip:{request.remote_addr}", "setup"]
    if _limiter().retry_after(keys) > 0:
        flash("Too many wrong setup tokens. Wait a few minutes.", "error")
        return render_template("setup.html"), 429
    try:
        user = redeem_setup_token(
            write_db(),
            request.form.get("token", ""),
            request.form.get("username", "").strip().lower(),
            request.form.get("password", ""),
        )
    except AccountError as exc:
        _limiter().failed(keys)
        logger.warning("setup refused from %s: %s", request.remote_addr, exc)
        flash(str(exc), "error")
        return render_template("setup.html"), 400
    session.clear()
    session["user"] = user.username
    logger.info("setup done: installer account %s", user.username)
    return redirect(url_for("pages.index"))


@bp.route("/users", methods=["GET", "POST"])
@requires("manage_users")
def users() -> str | tuple[str, int]:
    """List, add and remove accounts (installers only)."""
    status = 200
    if request.method == "POST":
        try:
            if request.form.get("action") == "delete":
                name = request.form.get("username", "")
                if name == session.get("user"):
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
