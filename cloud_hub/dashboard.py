"""The managers' dashboard: sign-in, league table, store, region, ledger and users pages.

Server-rendered (its own templates and static files, vendored htmx for the filters, no
CDN), on the same Flask app and process as the ingest API. Every page, CSV and the
JSON league API is scoped server-side by :meth:`cloud_hub.accounts.User.sees`: a store
or region outside the user's regions is a 404, as if it did not exist. Anonymous users
are sent to sign in (an htmx request gets a 401 with ``HX-Redirect``, the JSON API a
401). Every POST
carries the CSRF token and needs a role that may write (viewers get 403); the users
page is for admins. Each page shows the completeness ledger of the stores it covers.
"""

from __future__ import annotations

import json
import logging
import time
import zoneinfo
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Final, ParamSpec, TypeVar

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import Connection, Engine
from werkzeug.wrappers import Response as BaseResponse

from cloud_hub import accounts, pos, tables
from cloud_hub.accounts import AccountError, User
from cloud_hub.compare import Comparison, StoreRow, compare, load_stores, period
from cloud_hub.ledger import COUNTED, DAY_STATES, compute

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_DAYS: Final = 7
MAX_DAYS: Final = 366
#: Stores per page of the league table, and of the ledger page (each with its days).
LEAGUE_PAGE: Final = 100
LEDGER_PAGE: Final = 50
bp = Blueprint("hub", __name__)
csrf = CSRFProtect()

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'"
)


def _engine() -> Engine:
    engine: Engine = current_app.extensions["footfall_hub_engine"]
    return engine


def _now_ms() -> int:
    clock: Callable[[], float] = current_app.extensions["footfall_hub_clock"]
    return round(clock() * 1000)


def current_user() -> User | None:
    """The signed-in user of this request (from its server-side session), or None."""
    if "hub_user" not in g:
        g.hub_user = None
        sid = session.get("sid")
        if isinstance(sid, str):
            with _engine().begin() as conn:
                g.hub_user = accounts.session_user(conn, sid, _now_ms())
            if g.hub_user is None:
                session.pop("sid", None)
    user: User | None = g.hub_user
    return user


def _to_login() -> BaseResponse:
    target = url_for("hub.login", next=request.full_path.rstrip("?"))
    if request.path.startswith("/api/"):
        return Response(
            json.dumps({"error": "sign in first"}), status=401, mimetype="application/json"
        )
    if request.headers.get("HX-Request") == "true":
        return Response("sign in first", status=401, headers={"HX-Redirect": target})
    return redirect(target)


def signed_in(admin: bool = False) -> Callable[[Callable[P, R]], Callable[P, R | BaseResponse]]:
    """Decorate a view: anonymous → sign-in; a viewer's POST, a non-admin on an admin view → 403."""

    def decorate(view: Callable[P, R]) -> Callable[P, R | BaseResponse]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R | BaseResponse:
            user = current_user()
            if user is None:
                return _to_login()
            if (admin and user.role != "admin") or (
                request.method == "POST" and not user.can_write
            ):
                logger.warning("%s (%s) denied %s %s", user.username, user.role,
                               request.method, request.path)  # fmt: skip
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorate


def _me() -> User:
    user = current_user()
    if user is None:  # pragma: no cover - signed_in() sent anonymous users away
        abort(401)
    return user


def _store_rows(conn: Connection, user: User, region: str | None = None) -> list[StoreRow]:
    visible = accounts.visible_stores(conn, user)
    return load_stores(conn, [s for s, _, r in visible if region in (None, r)])


class BadQueryError(ValueError):
    """A filter value that cannot be used (shown as a 400 with the reason)."""


def _period() -> list[date]:
    """The days the query asks for: ``end`` (ISO date, default yesterday UTC) and ``days``."""
    end_text = request.args.get("end", "").strip()
    try:
        end = (
            date.fromisoformat(end_text)
            if end_text
            else datetime.fromtimestamp(_now_ms() / 1000, UTC).date() - timedelta(days=1)
        )
    except ValueError:
        raise BadQueryError(f"end: {end_text[:20]!r} is not a date (YYYY-MM-DD)") from None
    days_text = request.args.get("days", str(DEFAULT_DAYS)).strip()
    if not days_text.isdigit() or not 1 <= int(days_text) <= MAX_DAYS:
        raise BadQueryError(f"days: {days_text[:20]!r} must be 1 to {MAX_DAYS}")
    return period(end, int(days_text))


