"""The setup wizard of a flashed box: ``/wizard``, open until setup is done.

``footfall firstboot`` leaves ``setup.json`` beside the store config with the hash of a
one-time token it printed on the console (:mod:`appliance.config.setup`). While that
state is pending the dashboard's front pages lead here; every POST must carry the token
(403 without it, and nothing is shown or stored). Unlocked, the wizard asks for the
store's id, name and time zone, the hub's URL and enrolment token (the store's
``whsec_…`` secret from ``footfall hub store add``), the cameras (those found on USB
and by ONVIF discovery on the LAN, or typed), the floor's size and, on a box with no
account yet, the installer's account. It validates all of it against the config model
before anything is written; a bad field is a 400 naming it. Done: the config is saved
(the first one kept as a backup), the hub secret written (0600), the state marked done
and the token deleted; ``/wizard`` is then a 404, and the installer calibrates each
camera in the editor.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from ruamel.yaml.comments import CommentedMap
from werkzeug.wrappers import Response as BaseResponse

from appliance.config import ConfigError, parse_config
from appliance.config.editing import atomic_save, read_document
from appliance.config.setup import (
    SetupState,
    SetupStateError,
    mark_done,
    read_state,
    setup_path,
)
from appliance.config.yaml_loader import read_yaml_text
from local_db.durable import atomic_write
from vision.discovery import WS_DISCOVERY, FoundCamera, onvif_cameras, usb_cameras
from webui.accounts import AccountError, create_user, delete_user, has_users
from webui.context import context
from webui.db import read_db, write_db
from wire.errors import WireError
from wire.signing import secret_key

logger = logging.getLogger(__name__)

bp = Blueprint("wizard", __name__)

HUB_SECRET_FILE = "hub.secret"
MAX_CAMERAS = 8
#: the front pages that lead to the wizard while setup is pending
_FRONT_PAGES = frozenset({"pages.index", "auth.login", "auth.setup"})
_RESOLUTION = re.compile(r"^\s*(\d{2,5})\s*[x×]\s*(\d{2,5})\s*$")
_Page = tuple[str, int]


class WizardInputError(ValueError):
    """The wizard's form cannot be accepted; ``problems`` names each field and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class _Form:
    """The wizard's fields as typed (shown again with the problems when refused)."""

    values: dict[str, str]
    cameras: list[str] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default).strip()


def _state_file() -> Path:
    return setup_path(context().config_path)


def _pending() -> SetupState | None:
    """The pending setup state, or None when there is no wizard (done, or no first boot)."""
    try:
        state = read_state(_state_file())
    except SetupStateError as exc:
        logger.warning("setup wizard closed: %s", exc)
        return None
    return state if state is not None and state.pending else None


@bp.before_app_request
def _lead_to_wizard() -> BaseResponse | None:
    """While setup is pending, the front pages (and sign-in) open the wizard."""
    if request.method == "GET" and request.endpoint in _FRONT_PAGES and _pending() is not None:
        return redirect(url_for("wizard.wizard"))
    return None


def _discover() -> list[FoundCamera]:
    """The cameras on USB and the LAN (the app's ``FOOTFALL_*`` settings move the probes)."""
    sysfs = Path(current_app.config.get("FOOTFALL_V4L2_SYSFS", "/sys/class/video4linux"))
    target: tuple[str, int] = current_app.config.get("FOOTFALL_WS_DISCOVERY", WS_DISCOVERY)
    timeout_s: float = current_app.config.get("FOOTFALL_DISCOVERY_TIMEOUT_S", 1.5)
    return usb_cameras(sysfs) + onvif_cameras(timeout_s, target)


def _page(form: _Form, token: str, problems: list[str], status: int) -> _Page:
    config = context().config
    defaults = {
        "store_id": config.store.id,
        "store_name": config.store.name,
        "timezone": config.store.timezone,
        "width_m": f"{config.floor_plan.width_m:g}",
        "depth_m": f"{config.floor_plan.depth_m:g}",
        "resolution": "1280x720",
        "fps": "10",
    }
    return (
        render_template(
            "wizard.html",
            step="form",
            token=token,
            form={**defaults, **{k: v for k, v in form.values.items() if v}},
            chosen=form.cameras,
            found=_discover(),
            problems=problems,
            needs_account=not has_users(read_db()),
            max_cameras=MAX_CAMERAS,
        ),
        status,
    )


@bp.route("/wizard", methods=["GET", "POST"])
def wizard() -> str | _Page | BaseResponse:
    """The token page (GET), the form once unlocked, and the save (POST, ``step=save``)."""
    state = _pending()
    if state is None:
        abort(404)
    if request.method == "GET":
        return render_template("wizard.html", step="token", problems=[])
    token = request.form.get("token", "")
    if not state.accepts(token):
        logger.warning("setup wizard: wrong token from %s", request.remote_addr)
        return render_template("wizard.html", step="token", problems=["setup token: wrong"]), 403
    form = _Form(
        {k: v for k, v in request.form.items() if k not in ("token", "csrf_token", "camera")},
        request.form.getlist("camera"),
    )
    if request.form.get("step") != "save":
        return _page(form, token, [], 200)
    try:
        username = _apply(form)
    except WizardInputError as exc:
        logger.info("setup wizard refused from %s: %s", request.remote_addr, exc)
        return _page(form, token, exc.problems, 400)
    except OSError as exc:
        message = f"{exc.filename}: {exc.strerror}" if exc.strerror else str(exc)
        logger.warning("setup wizard: could not save: %s", message)
        return _page(form, token, [f"could not save: {message}"], 500)
    return render_template("wizard.html", step="done", username=username, problems=[])


