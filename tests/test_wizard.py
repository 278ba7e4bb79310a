"""The setup wizard: only with first boot's token, only until setup is done, valid configs only."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.box.firstboot import CONFIG_NAME, first_boot
from appliance.cli import main
from appliance.config import load_config
from appliance.config.setup import SETUP_FILE, TOKEN_FILE, read_state
from local_db import connect
from tests.onvif_support import onvif_camera, probe_match
from tests.webui_support import csrf_token
from webui import create_app
from webui.accounts import authenticate, create_user, has_users
from webui.wizard import HUB_SECRET_FILE

SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10aGUtc3RvcmU="
GOOD = {
    "step": "save",
    "store_id": "paris-11",
    "store_name": "Paris Oberkampf",
    "timezone": "Europe/Paris",
    "hub_url": "https://hub.example",
    "hub_secret": SECRET,
    "camera": "usb:0",
    "sources": "rtsp://cam:pw@192.168.1.21:554/stream1\n",
    "resolution": "1920x1080",
    "fps": "12",
    "width_m": "24",
    "depth_m": "18",
    "username": "ines",
    "password": "a long installer secret",
    "repeat": "a long installer secret",
}


@dataclass
class Box:
    etc: Path
    db: Path
    app: Flask
    client: FlaskClient
    token: str

    @property
    def config(self) -> Path:
        return self.etc / CONFIG_NAME

    def post(self, **fields: str) -> tuple[int, str]:
        data = {"csrf_token": csrf_token(self.client, "/wizard"), **fields}
        response = self.client.post("/wizard", data=data)
        return response.status_code, response.get_data(as_text=True)

    def files(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.etc.iterdir())}


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    etc = tmp_path / "etc"
    made = first_boot(etc, tmp_path / "hostname")
    assert made.token
    sysfs = tmp_path / "sys" / "video0"
    sysfs.mkdir(parents=True)
    (sysfs / "index").write_text("0\n")
    (sysfs / "name").write_text("UVC Camera\n")
    with onvif_camera(probe_match("http://192.168.1.20/onvif/device_service")) as onvif:
        app = create_app(etc / CONFIG_NAME, tmp_path / "box.db", testing=True)
        app.config.update(
            FOOTFALL_V4L2_SYSFS=str(tmp_path / "sys"),
            FOOTFALL_WS_DISCOVERY=onvif,
            FOOTFALL_DISCOVERY_TIMEOUT_S=0.3,
        )
        yield Box(etc, tmp_path / "box.db", app, app.test_client(), made.token)


def test_the_front_pages_lead_to_the_wizard_which_asks_only_for_the_token(box: Box) -> None:
    for page in ("/", "/login", "/setup"):
        response = box.client.get(page)
        assert response.status_code == 302 and response.location == "/wizard"
    page = box.client.get("/wizard").get_data(as_text=True)
    assert 'name="token"' in page and 'name="store_id"' not in page


@pytest.mark.parametrize("token", ["", "not-the-token"])
def test_without_the_token_nothing_is_shown_or_stored(box: Box, token: str) -> None:
    before = box.files()
    status, page = box.post(token=token)
    assert status == 403 and "setup token: wrong" in page
    assert 'name="store_id"' not in page and "usb:0" not in page
    status, page = box.post(**{**GOOD, "token": token})
    assert status == 403 and box.files() == before and not has_users(connect(box.db))


def test_the_token_unlocks_the_form_with_the_cameras_found(box: Box) -> None:
    status, page = box.post(token=box.token)
    assert status == 200 and 'name="store_id"' in page
    assert "USB: UVC Camera (/dev/video0)" in page and 'value="usb:0"' in page
    assert 'value="rtsp://192.168.1.20:554/"' in page
    assert 'name="username"' in page  # no account yet: the wizard makes the installer's


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"store_id": "Paris 11"}, "store.id: String should match pattern"),
        ({"timezone": "Mars/Olympus"}, "'Mars/Olympus' is not an IANA time zone"),
        ({"hub_secret": ""}, "hub: give both the hub's URL and the enrolment token, or neither"),
        ({"hub_secret": "hunter2"}, "hub enrolment token: a secret starts with 'whsec_'"),
        ({"hub_url": "ftp://hub"}, "hub.url: String should match pattern"),
        ({"camera": "", "sources": ""}, "cameras: choose a found camera or type a source"),
        ({"resolution": "big"}, "resolution: 'big' is not WIDTHxHEIGHT"),
        ({"fps": "fast"}, "frame rate: 'fast' is not a number"),
        ({"fps": "0"}, "cameras.0.fps: Input should be greater than 0"),
        ({"width_m": "-3"}, "floor_plan.width_m: Input should be greater than 0"),
        ({"password": "short", "repeat": "short"}, "password: at least 10 characters"),
        ({"repeat": "something else entirely"}, "password: the two entries do not match"),
    ],
)
def test_bad_input_is_refused_with_its_reason_and_nothing_is_written(
    box: Box, fields: dict[str, str], reason: str
) -> None:
    before = box.files()
    status, page = box.post(**{**GOOD, **fields, "token": box.token})
    assert status == 400 and "Not saved" in page
    assert reason.replace("'", "&#39;") in page
    assert SECRET not in page  # the secret is never echoed back
    assert box.files() == before and not has_users(connect(box.db))
    state = read_state(box.etc / SETUP_FILE)
    assert state is not None and state.pending


def test_setup_writes_a_config_footfall_accepts_then_the_wizard_is_gone(box: Box) -> None:
    status, page = box.post(**{**GOOD, "token": box.token})
    assert status == 200 and "Setup is done" in page
    assert main(["config", "check", str(box.config)]) == 0
    config = load_config(box.config)
    assert (config.store.id, config.store.name) == ("paris-11", "Paris Oberkampf")
    assert config.store.timezone == "Europe/Paris"
    assert [c.source for c in config.cameras] == [
        "usb:0",
        "rtsp://cam:pw@192.168.1.21:554/stream1",
    ]
    assert config.cameras[0].resolution == (1920, 1080) and config.cameras[0].fps == 12
    corner = config.cameras[1].floor_mapping().to_floor(np.array([[1920.0, 1080.0]]))[0]
    assert corner == pytest.approx((24, 18))
    assert config.hub is not None and config.hub.url == "https://hub.example"
    secret = box.etc / HUB_SECRET_FILE
    assert secret.read_text().strip() == SECRET
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert SECRET not in box.config.read_text()
    assert list(box.etc.glob(f"{CONFIG_NAME}.*.bak"))  # first boot's config kept
    user = authenticate(connect(box.db), "ines", GOOD["password"])
    assert user is not None and user.role == "installer"
    state = read_state(box.etc / SETUP_FILE)
    assert state is not None and not state.pending and not state.accepts(box.token)
    assert not (box.etc / TOKEN_FILE).exists()
    # served only until setup is done
    assert box.client.get("/wizard").status_code == 404
    assert box.client.post("/wizard", data={"token": box.token}).status_code in (400, 404)
    assert box.client.get("/").location.startswith("/login")


def test_a_box_with_an_account_needs_none_and_a_hub_is_optional(box: Box) -> None:
    create_user(connect(box.db), "first", "another long secret", "installer")
    status, page = box.post(token=box.token)
    assert 'name="username"' not in page
    fields = {k: v for k, v in GOOD.items() if k not in ("username", "password", "repeat")}
    status, _ = box.post(**{**fields, "hub_url": "", "hub_secret": "", "token": box.token})
    assert status == 200
    assert load_config(box.config).hub is None and not (box.etc / HUB_SECRET_FILE).exists()
