"""The hub's HTTP API (Flask): ``POST /api/v1/batches`` and ``GET /healthz``.

A batch is checked in this order, and the first failure answers a 4xx with
``{"error": reason}`` (plus ``"path"`` for a body error), is logged as one line without
a traceback, and stores nothing: the store is registered (401) → a signature matches
one of its active secrets (401) → the signed timestamp is within the tolerance (401)
→ the delivery is not a replay (409) → the body is gzip (415) within the size bounds
(413) → the schema version is known (400) → the batch validates (400) → its store is
the signing store (403) → its id is the ``webhook-id`` (400) → it is applied in one
transaction (:func:`cloud_hub.ingest.apply_batch`) → 200 with the ack.

``POST /api/v1/pos`` takes a store's POS hours (:mod:`cloud_hub.pos`), signed and
replay-checked as a batch is (401/409), plain JSON, all rows or none (400 naming the
row and key). The managers' dashboard (:mod:`cloud_hub.dashboard`) is served by the
same app.
"""

from __future__ import annotations

import json
import logging
import time
import zoneinfo
from collections.abc import Callable

from flask import Flask, Response, request
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from cloud_hub import dashboard, downlink, fleet_pages, heartbeats, pos, rollouts
from cloud_hub.ingest import Delivery, IngestError, apply_batch, delivery_seen
from cloud_hub.registry import active_secrets, store_tz
from cloud_hub.schema import seen_deliveries
from wire import (
    BATCH_PATH,
    HEADER_STORE,
    MAX_BODY_BYTES,
    Ack,
    BodyTooLargeError,
    DownlinkItem,
    SignatureError,
    TimestampError,
    WireError,
    check_timestamp,
    decode_batch,
    encode_answer,
    parse_headers,
    verify,
)
from wire.heartbeat import HEARTBEAT_PATH, decode_heartbeat
from wire.update_report import REPORT_PATH, decode_update_report

logger = logging.getLogger(__name__)


