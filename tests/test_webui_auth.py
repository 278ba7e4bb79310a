"""Dashboard accounts: first-run setup token, sign-in, roles, CSRF, rate limit, headers."""

from __future__ import annotations

import logging
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.config import ConfigError
from local_db import connect
from local_db.web_users import get_credentials
from tests.webui_support import PASSWORD, REPO, csrf_token, make_app, sign_in
from webui import create_app
from webui.accounts import AccountError, authenticate, create_user, issue_setup_token, list_users
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
        stored = get_credentials(conn, "ines")
        assert stored is not None
        assert "long enough pw" not in stored.password_hash
        assert stored.password_hash.startswith("scrypt:")
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


def attempt(
    client: FlaskClient, username: str, password: str, address: str = "127.0.0.1", **headers: str
) -> TestResponse:
    """One sign-in from ``address`` (the peer the server sees)."""
    token = csrf_token(client)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
        headers=headers,
    )  # fmt: skip


def test_a_guessing_address_is_stopped_but_the_real_user_elsewhere_signs_in(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path)
    guesser = app.test_client()
    for _ in range(5):
        assert attempt(guesser, "staff", "not the password").status_code == 401
    # that address is stopped, even with the right password, and for every name
    blocked = attempt(guesser, "staff", PASSWORD)
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["Retry-After"]) <= 300
    assert attempt(guesser, "manager", PASSWORD).status_code == 429
    # the name is not locked: its real user at another address signs in
    assert attempt(app.test_client(), "staff", PASSWORD, "10.0.0.9").status_code == 302


