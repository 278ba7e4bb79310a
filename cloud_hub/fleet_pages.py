"""The hub's fleet pages: every box's status (``/fleet``, its CSV) and a store's config.

``/fleet`` lists the boxes of the stores the signed-in account may see (scoped as every
dashboard page, :func:`cloud_hub.accounts.visible_stores`) with their status and reason
(:mod:`cloud_hub.heartbeats`), filtered by region, software version and status, and
downloads as CSV. ``/stores/<id>/config`` shows what the box runs, the hub's versions
and a conflict (both texts and the diff); admins and the store's managers save a new
version there (:mod:`cloud_hub.store_config`; viewers read only). A box without a
heartbeat for more than ``FOOTFALL_HUB_OFFLINE_MIN`` minutes (default 15) is offline.
"""

from __future__ import annotations

import logging
import os
from typing import Final

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request
from flask import url_for as flask_url_for
from werkzeug.wrappers import Response as BaseResponse

from cloud_hub import accounts, heartbeats, store_config, tables
from cloud_hub.dashboard import _csv, _engine, _me, _now_ms, guard, signed_in

logger = logging.getLogger(__name__)

bp = Blueprint("fleet", __name__)
OFFLINE_ENV: Final = "FOOTFALL_HUB_OFFLINE_MIN"
FLEET_COLUMNS: Final = (
    "store", "name", "region", "status", "reason", "last_seen_utc", "software",
    "config_version", "cameras_up", "cameras", "disk_free_mb", "sync_backlog_rows",
    "clock_offset_s",
)  # fmt: skip


def offline_after_ms(app: Flask) -> int:
    """The app's offline threshold in milliseconds."""
    return int(app.config["FLEET_OFFLINE_AFTER_MIN"] * 60_000)


def _row(box: heartbeats.BoxStatus) -> list[str]:
    beat = box.beat
    cameras = beat.get("cameras", [])
    free = beat.get("disk_free_bytes")
    offset = None
    if beat and box.last_seen_ms is not None:
        offset = (beat["sent_ms"] - box.last_seen_ms) / 1000
    return [
        box.store_id, box.name, box.region_id, box.status, box.reason,
        tables.utc(box.last_seen_ms) if box.last_seen_ms else "", box.software,
        tables.cell(box.config_version), tables.cell(sum(c["state"] == "up" for c in cameras)),
        tables.cell(len(cameras)) if beat else "",
        tables.cell(None if free is None else free >> 20),
        tables.cell(beat.get("sync_backlog_rows")), tables.cell(offset),
    ]  # fmt: skip


def _fleet_table() -> tuple[tables.Table, list[str], list[str]]:
    """The visible boxes as a table (filtered), with the regions and versions to filter by."""
    with _engine().connect() as conn:
        visible = accounts.visible_stores(conn, _me())
        boxes = heartbeats.fleet(conn, visible, _now_ms(), offline_after_ms(current_app))
    regions = sorted({b.region_id for b in boxes})
    versions = sorted({b.software for b in boxes if b.software})
    region, software = request.args.get("region", ""), request.args.get("software", "")
    status = request.args.get("status", "")
    chosen = [
        b for b in boxes
        if region in ("", b.region_id) and software in ("", b.software)
        and status in ("", b.status)
    ]  # fmt: skip
    table = tables.Table(FLEET_COLUMNS, [_row(b) for b in chosen], [b.store_id for b in chosen])
    return table, regions, versions


@bp.get("/fleet")
@signed_in()
def fleet() -> str:
    """Every visible box: ok, degraded (why), offline for too long, or never seen."""
    table, regions, versions = _fleet_table()
    return render_template(
        "hub_fleet.html", table=table, regions=regions, versions=versions,
        statuses=heartbeats.STATUSES, args=request.args,
        offline_min=current_app.config["FLEET_OFFLINE_AFTER_MIN"],
    )  # fmt: skip


@bp.get("/fleet.csv")
@signed_in()
def fleet_csv() -> BaseResponse:
    """The fleet page's table as CSV (the same filters)."""
    return _csv(_fleet_table()[0], "fleet")


def _visible(store_id: str) -> tuple[str, str, str]:
    with _engine().connect() as conn:
        found = [s for s in accounts.visible_stores(conn, _me()) if s[0] == store_id]
    if not found:
        abort(404)
    return found[0]


@bp.route("/stores/<store_id>/config", methods=["GET", "POST"])
@signed_in()
def store_config_page(store_id: str) -> str | BaseResponse | tuple[str, int]:
    """A store's config: what the box runs, the hub's versions, a conflict; a new version."""
    store = _visible(store_id)
    issues: list[str] = []
    text = None
    if request.method == "POST":
        text = request.form.get("yaml", "").replace("\r\n", "\n")
        parent_text = request.form.get("parent", "")
        parent = int(parent_text) if parent_text.isdigit() else None
        try:
            with _engine().begin() as conn:
                saved = store_config.save_version(
                    conn, store_id, text, parent, _me().username, _now_ms()
                )
        except store_config.ConfigRefusedError as exc:
            logger.info("config of %s refused: %s", store_id, exc)
            issues = exc.issues
        else:
            flash(f"Saved config version {saved.version}; the box takes it on its next sync.",
                  "ok")  # fmt: skip
            return redirect(flask_url_for("fleet.store_config_page", store_id=store_id))
    with _engine().connect() as conn:
        box = store_config.box_running(conn, store_id)
        found = store_config.versions(conn, store_id)
    newest = found[0] if found else None
    if text is None:
        text = box.yaml if box else (newest.yaml if newest else "")
    page = render_template(
        "hub_store_config.html", store=store, box=box, versions=found,
        conflict=store_config.conflict(newest, box), issues=issues, text=text,
        pending=store_config.pending(newest, box), newest=newest,
    )  # fmt: skip
    return (page, 400) if issues else page


def install(app: Flask) -> None:
    """Add the fleet pages to the hub's app (after :func:`cloud_hub.dashboard.install`)."""
    app.config.setdefault("FLEET_OFFLINE_AFTER_MIN", _offline_min())
    app.register_blueprint(bp)


def _offline_min() -> float:
    text = os.environ.get(OFFLINE_ENV, "")
    try:
        value = float(text) if text else float(heartbeats.OFFLINE_AFTER_MIN)
    except ValueError:
        logger.warning("%s=%r is not a number: using %d min", OFFLINE_ENV, text[:32],
                       heartbeats.OFFLINE_AFTER_MIN)  # fmt: skip
        value = float(heartbeats.OFFLINE_AFTER_MIN)
    return value if value > 0 else float(heartbeats.OFFLINE_AFTER_MIN)


guard(bp)
