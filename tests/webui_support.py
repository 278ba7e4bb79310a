"""Helpers for dashboard tests: an app on a fresh migrated database, accounts, CSRF tokens."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from local_db import connect
from webui import create_app
from webui.accounts import ROLES, create_user

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_app(tmp_path: Path, config: Path | None = None, **kwargs: object) -> Flask:
    """The dashboard over a fresh database in ``tmp_path`` with one account per role."""
    db = tmp_path / "box.db"
    app = create_app(config or REPO / "examples" / "vtest.yaml", db, testing=True, **kwargs)  # type: ignore[arg-type]
    conn = connect(db)
    try:
        for role in ROLES:
            create_user(conn, role, PASSWORD, role)
    finally:
        conn.close()
    return app


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token a form on ``path`` carries for this client's session."""
    page = client.get(path).get_data(as_text=True)
    match = _TOKEN.search(page)
    assert match, f"no CSRF token in {path}"
    return match.group(1)


def sign_in(client: FlaskClient, username: str, password: str = PASSWORD) -> int:
    """Sign in through the login form; returns the response status."""
    token = csrf_token(client)
    response = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    return response.status_code


def store_copy(tmp_path: Path, layout: str = "supermarket") -> Path:
    """A simulated store's YAML copied into ``tmp_path``, its database in ``tmp_path/box.db``."""
    from appliance.config_edit import read_document

    doc = read_document((REPO / "examples" / "sim" / layout / "store.yaml").read_text())
    doc.root["storage"]["db_path"] = str(tmp_path / "box.db")
    path = tmp_path / "store.yaml"
    path.write_text(doc.text())
    return path


def post_json(client: FlaskClient, path: str, body: object, token: str) -> TestResponse:
    """POST a JSON body with the CSRF token in the ``X-CSRFToken`` header (as editor.js does)."""
    return client.post(path, json=body, headers={"X-CSRFToken": token})