def _paged(table: tables.Table, size: int) -> tables.Pager:
    """The page of ``table`` the ``page`` query parameter names (1 when absent).

    Raises:
        BadQueryError: Not a page number of this table.
    """
    text = request.args.get("page", "1")
    count = table.pages(size)
    if not text.isdigit() or not 1 <= int(text) <= count:
        raise BadQueryError(f"page: {text[:20]!r} must be 1 to {count}")
    return table.page(int(text), size)


def _compare(conn: Connection, rows: list[StoreRow]) -> Comparison:
    return compare(conn, rows, _period(), _now_ms())


def _ledger_only(conn: Connection, rows: list[StoreRow]) -> Comparison:
    """The period's ledger without the comparison's sums (the ledger and users pages)."""
    days = _period()
    return Comparison(days, rows, ledger=compute(conn, [(r.id, r.tz) for r in rows], days,
                                                 _now_ms()))  # fmt: skip


def _page(template: str, result: Comparison, **context: object) -> str:
    """Render a page (or its htmx fragment) with the ledger of ``result``."""
    if request.headers.get("HX-Request") == "true" and "fragment" in context:
        template = str(context["fragment"])
    return render_template(
        template, result=result, ledger=result.ledger, counted=sorted(COUNTED),
        states=DAY_STATES, args=request.args, **context,
    )  # fmt: skip


