"""The hub's accounts on both back ends: the one-time setup token, ``hub user add``, the
users page, sessions ending on the server; through the real app (Flask's test client)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from appliance.cli import main
from cloud_hub.app import create_app
from cloud_hub.db import open_engine
from cloud_hub.registry import add_store
from cloud_hub.schema import hub_sessions, hub_users
from tests.hub_dashboard_support import CSRF, PASSWORD
from tests.hub_support import start_hub

TOKEN = re.compile(r"one-time setup token: (\S+)")


@pytest.fixture(scope="module")
def engine(hub_db: str) -> Iterator[Engine]:
    engine = open_engine(hub_db)
    with engine.begin() as conn:
        add_store(conn, "n-one", "North one", "nord", "Europe/Berlin", 100.0, 0)
    yield engine
    engine.dispose()


def _token(client: FlaskClient, path: str = "/login") -> str:
    found = CSRF.search(client.get(path).get_data(as_text=True))
    assert found
    return found[1]


def _users(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(hub_users)).scalar_one())


def test_the_first_admin_comes_from_the_one_time_setup_token(
    hub_db: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["hub", "init", "--db", hub_db]) == 0
    first = TOKEN.findall(capsys.readouterr().out)
    assert main(["hub", "init", "--db", hub_db]) == 0  # a new token replaces the old one
    printed = TOKEN.findall(capsys.readouterr().out)
    assert len(first) == len(printed) == 1 and first != printed
    client = create_app(engine).test_client()
    assert client.get("/").headers["Location"].startswith("/login")
    assert client.get("/login").headers["Location"] == "/setup"
    form = {"csrf_token": _token(client, "/setup"), "username": "ada", "password": PASSWORD}
    for wrong in ("not-the-token", first[0]):
        answer = client.post("/setup", data={**form, "token": wrong})
        assert answer.status_code == 400 and "wrong token" in answer.get_data(as_text=True)
    assert _users(engine) == 0
    short = client.post("/setup", data={**form, "token": printed[0], "password": "short"})
    assert short.status_code == 400 and _users(engine) == 0
    done = client.post("/setup", data={**form, "token": printed[0]})
    assert done.status_code == 302 and _users(engine) == 1
    assert client.get("/users").status_code == 200  # signed in as the admin
    again = create_app(engine).test_client()
    assert again.get("/setup").headers["Location"] == "/login"  # setup is closed
    assert main(["hub", "init", "--db", hub_db]) == 0
    assert TOKEN.findall(capsys.readouterr().out) == []  # no token once an account exists


@pytest.mark.parametrize(
    ("argv", "password", "reason"),
    [
        (["mia", "--role", "manager"], PASSWORD, "a manager needs at least one region"),
        (["mia", "--role", "manager", "--region", "mars"], PASSWORD, "unknown region(s): mars"),
        (["mia", "--role", "viewer"], "short", "password: at least 10 characters"),
        (["Mia!", "--role", "viewer"], PASSWORD, "username 'Mia!'"),
        (["boss", "--role", "admin", "--region", "nord"], PASSWORD, "an admin sees every region"),
    ],
)
def test_user_add_refuses_bad_input_with_exit_2(
    hub_db: str,
    engine: Engine,
    argv: list[str],
    password: str,
    reason: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _users(engine)
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert main(["hub", "user", "add", *argv, "--db", hub_db]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hub user add: ") and reason in err, err
    assert _users(engine) == before


def test_user_add_and_the_users_page(
    hub_db: str,
    engine: Engine,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    argv = ["hub", "user", "add", "mia", "--role", "manager", "--region", "nord", "--db", hub_db]
    assert main(argv) == 0
    assert "account mia added: manager, nord" in capsys.readouterr().out
    mia = create_app(engine).test_client()
    signed = mia.post(
        "/login", data={"csrf_token": _token(mia), "username": "mia", "password": PASSWORD}
    )
    assert signed.status_code == 302
    assert mia.get("/users").status_code == 403
    admin = create_app(engine).test_client()
    admin.post(
        "/login", data={"csrf_token": _token(admin), "username": "ada", "password": PASSWORD}
    )
    token = _token(admin, "/users")
    added = admin.post(
        "/users",
        data={
            "csrf_token": token,
            "username": "vic",
            "role": "viewer",
            "password": PASSWORD,
            "regions": "",
        },
    )
    assert added.status_code == 200 and "Added vic (viewer)" in added.get_data(as_text=True)
    refused = admin.post(
        "/users",
        data={"csrf_token": token, "username": "max", "role": "manager", "password": PASSWORD},
    )
    assert refused.status_code == 400 and _users(engine) == 3
    # removing mia ends her session on the server: her cookie no longer works
    admin.post("/users", data={"csrf_token": token, "action": "delete", "username": "mia"})
    assert mia.get("/").headers["Location"].startswith("/login")
    # signing out ends the admin's session row
    with engine.connect() as conn:
        sessions = conn.execute(select(func.count()).select_from(hub_sessions)).scalar_one()
    admin.post("/logout", data={"csrf_token": token})
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(hub_sessions)).scalar_one() == (
            sessions - 1
        )
    assert admin.get("/").status_code == 302


def test_hub_serve_prints_the_setup_token_after_its_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hub.db"
    hub = start_hub(url, tmp_path / "hub.log")
    try:
        assert hub.process.stdout is not None
        token = TOKEN.findall(hub.process.stdout.readline())
        assert len(token) == 1
        session = requests.Session()
        page = session.get(hub.url + "/setup", timeout=30)
        csrf = CSRF.search(page.text)
        assert csrf
        form = {"csrf_token": csrf[1], "token": token[0], "username": "ada", "password": PASSWORD}
        done = session.post(hub.url + "/setup", data=form, timeout=30, allow_redirects=False)
        assert done.status_code == 302
        assert "ada · admin" in session.get(hub.url + "/", timeout=30).text
    finally:
        hub.stop()
