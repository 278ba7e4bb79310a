"""Server-side sessions: a copied cookie dies with logout, a password change and the lifetime."""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from local_db import connect
from tests.webui_support import PASSWORD, csrf_token, make_app, sign_in

COOKIE = "footfall_session"
EXPORT = "/export/agg_footfall.csv"
NEW_PASSWORD = "a brand new passphrase"
HOUR = 3600.0


def controlled_clock(app: Flask) -> list[float]:
    """The app's sign-in clock, as a one-item list the test moves (UTC seconds)."""
    now = [1_800_000_000.0]
    app.config["FOOTFALL_AUTH_CLOCK"] = lambda: now[0]
    return now


def copy_cookie(source: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``source``'s session cookie."""
    cookie = source.get_cookie(COOKIE)
    assert cookie is not None, "no session cookie to copy"
    copy = source.application.test_client()
    copy.set_cookie(COOKIE, cookie.value)
    return copy


def exports(client: FlaskClient) -> bool:
    """Whether the CSV export answers (True) or sends the client to sign in (False)."""
    response = client.get(EXPORT)
    if response.status_code == 200:
        return True
    assert response.status_code == 302, response.status_code
    assert response.headers["Location"].startswith("/login")
    return False


def sign_out(client: FlaskClient) -> None:
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


def change_password(
    client: FlaskClient, current: str, new: str, repeat: str | None = None
) -> TestResponse:
    token = csrf_token(client, "/account/password")
    form = {"current": current, "new": new, "repeat": new if repeat is None else repeat}
    return client.post("/account/password", data={**form, "csrf_token": token})


def session_rows(db: Path, username: str) -> list[str]:
    conn = connect(db)
    try:
        rows = conn.execute("SELECT id_hash FROM web_sessions WHERE username = ?", (username,))
        return [str(row[0]) for row in rows]
    finally:
        conn.close()


def test_a_copied_cookie_is_refused_after_logout(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    controlled_clock(app)
    owner = app.test_client()
    assert sign_in(owner, "manager") == 302
    stolen = copy_cookie(owner)
    assert exports(stolen)  # the copy works while the session lives
    sign_out(owner)
    assert not exports(stolen)
    assert not exports(owner)
    assert session_rows(tmp_path / "box.db", "manager") == []


def test_the_cookie_carries_only_a_random_id_and_the_database_only_its_hash(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    client = app.test_client()
    assert sign_in(client, "manager") == 302
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    content = serializer.loads(cookie.value)
    assert "manager" not in str(content)
    sid = content["sid"]
    assert len(sid) >= 32
    stored = session_rows(tmp_path / "box.db", "manager")
    assert stored == [hashlib.sha256(sid.encode()).hexdigest()]


def test_using_a_session_does_not_reissue_its_cookie(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    assert sign_in(client, "manager") == 302
    client.get("/")  # the first page stores its CSRF token in the session
    assert "Set-Cookie" not in client.get("/").headers
    assert "Set-Cookie" not in client.get(EXPORT).headers


def test_a_password_change_ends_every_session_of_that_user_but_this_one(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    controlled_clock(app)
    owner = app.test_client()
    assert sign_in(owner, "manager") == 302
    laptop = app.test_client()
    assert sign_in(laptop, "manager") == 302
    colleague = app.test_client()
    assert sign_in(colleague, "staff") == 302
    stolen = copy_cookie(owner)
    assert exports(stolen) and exports(laptop)

    changed = change_password(owner, PASSWORD, NEW_PASSWORD)
    assert changed.status_code == 302
    assert b"Password changed" in owner.get("/").data
    assert exports(owner)  # this browser carries on, on a new session
    assert not exports(stolen)
    assert not exports(laptop)
    assert colleague.get("/").status_code == 200  # other users keep theirs
    assert sign_in(app.test_client(), "manager") == 401
    assert sign_in(app.test_client(), "manager", NEW_PASSWORD) == 302


def test_a_bad_password_change_is_explained_and_changes_nothing(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    owner = app.test_client()
    assert sign_in(owner, "manager") == 302
    page = owner.get("/account/password")
    assert page.status_code == 200 and b"Current password" in page.data
    for current, new, repeat, reason in [
        ("wrong password!", NEW_PASSWORD, NEW_PASSWORD, b"current password: wrong"),
        (PASSWORD, NEW_PASSWORD, "something else!", b"do not match"),
        (PASSWORD, "short", "short", b"at least 10 characters"),
        (PASSWORD, "manager-2024-pw", "manager-2024-pw", b"must not contain the username"),
    ]:
        refused = change_password(owner, current, new, repeat)
        assert refused.status_code == 400, reason
        assert reason in refused.data
    assert exports(owner)  # still signed in
    assert sign_in(app.test_client(), "manager") == 302  # the old password still works


def test_guessing_the_current_password_is_rate_limited(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    owner = app.test_client()
    assert sign_in(owner, "manager") == 302
    for _ in range(5):
        assert change_password(owner, "wrong password!", NEW_PASSWORD).status_code == 400
    blocked = change_password(owner, PASSWORD, NEW_PASSWORD)
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0


def test_a_session_ends_at_its_absolute_lifetime_however_busy(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    now = controlled_clock(app)
    client = app.test_client()
    signed_in_at = now[0]
    assert sign_in(client, "manager") == 302
    stolen = copy_cookie(client)
    while now[0] + HOUR / 2 < signed_in_at + 12 * HOUR:
        now[0] += HOUR / 2  # in use every half hour: never idle
        assert exports(client) and exports(stolen)
    now[0] = signed_in_at + 12 * HOUR - 1
    assert exports(client)
    now[0] = signed_in_at + 12 * HOUR
    assert not exports(client)
    assert not exports(stolen)


def test_an_idle_session_ends(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    now = controlled_clock(app)
    client = app.test_client()
    assert sign_in(client, "manager") == 302
    now[0] += 119 * 60
    assert exports(client)
    now[0] += 121 * 60  # web.session_idle_minutes is 120
    assert not exports(client)


def test_removing_an_account_ends_its_sessions(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    victim = app.test_client()
    assert sign_in(victim, "manager") == 302
    installer = app.test_client()
    assert sign_in(installer, "installer") == 302
    token = csrf_token(installer, "/users")
    gone = installer.post(
        "/users", data={"action": "delete", "username": "manager", "csrf_token": token}
    )
    assert gone.status_code == 200
    assert session_rows(tmp_path / "box.db", "manager") == []
    assert not exports(victim)
