"""Dashboard accounts: first-run setup token, sign-in, roles, CSRF, rate limit, headers."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from local_db import connect
from tests.webui_support import PASSWORD, REPO, csrf_token, make_app, sign_in
from webui import create_app
from webui.accounts import AccountError, authenticate, issue_setup_token, list_users
from webui.serve import setup_token, start_server

EXAMPLE = REPO / "examples" / "vtest.yaml"


def test_fresh_box_has_no_default_password_only_a_one_time_setup_token(tmp_path: Path) -> None:
    app = create_app(EXAMPLE, tmp_path / "box.db", testing=True)
    client = app.test_client()
    assert client.get("/").headers["Location"].startswith("/login")
    assert client.get("/login").headers["Location"] == "/setup"
    token = setup_token(app)
    assert token
    form = {
        "username": "ines",
        "password": "long enough pw",
        "csrf_token": csrf_token(client, "/setup"),
    }
    wrong = client.post("/setup", data={**form, "token": token + "x"})
    assert wrong.status_code == 400
    assert b"wrong token" in wrong.data
    made = client.post("/setup", data={**form, "token": token})
    assert made.status_code == 302
    assert client.get("/").status_code == 200  # signed in as the new installer
    conn = connect(tmp_path / "box.db")
    try:
        assert [(u.username, u.role) for u in list_users(conn)] == [("ines", "installer")]
        stored = conn.execute("SELECT password_hash FROM web_users").fetchone()[0]
        assert "long enough pw" not in stored and stored.startswith("scrypt:")
        assert issue_setup_token(conn) is None  # an account exists: no more tokens
    finally:
        conn.close()
    other = app.test_client()
    again = other.post(
        "/setup",
        data={**form, "username": "eve", "token": token, "csrf_token": csrf_token(other, "/login")},
    )
    assert again.status_code == 302 and again.headers["Location"] == "/login"


def test_sign_in_and_out(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    assert sign_in(client, "manager", "wrong password!") == 401
    assert client.get("/").status_code == 302
    assert sign_in(client, "manager") == 302
    page = client.get("/").get_data(as_text=True)
    assert "manager · manager" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    assert client.post("/logout", data={"csrf_token": token.group(1)}).status_code == 302
    assert client.get("/").status_code == 302


def test_next_only_redirects_inside_the_dashboard(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    token = csrf_token(client)
    data = {"username": "staff", "password": PASSWORD, "csrf_token": token}
    evil = client.post("/login", data={**data, "next": "//evil.example/x"})
    assert evil.headers["Location"] == "/"


def test_htmx_request_without_session_gets_401_and_a_redirect_header(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


def test_state_changing_requests_need_the_csrf_token(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    no_token = client.post("/login", data={"username": "staff", "password": PASSWORD})
    assert no_token.status_code == 400
    assert b"CSRF" in no_token.data
    assert sign_in(client, "installer") == 302
    add = {"username": "newbie", "password": PASSWORD, "role": "staff"}
    assert client.post("/users", data=add).status_code == 400
    assert client.post("/users", data=add, headers={"X-CSRFToken": "forged"}).status_code == 400
    good = client.post("/users", data={**add, "csrf_token": csrf_token(client, "/users")})
    assert good.status_code == 200
    assert b"Added newbie (staff)" in good.data


def test_login_is_rate_limited_per_address_and_per_name(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    for _ in range(5):
        assert sign_in(client, "staff", "not the password") == 401
    # the right password is refused too while the limit holds
    token = csrf_token(client)
    blocked = client.post(
        "/login", data={"username": "staff", "password": PASSWORD, "csrf_token": token}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    # another address guessing the same account is blocked as well
    other = client.application.test_client()
    token = csrf_token(other)
    elsewhere = other.post(
        "/login",
        data={"username": "staff", "password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert elsewhere.status_code == 429


def test_installer_manages_accounts_and_bad_input_is_explained(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    client = app.test_client()
    sign_in(client, "installer")
    token = csrf_token(client, "/users")
    short = client.post(
        "/users", data={"username": "x", "password": "short", "role": "staff", "csrf_token": token}
    )
    assert short.status_code == 400 and b"at least 10 characters" in short.data
    role = client.post(
        "/users", data={"username": "x", "password": PASSWORD, "role": "owner", "csrf_token": token}
    )
    assert role.status_code == 400 and b"role &#39;owner&#39;" in role.data
    gone = client.post(
        "/users", data={"action": "delete", "username": "staff", "csrf_token": token}
    )
    assert gone.status_code == 200
    conn = connect(tmp_path / "box.db")
    try:
        assert "staff" not in [u.username for u in list_users(conn)]
        with pytest.raises(AccountError, match="taken"):
            from webui.accounts import create_user

            create_user(conn, "manager", PASSWORD, "staff")
        assert authenticate(conn, "nobody", PASSWORD) is None
    finally:
        conn.close()


def test_session_cookie_and_security_headers(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    token = csrf_token(client)
    response = client.post(
        "/login", data={"username": "staff", "password": PASSWORD, "csrf_token": token}
    )
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get("/")
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"


def test_footfall_web_serves_on_a_free_port_and_prints_the_setup_token(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "web", "--config", str(EXAMPLE),
         "--db", str(tmp_path / "box.db"), "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split("dashboard: ", 1)[1].strip()
        token_line = proc.stdout.readline()
        assert "setup token" in token_line
        with urllib.request.urlopen(f"{url}/setup", timeout=10) as page:
            assert page.status == 200
            assert b"Set up this box" in page.read()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{url}/no-such-page", timeout=10)
        assert missing.value.code == 404
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0


def test_start_server_answers_on_the_port_it_reports(tmp_path: Path) -> None:
    server = start_server(make_app(tmp_path))
    try:
        with urllib.request.urlopen(f"{server.url}/login", timeout=10) as page:
            assert b"Sign in" in page.read()
    finally:
        server.stop()
