"""Installer mode via the Flask test client: roles, CSRF, uploads, saves, calibration, frames."""

from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient

from appliance.config import load_config
from tests.webui_support import csrf_token, make_app, post_json, sign_in, store_copy
from vision.homography import fit_homography
from vision.ring_buffer import FrameRingBuffer
from vision.snapshots import (
    MAX_PLAN_BYTES,
    ImageError,
    check_plan_image,
    encode_jpeg,
    frame_provider,
    latest_jpeg,
)

PAIRS: list[dict[str, list[float]]] = [
    {"image": [280, 160], "floor": [0.0, 0.0]},
    {"image": [1640, 160], "floor": [12.0, 0.0]},
    {"image": [1900, 1060], "floor": [12.0, 20.0]},
    {"image": [20, 1060], "floor": [0.0, 20.0]},
    {"image": [960, 600], "floor": [6.3, 9.6]},
]


def png_bytes(width: int = 60, height: int = 40) -> bytes:
    image = np.full((height, width, 3), 200, np.uint8)
    cv2.line(image, (0, 0), (width - 1, height - 1), (0, 0, 0), 2)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return bytes(buf)


@pytest.fixture
def ring() -> FrameRingBuffer:
    return FrameRingBuffer(max_seconds=5)


@pytest.fixture
def app(tmp_path: Path, ring: FrameRingBuffer) -> Flask:
    return make_app(tmp_path, store_copy(tmp_path), frames=frame_provider({"west": ring}))


def config_path(app: Flask) -> Path:
    path: Path = app.extensions["footfall"].config_path
    return path


def layout_body(app: Flask) -> dict[str, list[dict[str, object]]]:
    config = load_config(config_path(app))
    return {
        "zones": [z.model_dump(mode="json") for z in config.zones],
        "lines": [ln.model_dump(mode="json") for ln in config.lines],
    }