def test_failures_for_a_name_slow_down_the_addresses_that_made_them(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    now = [1_800_000_000.0]
    app.config["FOOTFALL_AUTH_CLOCK"] = lambda: now[0]
    client = app.test_client()
    for i in range(5):  # a botnet: many addresses, a few guesses each
        assert attempt(client, "staff", "guess one", f"10.1.0.{i}").status_code == 401
    assert attempt(client, "staff", "guess two", "10.1.0.0").status_code == 429
    assert attempt(client, "staff", "guess one", "10.1.0.9").status_code == 401  # fresh address
    waits = []
    for _ in range(3):  # each failure for the name doubles the wait of the addresses that failed
        slowed = attempt(client, "staff", "guess two", "10.1.0.1")
        assert slowed.status_code == 429
        waits.append(int(slowed.headers["Retry-After"]))
        now[0] += waits[-1]
        assert attempt(client, "staff", "guess two", "10.1.0.1").status_code == 401
    assert waits == [2, 4, 8]
    assert attempt(client, "staff", PASSWORD, "10.2.0.1").status_code == 302  # still no lockout


def test_an_ipv6_guesser_is_counted_by_its_64_bit_prefix(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    for i in range(1, 6):
        assert attempt(client, "staff", "wrong", f"2001:db8::{i}").status_code == 401
    assert attempt(client, "manager", PASSWORD, "2001:db8::99").status_code == 429
    assert attempt(client, "manager", PASSWORD, "2001:db8:0:1::1").status_code == 302


def test_login_failures_survive_a_restart(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    for _ in range(5):
        assert attempt(client, "staff", "not the password").status_code == 401
    restarted = create_app(EXAMPLE, tmp_path / "box.db", testing=True).test_client()
    assert attempt(restarted, "staff", PASSWORD).status_code == 429


def test_concurrent_guesses_get_no_more_tries_than_the_limit(tmp_path: Path) -> None:
    server = start_server(make_app(tmp_path))
    try:
        openers = []
        for _ in range(30):
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
            with opener.open(f"{server.url}/login", timeout=30) as page:
                token = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode())
            assert token
            openers.append((opener, token.group(1)))
        start = threading.Barrier(len(openers))

        def guess(opener: urllib.request.OpenerDirector, token: str) -> int:
            form = {"username": "staff", "password": "a guess", "csrf_token": token}
            start.wait()
            try:
                with opener.open(
                    f"{server.url}/login", urllib.parse.urlencode(form).encode(), timeout=60
                ) as response:
                    return int(response.status)
            except urllib.error.HTTPError as exc:
                return exc.code

        with ThreadPoolExecutor(len(openers)) as pool:
            answers = list(pool.map(lambda pair: guess(*pair), openers))
    finally:
        server.stop()
    assert sorted(answers) == [401] * 5 + [429] * 25


def proxied_config(tmp_path: Path, web: str) -> Path:
    config = tmp_path / "store.yaml"
    config.write_text(EXAMPLE.read_text() + f"web: {web}\n")
    return config


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = proxied_config(tmp_path, "{trusted_proxies: [127.0.0.1/32, 10.9.0.0/16]}")
    client = make_app(tmp_path, config).test_client()
    caplog.set_level(logging.INFO, logger="webui.auth")
    # through the proxies: the rightmost address they did not add is the client
    chain = "198.51.100.1, 203.0.113.5, 10.9.0.2"
    for _ in range(5):
        assert attempt(client, "staff", "wrong", X_Forwarded_For=chain).status_code == 401
    assert "from 203.0.113.5" in caplog.text and "198.51.100.1" not in caplog.text
    assert attempt(client, "staff", PASSWORD, X_Forwarded_For=chain).status_code == 429
    # another customer behind the same proxy is not the guesser
    other = attempt(client, "staff", PASSWORD, X_Forwarded_For="203.0.113.6")
    assert other.status_code == 302
    # a client that is not a proxy cannot pick its address with the header
    for i in range(5):
        spoof = attempt(client, "manager", "wrong", "192.0.2.7", X_Forwarded_For=f"198.51.100.{i}")
        assert spoof.status_code == 401
    spoof = attempt(client, "manager", PASSWORD, "192.0.2.7", X_Forwarded_For="1.2.3.4")
    assert spoof.status_code == 429


def test_a_bad_trusted_proxy_is_a_located_config_error(tmp_path: Path) -> None:
    config = proxied_config(tmp_path, "{trusted_proxies: [10.9.0.0/16, not-an-address]}")
    with pytest.raises(ConfigError) as bad:
        create_app(config, tmp_path / "x.db")
    (issue,) = bad.value.issues
    assert (issue.path, issue.line) == (
        "web.trusted_proxies.1",
        len(config.read_text().splitlines()),
    )
    assert "not a valid IPv4 or IPv6 network" in issue.message


def test_cross_origin_posts_are_refused_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(tmp_path).test_client()
    caplog.set_level(logging.WARNING)
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://localhost:8081"},  # another port is another origin
        {"Origin": "https://localhost"},  # and so is another scheme
        {"Referer": "http://evil.example/form.html"},
    ):
        refused = attempt(client, "staff", PASSWORD, **headers)
        assert refused.status_code == 403, headers
        assert b"cross-origin" in refused.data
        assert client.get("/").status_code == 302  # not signed in
    assert "cross-origin POST /login refused" in caplog.text
    assert "Traceback" not in caplog.text
    # no token and a foreign origin: the origin is named, not just the token
    assert b"evil.example" in client.post("/login", headers={"Origin": "http://evil.example"}).data
    assert attempt(client, "staff", PASSWORD, Origin="http://localhost").status_code == 302
    assert attempt(client, "staff", PASSWORD, Referer="http://localhost/login").status_code == 302


def test_behind_a_tls_proxy_the_https_origin_is_the_dashboard(tmp_path: Path) -> None:
    client = make_app(tmp_path, proxied_config(tmp_path, "{https: true}")).test_client()
    assert attempt(client, "staff", PASSWORD, Origin="https://localhost").status_code == 302


def test_passwords_that_contain_the_username_are_refused(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    assert sign_in(client, "installer") == 302
    token = csrf_token(client, "/users")
    for name, password in [("mariana", "mariana"), ("mariana", "Mariana-2024!"),
                           ("longusername", "longusername")]:  # fmt: skip
        form = {"username": name, "password": password, "role": "staff", "csrf_token": token}
        refused = client.post("/users", data=form)
        assert refused.status_code == 400
        assert b"must not contain the username" in refused.data or b"at least 10" in refused.data
    conn = connect(tmp_path / "box.db")
    try:
        with pytest.raises(AccountError, match="must not contain the username"):
            create_user(conn, "mariana", "Mariana-2024!", "staff")
        assert "mariana" not in [u.username for u in list_users(conn)]
    finally:
        conn.close()


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
    # not no-referrer: that makes browsers send "Origin: null" on the dashboard's own POSTs
    assert page.headers["Referrer-Policy"] == "same-origin"


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


def test_serving_plain_http_beyond_loopback_logs_a_loud_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(tmp_path)
    caplog.set_level(logging.WARNING, logger="webui.ops")
    start_server(app, host="127.0.0.1").stop()
    assert "plain HTTP" not in caplog.text
    start_server(app, host="0.0.0.0").stop()
    warning = next(r for r in caplog.records if "plain HTTP" in r.getMessage())
    assert warning.levelno == logging.WARNING
    assert "TLS proxy" in warning.getMessage() and "0.0.0.0" in warning.getMessage()


def test_stop_is_prompt_while_clients_hold_connections_open(tmp_path: Path) -> None:
    server = start_server(make_app(tmp_path))
    parts = urllib.parse.urlsplit(server.url)
    address = (parts.hostname or "", parts.port or 0)
    with socket.create_connection(address) as kept_alive, socket.create_connection(address):
        kept_alive.sendall(b"GET /login HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status_line = kept_alive.makefile("rb").readline()
        assert status_line.startswith(b"HTTP/1.1 200")  # answered; the connection stays open
        started = time.monotonic()
        server.stop()
        took = time.monotonic() - started
    assert took < 2, f"stop took {took:.1f} s"
    assert not server.thread.is_alive()
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()
