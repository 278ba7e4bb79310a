"""Installer mode: the floor plan, zones, lines and camera calibration, edited in the browser.

Every route is under ``/installer`` and needs the ``edit_config`` permission; the
live camera frame also needs ``live_camera``. A save goes through
:func:`appliance.config.editing.save_edit`: the edited YAML is validated first (a bad
edit is a 400 naming the key, and the file is untouched), the previous file is
backed up, the new one replaces it atomically, and the dashboard reloads it.
Camera frames arrive as opaque JPEG bytes from the box's RAM ring buffer and are
sent with ``Cache-Control: no-store``; nothing here decodes or stores them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import numpy as np
from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from ruamel.yaml.comments import CommentedMap
from werkzeug.wrappers import Response as BaseResponse

from appliance.config import (
    MAX_CALIBRATION_PAIRS,
    MAX_LINES,
    MAX_VERTICES,
    MAX_ZONES,
    BoxConfig,
    CameraConfig,
    ConfigError,
    ZoneConfig,
)
from appliance.config.editing import (
    ConfigEditError,
    SavedConfig,
    save_edit,
    scaled_plan,
    set_calibration,
    set_floor_plan,
    set_lines,
    set_zones,
)
from appliance.config.yaml_loader import MAX_YAML_BYTES
from local_db.durable import atomic_write
from vision.homography import CalibrationError, fit_homography
from vision.snapshots import DECODE_RETRY_S, DecoderBusyError, ImageError, check_plan_image
from webui.auth import requires
from webui.context import context

logger = logging.getLogger(__name__)

bp = Blueprint("editor", __name__, url_prefix="/installer")

ZONE_KINDS: tuple[str, ...] = get_args(ZoneConfig.model_fields["kind"].annotation)
_PLAN_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
Point = tuple[float, float]


class EditInputError(ValueError):
    """The browser sent something the editor cannot use (the message says what)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EditInputError(f"{where}: {value!r} is not a number")
    return value  # an int stays an int in the YAML (pixels as the file had them)


def _point(value: object, where: str) -> Point:
    if not isinstance(value, list) or len(value) != 2:
        raise EditInputError(f"{where}: expected [x, y], got {value!r}")
    return _number(value[0], f"{where}[0]"), _number(value[1], f"{where}[1]")


def _form_number(name: str) -> float:
    text = request.form.get(name, "").strip()
    try:
        return _number(float(text), name)
    except ValueError as exc:
        raise EditInputError(f"{name}: {text!r} is not a number") from exc


def _json_body() -> dict[str, Any]:
    """The request's JSON object; a body larger than a config file may be is not read."""
    size = request.content_length
    if size is None:
        raise EditInputError("the request has no Content-Length", 411)
    if size > MAX_YAML_BYTES:
        raise EditInputError(f"the request has {size} bytes; at most {MAX_YAML_BYTES}", 413)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise EditInputError("the request body must be a JSON object")
    return body