ROUTES = [
    ("GET", "/installer/"),
    ("POST", "/installer/layout"),
    ("POST", "/installer/plan/size"),
    ("POST", "/installer/plan/scale"),
    ("POST", "/installer/plan/image"),
    ("GET", "/installer/plan/image"),
    ("GET", "/installer/cameras/west"),
    ("GET", "/installer/cameras/west/frame.jpg"),
    ("POST", "/installer/cameras/west/calibration/check"),
    ("POST", "/installer/cameras/west/calibration"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_only_installers_reach_installer_mode(app: Flask, method: str, path: str) -> None:
    anonymous = app.test_client()
    token = csrf_token(anonymous)
    response = anonymous.open(path, method=method, headers={"X-CSRFToken": token})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    for role in ("staff", "manager"):
        client = app.test_client()
        sign_in(client, role)
        token = csrf_token(client, "/")
        denied = client.open(path, method=method, headers={"X-CSRFToken": token})
        assert denied.status_code == 403, (role, method, path)


def test_nav_links_to_installer_mode_only_for_installers(
    app: Flask, installer: FlaskClient
) -> None:
    assert 'href="/installer/"' in installer.get("/").get_data(as_text=True)
    manager = app.test_client()
    sign_in(manager, "manager")
    assert "/installer/" not in manager.get("/").get_data(as_text=True)


def test_saving_needs_the_csrf_token(app: Flask, installer: FlaskClient) -> None:
    before = config_path(app).read_bytes()
    refused = installer.post("/installer/layout", json=layout_body(app))
    assert refused.status_code == 400 and b"CSRF" in refused.data
    forged = post_json(installer, "/installer/layout", layout_body(app), "forged")
    assert forged.status_code == 400
    size = installer.post("/installer/plan/size", data={"width_m": "40", "depth_m": "20"})
    assert size.status_code == 400
    assert config_path(app).read_bytes() == before


def test_zones_and_lines_round_trip_to_the_yaml_with_a_backup(
    app: Flask, installer: FlaskClient
) -> None:
    path = config_path(app)
    before = path.read_text()
    body = layout_body(app)
    body["zones"].append(
        {"id": "promo", "kind": "display", "polygon": [[24.0, 13.0], [28.0, 13.0], [26.04, 16.5]]}
    )
    body["zones"] = [z for z in body["zones"] if z["id"] != "aisle-4"]
    body["lines"][0]["a"] = [24.5, 20.0]
    token = csrf_token(installer, "/installer/")
    saved = post_json(installer, "/installer/layout", body, token)
    assert saved.status_code == 200, saved.get_json()
    answer = saved.get_json()
    assert [z["id"] for z in answer["zones"]][-1] == "promo"

    config = load_config(path)
    zones = {z.id: z for z in config.zones}
    assert zones["promo"].polygon == [(24.0, 13.0), (28.0, 13.0), (26.04, 16.5)]
    assert "aisle-4" not in zones
    assert config.lines[0].a == (24.5, 20.0)
    text = path.read_text()
    assert text.startswith("# footfall store config of the simulated supermarket")
    assert "  - id: door          # front wall; inside (y < 20) is on the right of a -> b" in text
    assert 'open: "07:00"' in text
    backup = path.parent / answer["backup"]
    assert backup.read_text() == before
    assert app.extensions["footfall"].config.zones == config.zones  # the dashboard reloaded
    assert not list(path.parent.glob(".*.tmp"))


def test_a_bad_polygon_is_refused_naming_the_key_and_the_file_is_untouched(
    app: Flask, installer: FlaskClient
) -> None:
    path = config_path(app)
    before = path.read_bytes()
    body = layout_body(app)
    body["zones"].append({"id": "flat", "kind": "display", "polygon": [[1, 1], [2, 2]]})
    token = csrf_token(installer, "/installer/")
    refused = post_json(installer, "/installer/layout", body, token)
    assert refused.status_code == 400
    n = len(body["zones"]) - 1
    assert refused.get_json()["issues"][0]["path"] == f"zones.{n}.polygon"
    assert f"zones.{n}.polygon" in refused.get_json()["error"]
    body["zones"][-1]["polygon"] = [[1, 1], [2, 2], [3, 3]]
    flat = post_json(installer, "/installer/layout", body, token).get_json()
    assert "polygon has no area" in flat["error"]
    body["zones"] = [z for z in body["zones"] if z["id"] not in ("flat", "queue-1")]
    orphan = post_json(installer, "/installer/layout", body, token).get_json()  # alert target
    assert any(i["path"] == "alerts.0.target" for i in orphan["issues"])
    garbage = post_json(installer, "/installer/layout", {"zones": "x", "lines": []}, token)
    assert garbage.status_code == 400 and "zones" in garbage.get_json()["error"]
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.bak"))


def test_upload_accepts_only_real_png_or_jpeg(app: Flask, installer: FlaskClient) -> None:
    path = config_path(app)
    before = path.read_bytes()
    token = csrf_token(installer, "/installer/")

    def upload(data: bytes, name: str) -> tuple[int, str]:
        files = {"image": (io.BytesIO(data), name), "csrf_token": token}
        response = installer.post("/installer/plan/image", data=files)
        return response.status_code, response.get_data(as_text=True)

    status, page = upload(b"this is text, not a picture\n", "plan.png")
    assert status == 400 and "plan.png: the file is not a PNG or JPEG image" in page
    status, page = upload(png_bytes()[:80], "cut.png")
    assert status == 400 and "damaged" in page
    status, page = upload(b"\x89PNG\r\n\x1a\n" + bytes(MAX_PLAN_BYTES), "huge.png")
    assert status == 400 and "the limit is" in page
    assert path.read_bytes() == before

    drawing = png_bytes(600, 300)
    status, _ = upload(drawing, "store.png")
    assert status == 302
    plan = load_config(path).floor_plan
    assert plan.image == "store.plan.png"
    assert (plan.width_m, plan.depth_m) == (30, 15)  # the drawing's 2:1 proportions
    assert (path.parent / "store.plan.png").read_bytes() == drawing
    served = installer.get("/installer/plan/image")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.data == drawing


def test_plan_size_and_scale_by_two_points(app: Flask, installer: FlaskClient) -> None:
    token = csrf_token(installer, "/installer/")
    bad = installer.post(
        "/installer/plan/size", data={"width_m": "wide", "depth_m": "20", "csrf_token": token}
    )
    assert bad.status_code == 400 and "width_m" in bad.get_data(as_text=True)
    negative = installer.post(
        "/installer/plan/size", data={"width_m": "-3", "depth_m": "20", "csrf_token": token}
    )
    assert negative.status_code == 400 and "floor_plan.width_m" in negative.get_data(as_text=True)
    # two points 10 m apart as drawn now really are 12 m apart: everything grows by 1.2
    scale = {"ax": "5", "ay": "5", "bx": "11", "by": "13", "distance_m": "12"}
    done = installer.post("/installer/plan/scale", data={**scale, "csrf_token": token})
    assert done.status_code == 302
    plan = load_config(config_path(app)).floor_plan
    assert (plan.width_m, plan.depth_m) == (36.0, 24.0)
    same = {**scale, "bx": "5", "by": "5"}
    refused = installer.post("/installer/plan/scale", data={**same, "csrf_token": token})
    assert refused.status_code == 400 and "same point" in refused.get_data(as_text=True)


def test_calibration_check_reports_fit_homography_and_save_writes_the_pairs(
    app: Flask, installer: FlaskClient
) -> None:
    token = csrf_token(installer, "/installer/cameras/west")
    checked = post_json(
        installer, "/installer/cameras/west/calibration/check", {"pairs": PAIRS}, token
    )
    assert checked.status_code == 200
    expected = fit_homography([p["image"] for p in PAIRS], [p["floor"] for p in PAIRS])
    report = checked.get_json()
    assert report["reprojection_error_m"] == pytest.approx(expected.reprojection_error_m)
    assert report["max_error_m"] == pytest.approx(expected.max_error_m, rel=1e-5)
    assert max(report["errors_m"]) == pytest.approx(expected.max_error_m, rel=1e-5)
    assert report["reprojection_error_m"] > 0.05  # the fifth point is off by design

    too_few = post_json(
        installer, "/installer/cameras/west/calibration/check", {"pairs": PAIRS[:3]}, token
    )
    assert too_few.status_code == 400 and "at least 4" in too_few.get_json()["error"]
    not_numbers = post_json(
        installer,
        "/installer/cameras/west/calibration/check",
        {"pairs": [{"image": ["a", 1], "floor": [0, 0]}]},
        token,
    )
    assert not_numbers.status_code == 400
    assert "pairs[0].image[0]" in not_numbers.get_json()["error"]

    saved = post_json(installer, "/installer/cameras/west/calibration", {"pairs": PAIRS}, token)
    assert saved.status_code == 200, saved.get_json()
    camera = load_config(config_path(app)).camera("west")
    assert [list(p.image) for p in camera.calibration] == [p["image"] for p in PAIRS]
    assert camera.floor_mapping().reprojection_error_m == pytest.approx(
        expected.reprojection_error_m
    )
    text = config_path(app).read_text()
    assert "      - {image: [960, 600], floor: [6.3, 9.6]}" in text

    outside = [*PAIRS[:4], {"image": [2500, 600], "floor": [6.0, 9.6]}]
    before = config_path(app).read_bytes()
    refused = post_json(installer, "/installer/cameras/west/calibration", {"pairs": outside}, token)
    assert refused.status_code == 400
    assert refused.get_json()["issues"][0]["path"] == "cameras.0"
    assert (
        "calibration[4].image [2500.0, 600.0] is outside 1920x1080" in refused.get_json()["error"]
    )
    assert config_path(app).read_bytes() == before
    assert installer.get("/installer/cameras/nope").status_code == 404


def test_the_live_frame_goes_only_to_installers_uncached(
    app: Flask, installer: FlaskClient, ring: FrameRingBuffer
) -> None:
    assert installer.get("/installer/cameras/west/frame.jpg").status_code == 404  # none yet
    page = installer.get("/installer/cameras/west").get_data(as_text=True)
    assert "No live frame" in page and "frame.jpg" not in page
    frame = np.zeros((108, 192, 3), np.uint8)
    frame[20:60, 30:90] = (0, 0, 255)
    ring.push(1.0, frame)
    response = installer.get("/installer/cameras/west/frame.jpg")
    assert response.status_code == 200
    assert response.mimetype == "image/jpeg"
    assert "no-store" in response.headers["Cache-Control"]
    decoded = cv2.imdecode(np.frombuffer(response.data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == frame.shape
    assert decoded[40, 60, 2] > 200 and decoded[5, 5, 2] < 30
    assert "frame.jpg" in installer.get("/installer/cameras/west").get_data(as_text=True)
    assert installer.get("/installer/cameras/middle/frame.jpg").status_code == 404  # no ring
    assert installer.get("/installer/cameras/nope/frame.jpg").status_code == 404
    manager = app.test_client()
    sign_in(manager, "manager")
    assert manager.get("/installer/cameras/west/frame.jpg").status_code == 403


def test_snapshots_encode_in_memory_and_check_uploads(ring: FrameRingBuffer) -> None:
    assert latest_jpeg(ring) is None
    ring.push(0.0, np.full((10, 20, 3), 7, np.uint8))
    ring.push(0.5, np.full((30, 40, 3), 250, np.uint8))
    jpeg = latest_jpeg(ring, quality=90)
    assert jpeg is not None and jpeg.startswith(b"\xff\xd8\xff")
    assert check_plan_image(jpeg).format == "jpeg"
    info = check_plan_image(png_bytes(60, 40))
    assert (info.format, info.width, info.height, info.suffix) == ("png", 60, 40, ".png")
    with pytest.raises(ValueError, match="quality"):
        encode_jpeg(np.zeros((4, 4, 3), np.uint8), quality=0)
    with pytest.raises(ImageError, match="empty"):
        check_plan_image(b"")
    header = bytearray(png_bytes())
    header[16:24] = (20000).to_bytes(4, "big") * 2  # a PNG that claims 20000 x 20000 pixels
    with pytest.raises(ImageError, match="at most 10000 px"):
        check_plan_image(bytes(header))


def test_the_editor_page_carries_its_data_without_inline_script(installer: FlaskClient) -> None:
    page = installer.get("/installer/").get_data(as_text=True)
    assert '<script type="application/json" id="editor-data">' in page
    scripts = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", page)
    assert scripts == []
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
