"""Who may open what: every route of the dashboard against every role.

The table is written out by hand. A route the app has but the table lacks fails
the test, so every new route must say here who may use it.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from appliance.box.health import Health
from appliance.config import load_config
from tests.webui_support import REPO, csrf_token, make_app, raise_alert, sign_in
from webui.ops import ops_blueprint

EXAMPLE = REPO / "examples" / "vtest.yaml"

LOGIN = "login"  # a 302 to the sign-in page
WHO = ("anonymous", "staff", "manager", "installer")


def expect(
    anonymous: int | str, staff: int | str, manager: int | str, installer: int | str
) -> dict[str, int | str]:
    return dict(zip(WHO, (anonymous, staff, manager, installer), strict=True))


VIEW = expect(LOGIN, 200, 200, 200)
EXPORT = expect(LOGIN, 403, 200, 403)
USERS = expect(LOGIN, 403, 403, 200)
OPEN = expect(200, 200, 200, 200)
INSTALLER = expect(LOGIN, 403, 403, 200)
# installer mode's saves, posted with no body: only an installer gets as far as a 400
INSTALLER_SAVE = expect(LOGIN, 403, 403, 400)

#: rule → (method, a URL of that rule, the answer per role)
ROUTES: dict[str, tuple[str, str, dict[str, int | str]]] = {
    "/": ("GET", "/", VIEW),
    "/live": ("GET", "/live", VIEW),
    "/heatmap": ("GET", "/heatmap", VIEW),
    "/dwell": ("GET", "/dwell", VIEW),
    "/queues": ("GET", "/queues", VIEW),
    "/flow": ("GET", "/flow", VIEW),
    "/trends": ("GET", "/trends", VIEW),
    "/compare": ("GET", "/compare", VIEW),
    "/health": ("GET", "/health", VIEW),
    "/alerts": ("GET", "/alerts", VIEW),
    # acknowledging alert 1 (raised by box_app): managers are sent back to the alerts page
    "/alerts/<int:alert_id>/ack": ("POST", "/alerts/1/ack", expect(LOGIN, 403, "302 /alerts", 403)),
    "/export/<table>.csv": ("GET", "/export/agg_footfall.csv", EXPORT),
    "/users": ("GET", "/users", USERS),
    "/account/password": ("GET", "/account/password", VIEW),  # one's own password
    "/installer/": ("GET", "/installer/", INSTALLER),
    "/installer/layout": ("POST", "/installer/layout", INSTALLER_SAVE),
    "/installer/plan/size": ("POST", "/installer/plan/size", INSTALLER_SAVE),
    "/installer/plan/scale": ("POST", "/installer/plan/scale", INSTALLER_SAVE),
    "/installer/plan/image": ("GET", "/installer/plan/image", expect(LOGIN, 403, 403, 404)),
    "/installer/cameras/<camera_id>": ("GET", "/installer/cameras/courtyard", INSTALLER),
    # the live frame: no frame provider in this app, so 404 even for the installer
    "/installer/cameras/<camera_id>/frame.jpg": (
        "GET",
        "/installer/cameras/courtyard/frame.jpg",
        expect(LOGIN, 403, 403, 404),
    ),
    "/installer/cameras/<camera_id>/calibration/check": (
        "POST",
        "/installer/cameras/courtyard/calibration/check",
        INSTALLER_SAVE,
    ),
    "/installer/cameras/<camera_id>/calibration": (
        "POST",
        "/installer/cameras/courtyard/calibration",
        INSTALLER_SAVE,
    ),
    "/login": ("GET", "/login", OPEN),
    "/setup": ("GET", "/setup", expect(LOGIN, LOGIN, LOGIN, LOGIN)),  # closed once accounts exist
    # the first-boot wizard: no login (its token is the key), a 404 once setup is done or
    # on a box that never had a pending setup (tests/test_wizard.py tests it while open)
    "/wizard": ("GET", "/wizard", expect(404, 404, 404, 404)),
    "/static/<path:filename>": ("GET", "/static/app.css", OPEN),
    "/logout": ("POST", "/logout", expect(LOGIN, LOGIN, LOGIN, LOGIN)),  # asked last: it signs out
    # the box's monitoring endpoints: no store data, no login (webui/ops.py)
    "/healthz": ("GET", "/healthz", expect(503, 503, 503, 503)),  # degraded: no camera runs
    "/metrics": ("GET", "/metrics", OPEN),
}


def box_app(tmp_path: Path) -> Flask:
    """The dashboard as the box serves it (with its health's ops endpoints), one alert raised."""
    config = load_config(EXAMPLE)
    app = make_app(tmp_path, blueprints=[ops_blueprint(Health(config, tmp_path / "box.db"))])
    raise_alert(tmp_path / "box.db", config)
    return app


def answer(client: FlaskClient, method: str, url: str) -> int | str:
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, data={"csrf_token": csrf_token(client, "/login")})
    if response.status_code == 302 and response.headers["Location"].startswith("/login"):
        return LOGIN
    if response.status_code == 302:
        return f"302 {response.headers['Location']}"
    return response.status_code


def test_every_route_answers_each_role_as_the_table_says(tmp_path: Path) -> None:
    app = box_app(tmp_path)
    rules = {rule.rule for rule in app.url_map.iter_rules()}
    assert rules - ROUTES.keys() == set(), "routes missing from the role table"
    assert ROUTES.keys() - rules == set(), "the role table names routes the app lacks"
    got: dict[tuple[str, str], int | str] = {}
    want: dict[tuple[str, str], int | str] = {}
    ordered = sorted(ROUTES.items(), key=lambda item: item[1][0] == "POST")
    for who in WHO:
        client = app.test_client()
        if who != "anonymous":
            assert sign_in(client, who) == 302
        for rule, (method, url, expected) in ordered:
            got[rule, who] = answer(client, method, url)
            want[rule, who] = expected[who]
    assert got == want


def test_htmx_fragments_of_every_page_ask_anonymous_users_to_sign_in(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    for method, url, expected in ROUTES.values():
        if method == "GET" and expected is VIEW:
            response = client.get(url, headers={"HX-Request": "true"})
            assert response.status_code == 401
            assert response.headers["HX-Redirect"].startswith("/login")


def test_pages_render_on_an_empty_database(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()
    sign_in(client, "manager")
    for method, url, expected in ROUTES.values():
        if method == "GET" and expected is VIEW:
            assert client.get(url, headers={"HX-Request": "true"}).status_code == 200, url