def _number(form: _Form, name: str, label: str, problems: list[str]) -> float:
    try:
        return float(form.get(name))
    except ValueError:
        problems.append(f"{label}: {form.get(name)!r} is not a number")
        return 1.0


def _sources(form: _Form) -> list[str]:
    typed = [line.strip() for line in form.get("sources").splitlines()]
    seen: dict[str, None] = {}
    for source in [*form.cameras, *typed]:
        if source.strip():
            seen.setdefault(source.strip(), None)
    return list(seen)


def _cameras(form: _Form, width_m: float, depth_m: float, problems: list[str]) -> list[Any]:
    """One camera per source, the whole picture mapped onto the whole floor (a first guess)."""
    sources = _sources(form)
    if not sources:
        problems.append("cameras: choose a found camera or type a source")
    if len(sources) > MAX_CAMERAS:
        problems.append(f"cameras: at most {MAX_CAMERAS}, {len(sources)} given")
    match = _RESOLUTION.match(form.get("resolution"))
    if match is None:
        problems.append(f"resolution: {form.get('resolution')!r} is not WIDTHxHEIGHT")
        return []
    w, h = int(match.group(1)), int(match.group(2))
    fps = _number(form, "fps", "frame rate", problems)
    corners = [([0, 0], [0.0, 0.0]), ([w, 0], [width_m, 0.0])]
    corners += [([0, h], [0.0, depth_m]), ([w, h], [width_m, depth_m])]
    return [
        {
            "id": f"camera-{i}",
            "source": source,
            "fps": fps,
            "resolution": [w, h],
            "calibration": [{"image": image, "floor": floor} for image, floor in corners],
        }
        for i, source in enumerate(sources[:MAX_CAMERAS], 1)
    ]


def _hub(form: _Form, problems: list[str]) -> tuple[dict[str, str] | None, str | None]:
    """The config's ``hub`` section and the secret to write, or (None, None) for no hub."""
    url, secret = form.get("hub_url"), form.get("hub_secret")
    if not url and not secret:
        return None, None
    if not url or not secret:
        problems.append("hub: give both the hub's URL and the enrolment token, or neither")
        return None, None
    try:
        secret_key(secret)
    except WireError as exc:
        problems.append(f"hub enrolment token: {exc.reason}")  # never the value itself
        return None, None
    return {"url": url, "secret_file": HUB_SECRET_FILE}, secret


def _edit(values: Mapping[str, Any]) -> Callable[[CommentedMap], None]:
    def edit(root: CommentedMap) -> None:
        for key in ("id", "name", "timezone"):
            root["store"][key] = values[key]
        root["floor_plan"]["width_m"] = values["width_m"]
        root["floor_plan"]["depth_m"] = values["depth_m"]
        root["cameras"] = values["cameras"]
        if values["hub"] is None:
            root.pop("hub", None)
        else:
            root["hub"] = values["hub"]

    return edit


def _apply(form: _Form) -> str | None:
    """Validate everything, then write it; returns the installer account made (if any).

    Raises:
        WizardInputError: a field is wrong; nothing was written.
        OSError: a file could not be written (an account made here is removed again).
    """
    problems: list[str] = []
    width_m = _number(form, "width_m", "floor width", problems)
    depth_m = _number(form, "depth_m", "floor depth", problems)
    hub, secret = _hub(form, problems)
    cameras = _cameras(form, width_m, depth_m, problems)
    values: dict[str, Any] = {
        "id": form.get("store_id"),
        "name": form.get("store_name"),
        "timezone": form.get("timezone"),
        "width_m": width_m,
        "depth_m": depth_m,
        "cameras": cameras,
        "hub": hub,
    }
    account = not has_users(read_db())
    if account and form.get("password") != form.get("repeat"):
        problems.append("password: the two entries do not match")
    if problems:
        raise WizardInputError(problems)
    path = context().config_path
    try:
        doc = read_document(read_yaml_text(path, ConfigError), str(path))
        _edit(values)(doc.root)
        parse_config(doc.text(), path.name, folder=path.parent)
    except ConfigError as exc:
        raise WizardInputError([f"{i.path}: {i.message}" for i in exc.issues]) from exc
    username = None
    if account:
        try:
            username = create_user(
                write_db(), form.get("username").lower(), form.get("password"), "installer"
            ).username
        except AccountError as exc:
            raise WizardInputError([str(exc)]) from exc
    try:
        if secret is not None:
            atomic_write(path.parent / HUB_SECRET_FILE, (secret + "\n").encode(), mode=0o600)
        atomic_save(path, doc)
        mark_done(_state_file(), datetime.now(UTC).isoformat(timespec="seconds"))
    except (OSError, SetupStateError) as exc:
        if username is not None:
            delete_user(write_db(), username)
        if isinstance(exc, SetupStateError):
            raise OSError(f"setup state: {exc}") from exc
        raise
    context().reload()
    logger.info("setup wizard done: store %s, %d camera(s)", values["id"], len(cameras))
    return username