class RefusedError(Exception):
    """A request the hub answers with a 4xx (``status``) and a reason."""

    def __init__(self, status: int, reason: str, path: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.path = status, reason, path


def _json(status: int, body: dict[str, object]) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _authenticate(engine: Engine, body: bytes, now: float) -> tuple[str, Delivery]:
    """The store and delivery of a request whose signature and timestamp check out."""
    store_id = request.headers.get(HEADER_STORE, "")
    if not store_id:
        raise RefusedError(401, f"missing header {HEADER_STORE}")
    with engine.connect() as conn:
        secrets = active_secrets(conn, store_id, int(now * 1000))
        known = secrets or store_tz(conn, store_id) is not None
    if not known:
        raise RefusedError(401, f"unknown store {store_id[:64]!r}")
    if not secrets:
        raise RefusedError(401, f"store {store_id!r} has no active secret (rotate one)")
    try:
        signed = parse_headers(dict(request.headers.items()))
        verify(secrets, signed, body)
        check_timestamp(signed.timestamp, now)
    except (SignatureError, TimestampError) as exc:
        raise RefusedError(401, str(exc)) from exc
    return store_id, Delivery(store_id, signed.msg_id, signed.timestamp)


def _ingest(engine: Engine, now: float) -> Response:
    body = request.get_data(cache=False)
    store_id, delivery = _authenticate(engine, body, now)
    with engine.connect() as conn:
        if delivery_seen(conn, delivery):
            raise RefusedError(409, f"replayed delivery: batch {delivery.msg_id} signed at "
                          f"{delivery.timestamp_s} was received before")  # fmt: skip
    if request.headers.get("Content-Encoding", "").lower() != "gzip":
        raise RefusedError(415, "the body must be gzip-compressed (Content-Encoding: gzip)")
    try:
        batch = decode_batch(body)
    except BodyTooLargeError as exc:
        raise RefusedError(413, exc.reason, exc.path) from exc
    except WireError as exc:
        raise RefusedError(400, exc.reason, exc.path) from exc
    if batch.store_id != store_id:
        raise RefusedError(
            403, f"the batch is for store {batch.store_id!r} but signed by {store_id!r}"
        )
    if batch.batch_id != delivery.msg_id:
        raise RefusedError(
            400, f"webhook-id {delivery.msg_id!r} is not the batch id {batch.batch_id!r}"
        )
    try:
        ack = apply_batch(engine, batch, delivery, int(now * 1000))
    except IngestError as exc:
        raise RefusedError(exc.status, exc.reason) from exc
    logger.info(
        "batch %s from %s: %d rows, %d applied%s",
        batch.batch_id, store_id, batch.row_count, ack.applied_rows,
        " (duplicate)" if ack.duplicate else "",
    )  # fmt: skip
    answer = encode_answer(ack, _downlink(engine, store_id, now))
    return Response(answer, status=200, mimetype="application/json")


def _downlink(engine: Engine, store_id: str, now: float) -> list[DownlinkItem]:
    """The store's downlink items (:mod:`cloud_hub.downlink`), signed with its newest secret."""
    now_ms = int(now * 1000)
    with engine.connect() as conn:
        secrets = active_secrets(conn, store_id, now_ms)
        return downlink.items_for(conn, store_id, secrets[0], now_ms) if secrets else []


def _record_delivery(conn: Connection, delivery: Delivery, what: str) -> None:
    """Refuse a replayed delivery (409), else record it as seen."""
    if delivery_seen(conn, delivery):
        raise RefusedError(409, f"replayed delivery: {what} {delivery.msg_id} was received before")
    conn.execute(
        seen_deliveries.insert().values(
            store_id=delivery.store_id, msg_id=delivery.msg_id, timestamp_s=delivery.timestamp_s
        )
    )


def _heartbeat(engine: Engine, now: float) -> Response:
    """Store a box's signed heartbeat (:mod:`cloud_hub.heartbeats`); answer its downlink."""
    body = request.get_data(cache=False)
    store_id, delivery = _authenticate(engine, body, now)
    try:
        beat = decode_heartbeat(body)
    except BodyTooLargeError as exc:
        raise RefusedError(413, exc.reason, exc.path) from exc
    except WireError as exc:
        raise RefusedError(400, exc.reason, exc.path) from exc
    if beat["heartbeat_id"] != delivery.msg_id:
        raise RefusedError(400, f"webhook-id {delivery.msg_id!r} is not the heartbeat id")
    try:
        with engine.begin() as conn:
            _record_delivery(conn, delivery, "heartbeat")
            heartbeats.store_heartbeat(conn, store_id, beat, int(now * 1000))
            rollouts.advance(conn, int(now * 1000), store_id, forecast=False)
    except heartbeats.HeartbeatError as exc:
        raise RefusedError(exc.status, exc.reason) from exc
    logger.info("heartbeat from %s: %s, config version %s", store_id, beat["status"],
                beat["config"]["version"])  # fmt: skip
    ack = Ack(beat["heartbeat_id"], 0, False)
    answer = encode_answer(ack, _downlink(engine, store_id, now))
    return Response(answer, status=200, mimetype="application/json")


def _update_report(engine: Engine, now: float) -> Response:
    """Keep a box's signed update outcome on its rollout, then move the rollout on."""
    body = request.get_data(cache=False)
    store_id, delivery = _authenticate(engine, body, now)
    try:
        report = decode_update_report(body)
    except WireError as exc:
        raise RefusedError(400, exc.reason, exc.path) from exc
    try:
        with engine.begin() as conn:
            _record_delivery(conn, delivery, "report")
            kept = rollouts.record_report(conn, store_id, report, int(now * 1000))
            events = (
                rollouts.advance(conn, int(now * 1000), store_id, forecast=False) if kept else []
            )
    except rollouts.RolloutError as exc:
        raise RefusedError(400, str(exc)) from exc
    return _json(200, {"ok": True, "rollout": report["rollout_id"] if kept else None,
                       "events": events})  # fmt: skip


POS_PATH = "/api/v1/pos"


def _pos(engine: Engine, now: float) -> Response:
    """Store a store's signed POS hours (see :mod:`cloud_hub.pos`)."""
    body = request.get_data(cache=False)
    store_id, delivery = _authenticate(engine, body, now)
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RefusedError(400, f"the body is not JSON: {exc}") from exc
    if not isinstance(document, dict) or set(document) != {"store_id", "hours"}:
        raise RefusedError(400, 'the body must be {"store_id": ..., "hours": [...]}')
    if document["store_id"] != store_id:
        raise RefusedError(403, f"the hours are for store {str(document['store_id'])[:64]!r} "
                                f"but signed by {store_id!r}")  # fmt: skip
    with engine.connect() as conn:
        tz = store_tz(conn, store_id)
    try:
        hours = pos.parse_json(document["hours"], zoneinfo.ZoneInfo(str(tz)))
    except pos.PosError as exc:
        raise RefusedError(400, f"{exc.key}: {exc.message}", exc.where) from exc
    with engine.begin() as conn:
        _record_delivery(conn, delivery, "POS upload")
        stored = pos.store_hours(conn, store_id, hours, int(now * 1000))
    logger.info("POS from %s: %d hours", store_id, stored)
    return _json(200, {"stored": stored})


def _refused(refusal: RefusedError) -> Response:
    logger.warning(
        "%s refused (%d, store %s, id %s): %s%s", request.path,
        refusal.status, request.headers.get(HEADER_STORE, "?")[:64],
        request.headers.get("webhook-id", "?")[:64], refusal.reason,
        f" at {refusal.path}" if refusal.path else "",
    )  # fmt: skip
    body: dict[str, object] = {"error": refusal.reason}
    if refusal.path:
        body["path"] = refusal.path
    return _json(refusal.status, body)


def create_app(engine: Engine, clock: Callable[[], float] = time.time) -> Flask:
    """The hub's Flask app on a migrated database: the ingest and POS APIs, the dashboard.

    Args:
        engine: The hub's database (see :func:`cloud_hub.db.open_engine`).
        clock: Unix seconds now (tests may move it).

    Returns:
        The app.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    def answer(apply: Callable[[Engine, float], Response], what: str) -> Response:
        """Run an upload's handler: its refusal as a 4xx, a database failure as a 503."""
        try:
            return apply(engine, clock())
        except RefusedError as refusal:
            return _refused(refusal)
        except SQLAlchemyError:
            logger.exception("%s not stored: database error", what)
            return _json(503, {"error": "the hub's database is unavailable; retry later"})

    @app.post(BATCH_PATH)
    def batches() -> Response:
        return answer(_ingest, "batch")

    @app.post(HEARTBEAT_PATH)
    def heartbeat() -> Response:
        return answer(_heartbeat, "heartbeat")

    @app.post(REPORT_PATH)
    def update_report() -> Response:
        return answer(_update_report, "update report")

    @app.post(POS_PATH)
    def pos_hours() -> Response:
        return answer(_pos, "POS hours")

    @app.get("/healthz")
    def healthz() -> Response:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            logger.warning("health check: database unavailable: %s", exc)
            return _json(503, {"ok": False, "error": "database unavailable"})
        return _json(200, {"ok": True})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        if status == 413:
            reason = f"the body is over {MAX_BODY_BYTES} bytes"
        else:
            reason = exc.description or exc.name
        logger.warning("refused %s %s (%d): %s", request.method, request.path, status, reason)
        return _json(status, {"error": reason})

    dashboard.install(app, engine, clock)
    fleet_pages.install(app)
    return app