def _csv(table: tables.Table, name: str) -> Response:
    return Response(
        table.csv(), mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )  # fmt: skip


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | BaseResponse | tuple[str, int]:
    """The sign-in form (to the setup page while the hub has no account)."""
    with _engine().connect() as conn:
        if not accounts.has_users(conn):
            return redirect(url_for("hub.setup"))
    if request.method == "GET":
        return render_template("hub_login.html", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip().lower()[:64]
    with _engine().connect() as conn:
        user = accounts.authenticate(conn, username, request.form.get("password", ""))
    if user is None:
        logger.info("failed hub sign-in for %r from %s", username, request.remote_addr)
        flash("Wrong username or password.", "error")
        return render_template("hub_login.html", next=request.form.get("next", "")), 401
    _sign_in(user)
    logger.info("%s signed in to the hub from %s", user.username, request.remote_addr)
    target = request.form.get("next", "")
    safe = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return redirect(target if safe else url_for("hub.league"))


def _sign_in(user: User) -> None:
    session.clear()
    with _engine().begin() as conn:
        session["sid"] = accounts.start_session(conn, user.username, _now_ms())
    session.permanent = True
    g.hub_user = user


@bp.post("/logout")
def logout() -> BaseResponse:
    """Sign out: the session ends on the server too."""
    sid = session.get("sid")
    if isinstance(sid, str):
        with _engine().begin() as conn:
            accounts.end_session(conn, sid)
    session.clear()
    return redirect(url_for("hub.login"))


@bp.route("/setup", methods=["GET", "POST"])
def setup() -> str | BaseResponse | tuple[str, int]:
    """First run: the token ``footfall hub init``/``serve`` printed creates the first admin."""
    with _engine().connect() as conn:
        if accounts.has_users(conn):
            return redirect(url_for("hub.login"))
    if request.method == "GET":
        return render_template("hub_setup.html")
    try:
        with _engine().begin() as conn:
            user = accounts.redeem_setup_token(
                conn, request.form.get("token", ""),
                request.form.get("username", "").strip().lower(), request.form.get("password", ""),
            )  # fmt: skip
    except AccountError as exc:
        logger.warning("hub setup refused from %s: %s", request.remote_addr, exc)
        flash(str(exc), "error")
        return render_template("hub_setup.html"), 400
    _sign_in(user)
    logger.info("hub setup done: admin %s", user.username)
    return redirect(url_for("hub.league"))


@bp.get("/")
@signed_in()
def league() -> str:
    """The league table (default page): every visible store, and the regions' rows."""
    with _engine().connect() as conn:
        region = request.args.get("region") or None
        rows = _store_rows(conn, _me(), region)
        result = _compare(conn, rows)
    sort = request.args.get("sort", "visitors_per_open_hour")
    with _engine().connect() as conn:
        choices = sorted({r for _, _, r in accounts.visible_stores(conn, _me())})
    return _page(
        "hub_league.html", result, fragment="hub_league_fragment.html",
        pager=_paged(tables.league(result, sort), LEAGUE_PAGE), region_table=tables.regions(result),
        regions=choices, sort=sort, columns=tables.LEAGUE_COLUMNS,
    )  # fmt: skip


@bp.get("/league.csv")
@signed_in()
def league_csv() -> Response:
    """The league table as CSV (the same cells as the page)."""
    with _engine().connect() as conn:
        result = _compare(conn, _store_rows(conn, _me(), request.args.get("region") or None))
    return _csv(tables.league(result, request.args.get("sort", "visitors_per_open_hour")), "league")


@bp.get("/regions.csv")
@signed_in()
def regions_csv() -> Response:
    """The regions' table as CSV."""
    with _engine().connect() as conn:
        result = _compare(conn, _store_rows(conn, _me()))
    return _csv(tables.regions(result), "regions")


@bp.get("/api/v1/league")
@signed_in()
def league_api() -> Response:
    """The league table as JSON (same cells, for scripts of a signed-in user)."""
    with _engine().connect() as conn:
        result = _compare(conn, _store_rows(conn, _me(), request.args.get("region") or None))
    table = tables.league(result, request.args.get("sort", "visitors_per_open_hour"))
    return jsonify(
        {"days": [d.isoformat() for d in result.days],
         "stores": [dict(zip(table.columns, row, strict=True)) for row in table.rows]}
    )  # fmt: skip


def _visible_store(conn: Connection, store_id: str) -> StoreRow:
    """The store if this user may see it, else 404 (as if there were none)."""
    rows = [r for r in _store_rows(conn, _me()) if r.id == store_id]
    if not rows:
        logger.info("%s asked for store %r outside their scope", _me().username, store_id[:64])
        abort(404)
    return rows[0]


@bp.get("/stores/<store_id>")
@signed_in()
def store(store_id: str) -> str:
    """One store: its daily chart and table, and its ledger day by day, hour by hour."""
    with _engine().connect() as conn:
        row = _visible_store(conn, store_id)
        result = _compare(conn, [row])
    table = tables.daily(result, row)
    peak = max((int(r[2]) for r in table.rows), default=0)
    return _page(
        "hub_store.html", result, store=row, table=table, peak=max(peak, 1),
        league=tables.league(result, ""),
    )  # fmt: skip


@bp.get("/stores/<store_id>.csv")
@signed_in()
def store_csv(store_id: str) -> Response:
    """A store's daily table as CSV."""
    with _engine().connect() as conn:
        row = _visible_store(conn, store_id)
        result = _compare(conn, [row])
    return _csv(tables.daily(result, row), f"store-{row.id}")


@bp.post("/stores/<store_id>/pos")
@signed_in()
def store_pos(store_id: str) -> BaseResponse | tuple[str, int]:
    """Upload a POS CSV for a store (admins, and managers of its region)."""
    with _engine().connect() as conn:
        row = _visible_store(conn, store_id)
    upload = request.files.get("file")
    name = (upload.filename or "upload.csv") if upload else "upload.csv"
    try:
        if upload is None:
            raise pos.PosError(name, "file", "choose a CSV file")
        text = upload.read().decode("utf-8-sig")
        hours = pos.parse_csv(name, text, zoneinfo.ZoneInfo(row.tz))
        with _engine().begin() as conn:
            stored = pos.store_hours(conn, row.id, hours, _now_ms())
    except (pos.PosError, UnicodeDecodeError) as exc:
        logger.info("POS upload for %s refused: %s", row.id, exc)
        return render_template("hub_error.html", code=400, message=str(exc)), 400
    logger.info("%s imported %d POS hours for %s", _me().username, stored, row.id)
    flash(f"Imported {stored} POS hours.", "ok")
    return redirect(url_for("hub.store", store_id=row.id))


@bp.get("/regions/<region_id>")
@signed_in()
def region(region_id: str) -> str:
    """One region: its totals and its stores' league table."""
    with _engine().connect() as conn:
        if not _me().sees(region_id):
            abort(404)
        rows = _store_rows(conn, _me(), region_id)
        if not rows:
            abort(404)
        result = _compare(conn, rows)
    return _page(
        "hub_region.html", result, region_id=region_id,
        table=tables.league(result, "visitors_per_open_hour"), region_table=tables.regions(result),
    )  # fmt: skip


@bp.get("/regions/<region_id>.csv")
@signed_in()
def region_csv(region_id: str) -> Response:
    """A region's league table as CSV."""
    with _engine().connect() as conn:
        rows = _store_rows(conn, _me(), region_id) if _me().sees(region_id) else []
        if not rows:
            abort(404)
        result = _compare(conn, rows)
    return _csv(tables.league(result, "visitors_per_open_hour"), f"region-{region_id}")


@bp.get("/ledger")
@signed_in()
def ledger() -> str:
    """The completeness ledger of every visible store, day by day and hour by hour."""
    with _engine().connect() as conn:
        rows = _store_rows(conn, _me(), request.args.get("region") or None)
        result = _ledger_only(conn, rows)
    stores_page = _paged(tables.Table(("store",), [[r.id] for r in rows], [r.id for r in rows]),
                         LEDGER_PAGE)  # fmt: skip
    on_page = set(stores_page.table.links)
    shown = [r for r in rows if r.id in on_page]
    return _page("hub_ledger.html", result, pager=stores_page,
                 table=tables.ledger_table(result.ledger, shown))  # fmt: skip


@bp.get("/ledger.csv")
@signed_in()
def ledger_csv() -> Response:
    """The ledger as CSV."""
    with _engine().connect() as conn:
        rows = _store_rows(conn, _me(), request.args.get("region") or None)
        result = _ledger_only(conn, rows)
    return _csv(tables.ledger_table(result.ledger, rows), "ledger")


@bp.route("/users", methods=["GET", "POST"])
@signed_in(admin=True)
def users() -> str | tuple[str, int]:
    """List, add and remove accounts (admins only)."""
    status = 200
    if request.method == "POST":
        try:
            with _engine().begin() as conn:
                if request.form.get("action") == "delete":
                    name = request.form.get("username", "")
                    if name == _me().username:
                        raise AccountError("you cannot delete your own account")
                    accounts.delete_user(conn, name)
                    flash(f"Removed {name}.", "ok")
                else:
                    wanted = {r.strip() for r in request.form.get("regions", "").split(",")}
                    made = accounts.create_user(
                        conn, request.form.get("username", "").strip().lower(),
                        request.form.get("password", ""), request.form.get("role", ""),
                        wanted - {""},
                    )  # fmt: skip
                    flash(f"Added {made.username} ({made.role}).", "ok")
        except AccountError as exc:
            logger.info("users change refused: %s", exc)
            flash(str(exc), "error")
            status = 400
    with _engine().connect() as conn:
        everyone = accounts.list_users(conn)
        result = _ledger_only(conn, _store_rows(conn, _me()))
    return _page("hub_users.html", result, users=everyone, roles=accounts.ROLES), status


def install(app: Flask, engine: Engine, clock: Callable[[], float] = time.time) -> None:
    """Add the dashboard to the hub's app: cookie key, CSRF, security headers, errors."""
    with engine.begin() as conn:
        key = accounts.secret_key(conn)
    app.config.update(
        SECRET_KEY=key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_NAME="footfall_hub_session",
        PERMANENT_SESSION_LIFETIME=timedelta(milliseconds=accounts.SESSION_LIFETIME_MS),
        SESSION_REFRESH_EACH_REQUEST=False,
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_CHECK_DEFAULT=False,  # the dashboard's POSTs only; the APIs are signed
    )
    app.extensions["footfall_hub_engine"] = engine
    app.extensions["footfall_hub_clock"] = clock
    csrf.init_app(app)
    app.register_blueprint(bp)
    app.add_template_filter(tables.utc, "hub_utc")
    app.add_template_filter(date.fromisoformat, "hub_date")

    @app.context_processor
    def _globals() -> dict[str, object]:
        return {"user": current_user() if request.blueprint in ("hub", "fleet") else None}

    @app.after_request
    def _headers(response: BaseResponse) -> BaseResponse:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Frame-Options"] = "DENY"
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[str, int]:
        logger.warning("CSRF rejected %s %s: %s", request.method, request.path, exc.description)
        return render_template("hub_error.html", code=400, message=exc.description), 400

    @app.errorhandler(BadQueryError)
    def _bad_query(exc: BadQueryError) -> tuple[str, int]:
        logger.info("bad query %s: %s", request.full_path, exc)
        return render_template("hub_error.html", code=400, message=str(exc)), 400


def _protect() -> None:
    """Every dashboard POST carries the session's CSRF token."""
    if request.method == "POST":
        csrf.protect()


def _forbidden(_exc: Exception) -> tuple[str, int]:
    return render_template("hub_error.html", code=403, message="Your role cannot do this."), 403


def _not_found(_exc: Exception) -> tuple[str, int]:
    return render_template("hub_error.html", code=404, message="No such page."), 404


def guard(blueprint: Blueprint) -> None:
    """Give a blueprint of hub pages the CSRF check on POST and the hub's 403 and 404 pages."""
    blueprint.before_request(_protect)
    blueprint.register_error_handler(403, _forbidden)
    blueprint.register_error_handler(404, _not_found)


guard(bp)
