"""Helpers for dashboard tests: an app on a fresh migrated database, accounts, CSRF tokens.

:func:`build_sim_store` fills a database with the real engine from a simulated store.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.alerts import Transition
from appliance.alerts.log import record
from appliance.analytics.engine import BUCKET_MS, LOOKBACK_MS, analyze_range, compute
from appliance.analytics.ingest import ingest_csv
from appliance.config import BoxConfig, load_config
from appliance.config.live import LiveConfig
from lab.sim import load_scenario, load_store_geometry, simulate
from local_db import connect, migrate
from local_db.observations import points_between
from webui import create_app
from webui.accounts import ROLES, create_user

REPO = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_app(tmp_path: Path, config: Path | LiveConfig | None = None, **kwargs: object) -> Flask:
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


def raise_alert(db: Path, config: BoxConfig, t_ms: int = 1_000, message: str = "too busy") -> int:
    """Record the config's first alert rule as raised (as the alert engine does); its id."""
    rule = config.alerts[0]
    conn = connect(db)
    try:
        return record(
            conn,
            config.store.id,
            [Transition("raise", rule, rule.target or "", t_ms, 9.0, message)],
        )[0]
    finally:
        conn.close()


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


SUPERMARKET = REPO / "examples" / "sim" / "supermarket"


@dataclass(frozen=True)
class SimStore:
    """A database filled by the real chain: simulated supermarket → ingest → engine.

    Attributes:
        db: the SQLite file (copy it before use).
        config: the store YAML.
        start_ms: the first bucket's start.
        end_ms: the end of the last analysed bucket.
        sim_end_ms: the last simulated sample.
        partial_ms: a bucket where one camera was down for a while.
        missing_ms: a bucket where every camera was down.
    """

    db: Path
    config: Path
    start_ms: int
    end_ms: int
    sim_end_ms: int
    partial_ms: int
    missing_ms: int


def build_sim_store(folder: Path, duration_s: float = 1500, seed: int = 3) -> SimStore:
    """Simulate ``duration_s`` of supermarket arrivals and run ingest and the engine on it.

    The scenario's own camera outage (one camera, 25-30 min in) makes a partial bucket;
    all cameras are then recorded down for the next bucket, which becomes missing.
    """
    scenario = load_scenario(SUPERMARKET / "scenario.yaml")
    scenario = scenario.model_copy(
        update={"arrivals": scenario.arrivals.model_copy(update={"duration_s": duration_s})}
    )
    sim = simulate(scenario, load_store_geometry(scenario, SUPERMARKET / "scenario.yaml"), seed)
    config_path = SUPERMARKET / "store.yaml"
    config = load_config(config_path)
    start = sim.start_ms - sim.start_ms % BUCKET_MS
    outage = sim.camera_outages.iloc[0]
    partial = int(outage["from_ms"]) - int(outage["from_ms"]) % BUCKET_MS
    missing = max(partial, sim.end_ms - sim.end_ms % BUCKET_MS) + BUCKET_MS
    events = [(cam, sim.start_ms - 1, "up", "") for cam in sim.camera_uptime]
    events += [
        (str(outage["camera_id"]), int(outage["from_ms"]), "down", "simulated outage"),
        (str(outage["camera_id"]), int(outage["to_ms"]), "up", ""),
    ]
    events += [(cam, missing, "down", "power cut") for cam in sim.camera_uptime]
    events += [(cam, missing + BUCKET_MS, "up", "") for cam in sim.camera_uptime]
    db = folder / "sim.db"
    conn = connect(db)
    try:
        migrate(conn)
        ingest_csv(conn, sim.write_csv(folder / "observations.csv"), config)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO camera_events VALUES (?, ?, ?, ?)", events)
        conn.execute("COMMIT")
        analyze_range(conn, config, start, missing + BUCKET_MS)
    finally:
        conn.close()
    return SimStore(db, config_path, start, missing + BUCKET_MS, sim.end_ms, partial, missing)


def stop_analysis_at(db: Path, t_ms: int) -> None:
    """Forget the aggregates from ``t_ms`` on, as if the minute analysis had not got there yet."""
    conn = sqlite3.connect(db)
    try:
        for table in ("agg_windows", "agg_footfall", "agg_occupancy", "agg_queue"):
            conn.execute(f"DELETE FROM {table} WHERE bucket_ms >= ?", (t_ms,))
        conn.commit()
    finally:
        conn.close()


def visitors_by_engine(db: Path, config: BoxConfig, analysed_to: int, now_ms: int) -> int:
    """People in since midnight at ``now``: the stored buckets before ``analysed_to``, and the
    crossings the engine finds in the open part ``[analysed_to, now)`` (with its full lookback).
    """
    conn = connect(db, readonly=True)
    try:
        (stored,) = conn.execute(
            "SELECT coalesce(sum(count), 0) FROM agg_footfall WHERE direction = 'in' "
            "AND bucket_ms < ?",
            (analysed_to,),
        ).fetchone()
        points = points_between(conn, analysed_to - LOOKBACK_MS, now_ms)
    finally:
        conn.close()
    crossings = compute(points, config, analysed_to, analysed_to + BUCKET_MS).crossings
    inwards = crossings[crossings["direction"] == "in"]
    return int(stored) + int(inwards["t_ms"].between(analysed_to, now_ms - 1).sum())


def app_on_copy(store: SimStore, tmp_path: Path, now_ms: int) -> Flask:
    """The dashboard over a copy of ``store``'s database, its clock fixed at ``now_ms``."""
    shutil.copyfile(store.db, tmp_path / "box.db")
    app = make_app(tmp_path, store.config)
    app.config["FOOTFALL_CLOCK"] = lambda: now_ms / 1000
    return app


def store_copy(tmp_path: Path, layout: str = "supermarket") -> Path:
    """A simulated store's YAML copied into ``tmp_path``, its database in ``tmp_path/box.db``."""
    from appliance.config.editing import read_document

    doc = read_document((REPO / "examples" / "sim" / layout / "store.yaml").read_text())
    doc.root["storage"]["db_path"] = str(tmp_path / "box.db")
    path = tmp_path / "store.yaml"
    path.write_text(doc.text())
    return path


def post_json(client: FlaskClient, path: str, body: object, token: str) -> TestResponse:
    """POST a JSON body with the CSRF token in the ``X-CSRFToken`` header (as editor.js does)."""
    return client.post(path, json=body, headers={"X-CSRFToken": token})