def _objects(body: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    items = body.get(key)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise EditInputError(f"{key}: expected a list of objects")
    return items


def _pairs(body: Mapping[str, Any]) -> list[tuple[Point, Point]]:
    pairs = _objects(body, "pairs")
    if len(pairs) > MAX_CALIBRATION_PAIRS:
        raise EditInputError(f"pairs: {len(pairs)} pairs; at most {MAX_CALIBRATION_PAIRS}")
    return [
        (_point(p.get("image"), f"pairs[{i}].image"), _point(p.get("floor"), f"pairs[{i}].floor"))
        for i, p in enumerate(pairs)
    ]


def _status(exc: Exception) -> int:
    """The HTTP status of refused input: 400 unless an :class:`EditInputError` says otherwise."""
    return exc.status if isinstance(exc, EditInputError) else 400


def _layout_items(body: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The zones and lines of a layout save, held to the config's caps before any lock."""
    zones, lines = _objects(body, "zones"), _objects(body, "lines")
    for key, items, cap in (("zones", zones, MAX_ZONES), ("lines", lines, MAX_LINES)):
        if len(items) > cap:
            raise EditInputError(f"{key}: {len(items)} {key}; at most {cap}")
    for i, zone in enumerate(zones):
        polygon = zone.get("polygon")
        if isinstance(polygon, list) and len(polygon) > MAX_VERTICES:
            raise EditInputError(
                f"zones.{i}.polygon: {len(polygon)} points; a zone has at most {MAX_VERTICES}"
            )
    return zones, lines


def _camera(camera_id: str) -> CameraConfig:
    try:
        return context().config.camera(camera_id)
    except KeyError:
        abort(404)


def _refused(message: str, status: int) -> None:
    logger.warning("editor: %s %s refused (%d): %s", request.method, request.path, status, message)


def _json_error(message: str, status: int, **extra: object) -> tuple[Response, int]:
    _refused(message, status)
    return jsonify({"error": message, **extra}), status


@dataclass(frozen=True)
class _Refusal:
    """Why a save did not happen, and the HTTP status that says so."""

    message: str
    status: int
    issues: list[dict[str, object]] = field(default_factory=list)


def _save(edit: Callable[[CommentedMap], None]) -> SavedConfig | _Refusal:
    """Apply ``edit`` to the config file and reload the dashboard's config, or say why not."""
    path = context().config_path
    try:
        saved = save_edit(path, edit)
    except ConfigError as exc:
        issues = [{"path": i.path, "line": i.line, "message": i.message} for i in exc.issues]
        first = exc.issues[0]
        return _Refusal(f"not saved: {first.path}: {first.message}", 400, issues)
    except ConfigEditError as exc:
        return _Refusal(str(exc), 404)
    except OSError as exc:
        logger.exception("editor: cannot write %s", path)
        return _Refusal(f"cannot write the config: {exc.strerror or exc}", 500)
    context().reload()
    return saved


def _json_save(
    edit: Callable[[CommentedMap], None], answer: Callable[[SavedConfig], dict[str, object]]
) -> Response | tuple[Response, int]:
    """Save, then answer JSON: ``answer(saved)`` and the backup's name, or the refusal."""
    saved = _save(edit)
    if isinstance(saved, _Refusal):
        return _json_error(saved.message, saved.status, issues=saved.issues)
    backup = saved.backup.name if saved.backup else None
    return jsonify({"saved": True, "backup": backup, **answer(saved)})


def _plan_data(config: BoxConfig) -> dict[str, object]:
    plan = config.floor_plan
    return {
        "width_m": plan.width_m,
        "depth_m": plan.depth_m,
        "image_url": url_for("editor.plan_image") if _plan_image_path(config) else None,
    }


def _plan_image_path(config: BoxConfig) -> Path | None:
    name = config.floor_plan.image
    if not name:
        return None
    path = context().config_path.parent / name
    if path.suffix.lower() not in _PLAN_TYPES or not path.is_file():
        return None
    return path


def _layout(config: BoxConfig) -> dict[str, object]:
    return {
        "plan": _plan_data(config),
        "zones": [z.model_dump(mode="json") for z in config.zones],
        "lines": [ln.model_dump(mode="json") for ln in config.lines],
    }


def _editor_page() -> str:
    config = context().config
    cameras = [(cam, cam.floor_mapping()) for cam in config.cameras]
    data = {**_layout(config), "kinds": list(ZONE_KINDS), "save_url": url_for("editor.layout")}
    return render_template("editor.html", data=data, cameras=cameras, plan=config.floor_plan)


@bp.get("/")
@requires("edit_config")
def index() -> str:
    """The layout editor: the plan with its zones and lines, the plan's image and scale."""
    return _editor_page()


@bp.post("/layout")
@requires("edit_config")
def layout() -> Response | tuple[Response, int]:
    """Save zones and lines (JSON ``{"zones": [...], "lines": [...]}``)."""
    try:
        zones, lines = _layout_items(_json_body())
    except EditInputError as exc:
        return _json_error(str(exc), exc.status)

    def edit(root: CommentedMap) -> None:
        set_zones(root, zones)
        set_lines(root, lines)

    def answer(saved: SavedConfig) -> dict[str, object]:
        logger.info("editor: saved %d zones and %d lines", len(zones), len(lines))
        return _layout(saved.config)

    return _json_save(edit, answer)


def _back_with(message: str, status: int) -> tuple[str, int]:
    """The editor page again with an error message (a form post that was refused)."""
    _refused(message, status)
    flash(message, "error")
    return _editor_page(), status


def _plan_edit(done: str, **values: Any) -> BaseResponse | tuple[str, int]:
    """Save floor-plan keys; on success back to the editor with the message ``done``."""
    saved = _save(lambda root: set_floor_plan(root, **values))
    if isinstance(saved, _Refusal):
        return _back_with(saved.message, saved.status)
    logger.info("editor: floor plan %s", values)
    flash(done, "ok")
    return redirect(url_for("editor.index"))


@bp.post("/plan/size")
@requires("edit_config")
def plan_size() -> BaseResponse | tuple[str, int]:
    """Set the plan's width and depth in metres."""
    try:
        width, depth = _form_number("width_m"), _form_number("depth_m")
    except EditInputError as exc:
        return _back_with(str(exc), 400)
    return _plan_edit(f"The plan is now {width:g} x {depth:g} m.", width_m=width, depth_m=depth)


@bp.post("/plan/scale")
@requires("edit_config")
def plan_scale() -> BaseResponse | tuple[str, int]:
    """Scale the plan so that two clicked points are a known distance apart."""
    plan = context().config.floor_plan
    try:
        a = (_form_number("ax"), _form_number("ay"))
        b = (_form_number("bx"), _form_number("by"))
        width, depth = scaled_plan(plan.width_m, plan.depth_m, a, b, _form_number("distance_m"))
    except ValueError as exc:
        return _back_with(f"scale: {exc}", 400)
    done = f"Scaled: the plan is now {width:g} x {depth:g} m."
    return _plan_edit(done, width_m=width, depth_m=depth)


@bp.post("/plan/image")
@requires("edit_config")
def plan_upload() -> BaseResponse | tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Upload the floor plan drawing (PNG or JPEG within the decoded-pixel budget).

    Only the image's re-encoded pixels are stored; a second upload while one is being
    decoded is a 503 with ``Retry-After``.
    """
    upload = request.files.get("image")
    if upload is None or not upload.filename:
        return _back_with("choose a PNG or JPEG file to upload", 400)
    try:
        info = check_plan_image(upload.read())
    except ImageError as exc:
        return _back_with(f"{upload.filename}: {exc}", 400)
    except DecoderBusyError as exc:
        page, status = _back_with(f"{upload.filename}: {exc}", 503)
        return page, status, {"Retry-After": str(DECODE_RETRY_S)}
    config_path = context().config_path
    name = f"{config_path.stem}.plan{info.suffix}"
    plan = context().config.floor_plan
    depth = round(plan.width_m * info.height / info.width, 3)  # keep the drawing's proportions
    try:
        atomic_write(config_path.parent / name, info.data)
    except OSError as exc:
        logger.exception("editor: cannot write the plan image next to %s", config_path)
        return _back_with(f"cannot store the image: {exc.strerror or exc}", 500)
    done = (
        f"Plan image saved ({info.width}x{info.height} px); depth set to {depth:g} m to keep "
        "its proportions. Now set the scale."
    )
    return _plan_edit(done, image=name, depth_m=depth)


@bp.get("/plan/image")
@requires("edit_config")
def plan_image() -> Response:
    """The floor plan drawing named in the config."""
    path = _plan_image_path(context().config)
    if path is None:
        abort(404)
    return send_file(path, mimetype=_PLAN_TYPES[path.suffix.lower()], max_age=0)


@bp.get("/cameras/<camera_id>")
@requires("edit_config")
def camera(camera_id: str) -> str:
    """Calibrate one camera: points on its live frame and the same points on the plan."""
    ctx = context()
    cam = _camera(camera_id)
    has_frame = ctx.frames is not None and ctx.frames(camera_id) is not None
    mapping = cam.floor_mapping()
    data = {
        **_layout(ctx.config),
        "camera": cam.id,
        "resolution": list(cam.resolution),
        "pairs": [p.model_dump(mode="json") for p in cam.calibration],
        "frame_url": url_for("editor.frame", camera_id=cam.id) if has_frame else None,
        "check_url": url_for("editor.calibration_check", camera_id=cam.id),
        "save_url": url_for("editor.calibration_save", camera_id=cam.id),
    }
    return render_template("editor_camera.html", data=data, camera=cam, mapping=mapping)


@bp.get("/cameras/<camera_id>/frame.jpg")
@requires("live_camera")
def frame(camera_id: str) -> Response:
    """The camera's newest frame from RAM, for a signed-in installer only; never cached."""
    ctx = context()
    _camera(camera_id)
    data = ctx.frames(camera_id) if ctx.frames is not None else None
    if data is None:
        abort(404)
    return Response(
        data,
        mimetype="image/jpeg",
        headers={"Cache-Control": "no-store, max-age=0", "Pragma": "no-cache"},
    )


def calibration_report(pairs: list[tuple[Point, Point]]) -> dict[str, object]:
    """The homography fitted to ``pairs`` and each pair's error in metres.

    Raises:
        CalibrationError: too few pairs or a degenerate layout.
    """
    image = [p[0] for p in pairs]
    floor = [p[1] for p in pairs]
    mapping = fit_homography(image, floor)
    mapped = mapping.to_floor(np.asarray(image, np.float64)).astype(np.float64)
    errors = np.linalg.norm(mapped - np.asarray(floor, np.float64), axis=1)
    return {
        "reprojection_error_m": mapping.reprojection_error_m,
        "max_error_m": mapping.max_error_m,
        "errors_m": [float(e) for e in errors],
    }


@bp.post("/cameras/<camera_id>/calibration/check")
@requires("edit_config")
def calibration_check(camera_id: str) -> Response | tuple[Response, int]:
    """The reprojection error of the clicked pairs (JSON ``{"pairs": [...]}``), not saved."""
    _camera(camera_id)
    try:
        return jsonify(calibration_report(_pairs(_json_body())))
    except (EditInputError, CalibrationError) as exc:
        return _json_error(str(exc), _status(exc))


@bp.post("/cameras/<camera_id>/calibration")
@requires("edit_config")
def calibration_save(camera_id: str) -> Response | tuple[Response, int]:
    """Save the camera's calibration pairs (validated with the whole config)."""
    _camera(camera_id)
    try:
        pairs = _pairs(_json_body())
        report = calibration_report(pairs)
    except (EditInputError, CalibrationError) as exc:
        return _json_error(str(exc), _status(exc))

    def answer(_saved: SavedConfig) -> dict[str, object]:
        rms = report["reprojection_error_m"]
        logger.info("editor: calibrated %s with %d pairs, %s m RMS", camera_id, len(pairs), rms)
        return report

    return _json_save(lambda root: set_calibration(root, camera_id, pairs), answer)
