"""Today and Live against the database: visitors so far, in store now, opening hours, capacity."""

from __future__ import annotations

import html
import json
import re
import shutil
import sqlite3
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient

from appliance.analytics.engine import BUCKET_MS
from appliance.analytics.live import snapshot
from appliance.config import load_config
from local_db import connect
from tests.webui_support import (
    SimStore,
    build_sim_store,
    make_app,
    sign_in,
    stop_analysis_at,
    visitors_by_engine,
)

TZ = ZoneInfo("Europe/Berlin")
HX = {"HX-Request": "true"}
WEEK_MS = 7 * 86_400_000  # no DST change in June


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimStore:
    return build_sim_store(tmp_path_factory.mktemp("sim"))


def client_at(
    sim: SimStore, tmp_path: Path, now_ms: int, analysed_to: int | None = None
) -> FlaskClient:
    """A manager's client over a copy of the store, the analysis stopped at ``analysed_to``."""
    db = tmp_path / "box.db"
    shutil.copyfile(sim.db, db)
    if analysed_to is not None:
        stop_analysis_at(db, analysed_to)
    app = make_app(tmp_path, sim.config)
    app.config["FOOTFALL_CLOCK"] = lambda: now_ms / 1000
    client = app.test_client()
    assert sign_in(client, "manager") == 302
    return client


def page_of(client: FlaskClient, url: str) -> str:
    response = client.get(url, headers=HX)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def card(page: str, card_id: str) -> str:
    match = re.search(rf'<div class="card headline" id="{card_id}">(.*?)</div>', page, re.S)
    assert match, f"no card {card_id}"
    return match.group(1)


def ins(db: Path, t0_ms: int, t1_ms: int) -> int:
    conn = sqlite3.connect(db)
    try:
        row = conn.execute(
            "SELECT coalesce(sum(count), 0) FROM agg_footfall WHERE direction = 'in' "
            "AND bucket_ms >= ? AND bucket_ms < ?",
            (t0_ms, t1_ms),
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


def test_today_counts_analysed_buckets_and_the_open_part_like_the_engine(
    sim: SimStore, tmp_path: Path
) -> None:
    config = load_config(sim.config)
    analysed_to = sim.start_ms + 3 * BUCKET_MS
    now = analysed_to + 150_000  # 2.5 minutes into the bucket the analysis has not closed
    client = client_at(sim, tmp_path, now, analysed_to)
    conn = connect(sim.db, readonly=True)
    try:
        inside = snapshot(conn, config, now).store_occupancy
    finally:
        conn.close()
    analysed = ins(sim.db, 0, analysed_to)
    want = visitors_by_engine(sim.db, config, analysed_to, now)
    assert 0 < analysed < want  # the open part counts people too
    page = page_of(client, "/")
    visitors = card(page, "today-visitors")
    assert f"<strong>{want}</strong>" in visitors
    inside_card = card(page, "today-inside")
    assert f"<strong>{inside}</strong> customers in the store" in inside_card
    assert "of 250 allowed" in inside_card and 'class="light ok"' in inside_card
    live = page_of(client, "/live")
    assert f"<strong>{inside}</strong> customers in the store" in live  # consistent with Live
    assert "updated 17:17:30" in page and "Closed" not in page


def test_today_compares_with_the_same_weekday_last_week_to_the_same_time(
    sim: SimStore, tmp_path: Path
) -> None:
    now = sim.start_ms + 20 * 60_000 + 30_000  # 17:20:30
    client = client_at(sim, tmp_path, now)
    db = Path(client.application.config["FOOTFALL_DB"])
    conn = sqlite3.connect(db)  # last Wednesday: the same day's rows, a week earlier, halved
    conn.execute(
        "INSERT INTO agg_footfall SELECT store_id, bucket_ms - ?, line_id, direction, count / 2 "
        "FROM agg_footfall",
        (WEEK_MS,),
    )
    conn.execute(
        "INSERT INTO agg_windows SELECT store_id, bucket_ms - ?, computed_at_ms, coverage, "
        "status, customers, staff FROM agg_windows",
        (WEEK_MS,),
    )
    conn.commit()
    conn.close()
    week_ago = now - WEEK_MS
    last = ins(db, 0, week_ago - week_ago % BUCKET_MS)  # up to 17:20 last Wednesday
    today = ins(db, now - WEEK_MS // 7, now)
    assert 0 < last < today
    visitors = card(page_of(client, "/"), "today-visitors")
    assert f"<strong>{today}</strong>" in visitors
    assert f'<span class="last-week">{last}</span> by this time last Wed' in visitors
    assert f"{100 * (today - last) / last:+.1f} %" in visitors


def test_today_peak_hour_and_the_chart_run_from_opening_to_closing(
    sim: SimStore, tmp_path: Path
) -> None:
    client = client_at(sim, tmp_path, sim.end_ms + 60_000)
    page = page_of(client, "/")
    assert "17:00–18:00" in card(page, "today-peak")
    assert f"{ins(sim.db, 0, sim.end_ms)} visitors came in" in card(page, "today-peak")
    block = re.search(
        r'<script type="application/json" class="chart-data"[^>]*>(.*?)</script>', page, re.S
    )
    assert block
    spec = json.loads(html.unescape(block.group(1)))
    hours = [datetime.fromtimestamp(x, TZ).strftime("%H:%M") for x in spec["x"]]
    assert hours[0] == "07:00" and hours[-1] == "20:00" and len(hours) == 14  # opens 07, closes 21
    today = next(s for s in spec["series"] if s["label"] == "today")
    assert today["values"][hours.index("17:00")] == ins(sim.db, 0, sim.end_ms)
    assert today["values"][hours.index("19:00")] is None  # not yet, never a zero
    assert spec["status"][hours.index("08:00")] == "missing"  # no data, not an empty store


def test_closed_outside_opening_hours_on_live_and_today(sim: SimStore, tmp_path: Path) -> None:
    late = datetime(2024, 6, 5, 22, 30, tzinfo=TZ).timestamp() * 1000  # closes at 21:00
    client = client_at(sim, tmp_path, round(late))
    for url in ("/", "/live"):
        assert "Closed · opens Thu 6 Jun 2024 07:00" in page_of(client, url)
    saturday_night = datetime(2024, 6, 8, 22, 0, tzinfo=TZ).timestamp() * 1000  # closed Sundays
    client.application.config["FOOTFALL_CLOCK"] = lambda: saturday_night / 1000
    assert "Closed · opens Mon 10 Jun 2024 07:00" in page_of(client, "/live")


def test_today_without_data_says_why_instead_of_zero(tmp_path: Path) -> None:
    client = make_app(tmp_path).test_client()  # the vtest store, nothing recorded
    assert sign_in(client, "manager") == 302
    page = page_of(client, "/")
    visitors = card(page, "today-visitors")
    assert "No data yet today" in visitors and "<strong>0</strong>" not in visitors
    assert "No visitors counted yet today." in card(page, "today-peak")
    assert 'id="today-queues"' not in page  # the store has no queue zones: no queue card
