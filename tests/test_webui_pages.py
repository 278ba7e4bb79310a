"""Every dashboard page on a database the real engine filled from a simulated supermarket."""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from flask.testing import FlaskClient

from appliance.analytics.engine import BUCKET_MS
from appliance.analytics.live import snapshot
from appliance.analytics.metrics import MetricSettings
from appliance.analytics.rollups import rollup
from appliance.box.health import Health
from appliance.config import load_config
from local_db import connect
from tests.webui_support import SimStore, app_on_copy, build_sim_store, sign_in
from vision.worker import WorkerStats
from webui.heatmap import merge_factor

TZ = ZoneInfo("Europe/Berlin")
HX = {"HX-Request": "true"}
PAGES = {
    "/": "overview",
    "/live": "page-live",
    "/heatmap": "page-heatmap",
    "/dwell": "page-dwell",
    "/queues": "page-queues",
    "/flow": "page-flow",
    "/trends": "page-trends",
    "/compare": "page-compare",
    "/health": "page-health",
    "/alerts": "page-alerts",
}


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> SimStore:
    return build_sim_store(tmp_path_factory.mktemp("sim"))


def local_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, TZ).strftime("%Y-%m-%dT%H:%M")


def window(t0_ms: int, t1_ms: int) -> str:
    return f"window=custom&from={local_text(t0_ms)}&to={local_text(t1_ms)}"


def client_for(sim: SimStore, tmp_path: Path, now_ms: int, role: str = "manager") -> FlaskClient:
    client = app_on_copy(sim, tmp_path, now_ms).test_client()
    assert sign_in(client, role) == 302
    return client


@pytest.fixture
def client(sim: SimStore, tmp_path: Path) -> FlaskClient:
    return client_for(sim, tmp_path, sim.end_ms + 60_000)


@pytest.fixture
def db(client: FlaskClient) -> Iterator[sqlite3.Connection]:
    conn = connect(client.application.config["FOOTFALL_DB"], readonly=True)
    yield conn
    conn.close()


def text(client: FlaskClient, url: str, status: int = 200, **kw: object) -> str:
    response = client.get(url, **kw)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def row(page: str, attr: str, value: str) -> str:
    match = re.search(rf'<tr[^>]*{attr}="{re.escape(value)}"[^>]*>(.*?)</tr>', page, re.S)
    assert match, f"no row {attr}={value}"
    return match.group(1)


def cell(html: str, cls: str) -> str:
    match = re.search(rf'class="{cls}"[^>]*>([^<]*)<', html)
    assert match, f"no cell {cls}"
    return match.group(1).strip()


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_is_a_full_page_and_an_htmx_fragment(client: FlaskClient, path: str) -> None:
    full = text(client, path)
    assert full.startswith("<!doctype html>") and "hx-headers=" in full
    assert 'aria-current="page"' in full  # the nav marks where we are
    fragment = text(client, path, headers=HX)
    assert "<html" not in fragment and "<nav" not in fragment
    assert f'id="{PAGES[path]}"' in fragment
    assert "<script>" not in full and " on" + "click=" not in full  # CSP: no inline code


def test_pages_label_times_in_the_store_time_zone(client: FlaskClient, sim: SimStore) -> None:
    page = text(client, f"/dwell?{window(sim.start_ms, sim.end_ms)}", headers=HX)
    start = datetime.fromtimestamp(sim.start_ms / 1000, TZ)
    assert f"{start:%H:%M}" == "17:00"  # the scenario starts at 17:00 store time (15:00 UTC)
    assert "Wed 5 Jun 2024 17:00 – 17:35" in page and "Europe/Berlin" in page


def test_dwell_shows_the_stored_percentiles_of_one_bucket(
    client: FlaskClient, sim: SimStore, db: sqlite3.Connection
) -> None:
    b = sim.start_ms + 3 * BUCKET_MS
    page = text(client, f"/dwell?{window(b, b + BUCKET_MS)}", headers=HX)
    rows = db.execute(
        "SELECT zone_id, visits, p50_s, p90_s FROM agg_dwell WHERE bucket_ms = ?", (b,)
    ).fetchall()
    assert len(rows) >= 5
    for zone, visits, p50, p90 in rows:
        html = row(page, "data-zone", zone)
        assert cell(html, "visits") == str(visits)
        assert cell(html, "p50") == f"{p50:,.1f} s"  # exact: no ≈
        assert cell(html, "p90") == f"{p90:,.1f} s"


def test_dwell_over_many_buckets_adds_visits_and_marks_percentiles_approximate(
    client: FlaskClient, sim: SimStore, db: sqlite3.Connection
) -> None:
    page = text(client, f"/dwell?{window(sim.start_ms, sim.end_ms)}")
    totals = db.execute(
        "SELECT zone_id, sum(visits), count(*) FROM agg_dwell GROUP BY 1"
    ).fetchall()
    for zone, visits, buckets in totals:
        html = row(page, "data-zone", zone)
        assert cell(html, "visits") == str(visits)
        if buckets > 1:
            assert cell(html, "p50").startswith("≈")


def test_heatmap_draws_every_cell_and_hides_small_ones_with_k(
    client: FlaskClient, sim: SimStore, db: sqlite3.Connection
) -> None:
    config = load_config(sim.config)
    f = merge_factor(config, MetricSettings().heatmap_cell_m)
    q = window(sim.start_ms, sim.end_ms)
    cells = db.execute(
        "SELECT cell_x / ?, cell_y / ?, sum(person_s), max(people) FROM agg_heatmap GROUP BY 1, 2",
        (f, f),
    ).fetchall()
    page = text(client, f"/heatmap?{q}", headers=HX)
    drawn = re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" class="h\d">', page)
    assert len(drawn) == len(cells) > 100
    minutes = sum(c[2] for c in cells) / 60
    assert f"{minutes:,.1f} person-minutes shown" in page
    small = sum(1 for c in cells if c[3] < 3)
    assert 0 < small < len(cells)
    k3 = text(client, f"/heatmap?{q}&k=3", headers=HX)
    assert f'<span id="heat-hidden">{small}</span> cells hidden' in k3
    shown = re.findall(r'class="h\d"></rect>', k3)
    assert len(shown) == len(cells) - small


def test_queues_totals_and_series_match_the_database(
    client: FlaskClient, sim: SimStore, db: sqlite3.Connection
) -> None:
    page = text(client, f"/queues?{window(sim.start_ms, sim.end_ms)}", headers=HX)
    rows = db.execute(
        "SELECT zone_id, sum(joined), sum(served), sum(abandoned), sum(wait_total_s) "
        "FROM agg_queue GROUP BY 1"
    ).fetchall()
    assert {r[0] for r in rows} == {"queue-1", "queue-2", "queue-3"}
    assert sum(r[1] for r in rows) > 5
    for zone, joined, served, abandoned, wait in rows:
        html = row(page, "data-zone", zone)
        assert cell(html, "joined") == str(joined)
        assert cell(html, "served") == str(served)
        assert cell(html, "abandoned") == str(abandoned)
        expected = "—" if not served else f"{wait / served:,.1f} s"
        assert cell(html, "mean-wait") == expected
    # the chart data: one x per closed bucket, the missing bucket a gap with its status
    blocks = re.findall(
        r'<script type="application/json" class="chart-data"[^>]*>(.*?)</script>', page, re.S
    )
    assert len(blocks) == 2
    spec = pd.read_json(io.StringIO(blocks[0]), typ="series")
    n = (sim.end_ms - sim.start_ms) // BUCKET_MS
    assert len(spec["x"]) == n
    missing = spec["status"].index("missing")
    assert spec["x"][missing] * 1000 == sim.missing_ms
    assert all(s["values"][missing] is None for s in spec["series"])
    partial = spec["status"].index("partial")
    assert spec["x"][partial] * 1000 == sim.partial_ms
    assert spec["series"][0]["values"][partial] is not None  # partial: shown, but marked
    # the table behind the charts: the missing bucket reads "no data", never 0
    missing_row = re.search(r'<tr class="st-missing">(.*?)</tr>', page, re.S)
    assert missing_row and "no data" in missing_row.group(1) and ">0<" not in missing_row.group(1)


def test_flow_matrix_and_funnel_match_the_database(
    client: FlaskClient, sim: SimStore, db: sqlite3.Connection
) -> None:
    q = window(sim.start_ms, sim.end_ms)
    page = text(client, f"/flow?{q}", headers=HX)
    funnel = dict(db.execute("SELECT step, sum(people) FROM agg_funnel GROUP BY 1").fetchall())
    assert funnel[0] > 10
    for step, people in funnel.items():
        html = row(page, "data-step", str(step))
        assert cell(html, "people") == str(people)
        assert cell(html, "of-first") == f"{100 * people / funnel[0]:,.1f} %"
    pairs = db.execute(
        "SELECT from_zone, to_zone, sum(count) FROM agg_transitions GROUP BY 1, 2 ORDER BY 3 DESC"
    ).fetchall()
    top_from, top_to, top_n = pairs[0]
    matrix_row = re.search(rf"<tr><th>{top_from}</th>(.*?)</tr>", page, re.S)
    assert matrix_row
    assert re.search(rf'data-to="{top_to}"[^>]*>{top_n}<', matrix_row.group(1))
    small = sum(1 for p in pairs if p[2] < 2)
    k2 = text(client, f"/flow?{q}&k=2", headers=HX)
    assert k2.count('class="suppressed"') == small > 0


def test_trends_by_hour_count_footfall_in_and_show_gaps_as_no_data(
    client: FlaskClient, sim: SimStore, db: sqlite3.Connection
) -> None:
    page = text(client, "/trends?period=hour&date=2024-06-05", headers=HX)
    ins = db.execute("SELECT sum(count) FROM agg_footfall WHERE direction = 'in'").fetchone()[0]
    assert ins > 10
    rows = re.findall(
        r"<tr[^>]*><td>Wed 5 Jun 2024 (\d\d):00</td>\s*<td class=\"now\">(.*?)</td>", page, re.S
    )
    assert len(rows) == 24
    by_hour = dict(rows)
    assert by_hour["17"].split()[0] == str(ins)
    assert "partial" in by_hour["17"]  # the hour holds the partial and the missing bucket
    assert by_hour["16"].startswith("—") and "no data" in by_hour["16"]  # box was off: no zero
    assert "future" not in by_hour["18"] and "not yet" in by_hour["18"]
    assert f'<td class="total">{ins}</td>' in page


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_trends_by_day_week_month_total_the_same_people(
    client: FlaskClient, db: sqlite3.Connection, period: str
) -> None:
    ins = db.execute("SELECT sum(count) FROM agg_footfall WHERE direction = 'in'").fetchone()[0]
    page = text(client, f"/trends?period={period}&date=2024-06-05", headers=HX)
    assert f'<td class="total">{ins}</td>' in page
    assert "last year" in page


def test_compare_two_ranges_side_by_side(client: FlaskClient, db: sqlite3.Connection) -> None:
    ins = db.execute("SELECT sum(count) FROM agg_footfall WHERE direction = 'in'").fetchone()[0]
    page = text(
        client,
        "/compare?mode=ab&a_from=2024-06-04&a_to=2024-06-04&b_from=2024-06-05&b_to=2024-06-05",
        headers=HX,
    )
    html = row(page, "data-metric", "Footfall/people in")
    assert cell(html, "a") == "—"  # no data on the 4th: a blank, not a zero
    assert cell(html, "b") == f"{ins:,.1f}"
    assert "not like for like" in page
    change = text(client, "/compare?mode=change&change=2024-06-05&days=1", headers=HX)
    assert cell(row(change, "data-metric", "Footfall/people in"), "b") == f"{ins:,.1f}"
    assert "Tue 4 Jun 2024 00:00" in change and "Wed 5 Jun 2024 00:00" in change


def test_health_shows_cameras_coverage_and_storage(sim: SimStore, tmp_path: Path) -> None:
    during_cut = client_for(sim, tmp_path, sim.missing_ms + 60_000)
    page = text(during_cut, "/health", headers=HX)
    for cam in ("west", "middle", "east"):
        html = row(page, "data-camera", cam)
        assert "down" in html and "power cut" in html
    assert "not configured" in page and "MiB" in page and "GiB" in page

    # the running box's own health object, fed as the runtime feeds it
    mono = [0.0]
    health = Health(load_config(sim.config), sim.db, monotonic=lambda: mono[0])
    counters = WorkerStats()
    health.attach_counters("west", counters)
    health.sample()
    counters.frames, counters.dropped = 95, 12
    mono[0] = 10.0
    health.sample()
    (tmp_path / "running").mkdir()
    running = client_for(sim, tmp_path / "running", sim.sim_end_ms + 10_000)
    running.application.extensions["footfall_health"] = health
    page = text(running, "/health", headers=HX)
    west = row(page, "data-camera", "west")
    assert cell(west, "fps") == "9.5" and cell(west, "dropped") == "12"
    assert cell(west, "state") == "" and "up" in west
    assert re.search(r'class="age">\d+\.\d s ago<', west)


def test_a_bad_window_is_explained_and_the_default_shown(client: FlaskClient) -> None:
    page = text(client, "/dwell?window=custom&from=yesterday&to=2024-06-05", 400)
    assert "is not a date" in page and 'id="page-dwell"' in page
    assert "unknown period" in text(client, "/trends?period=fortnight", 400)


def test_csv_download_is_the_export_of_the_window(
    client: FlaskClient, sim: SimStore, db: sqlite3.Connection
) -> None:
    q = window(sim.start_ms, sim.end_ms)
    response = client.get(f"/export/agg_dwell.csv?{q}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    got = pd.read_csv(io.StringIO(response.get_data(as_text=True)))
    want = pd.read_sql_query("SELECT * FROM agg_dwell ORDER BY bucket_ms", db)
    assert len(got) == len(want) > 10
    pd.testing.assert_frame_equal(
        got[want.columns].sort_values(["bucket_ms", "zone_id"], ignore_index=True),
        want.sort_values(["bucket_ms", "zone_id"], ignore_index=True),
        check_dtype=False,
    )
    first = got.iloc[0]
    assert first["local_time"].startswith("2024-06-05T17:") and first["local_time"].endswith(
        "+0200"
    )
    statuses = dict(zip(got["bucket_ms"], got["coverage"], strict=False))
    assert statuses[sim.partial_ms] == "partial"


def test_csv_download_rolls_up_and_suppresses_like_footfall_export(
    client: FlaskClient, sim: SimStore, db: sqlite3.Connection
) -> None:
    q = window(sim.start_ms, sim.end_ms)
    hourly = pd.read_csv(io.BytesIO(client.get(f"/export/agg_footfall.csv?{q}&period=hour").data))
    raw = pd.read_sql_query("SELECT * FROM agg_footfall", db)
    want = rollup(raw, "agg_footfall", "hour", "Europe/Berlin")
    assert hourly["count"].sum() == want["count"].sum() == raw["count"].sum()
    assert list(hourly["coverage"].unique()) == ["partial"]  # 17:00-18:00 has gaps
    k3 = pd.read_csv(io.BytesIO(client.get(f"/export/agg_heatmap.csv?{q}&k=3").data))
    total = db.execute("SELECT count(*) FROM agg_heatmap WHERE people >= 3").fetchone()[0]
    assert len(k3) == total and (k3["people"] >= 3).all()
    assert client.get(f"/export/track_points.csv?{q}").status_code == 404


def test_live_shows_the_snapshot_of_now_and_polls(sim: SimStore, tmp_path: Path) -> None:
    config = load_config(sim.config)
    now = sim.start_ms + 15 * 60_000
    client = client_for(sim, tmp_path, now)
    page = text(client, "/live", headers=HX)
    conn = connect(client.application.config["FOOTFALL_DB"], readonly=True)
    try:
        want = snapshot(conn, config, now)
    finally:
        conn.close()
    assert want.store_occupancy > 3
    assert f"<strong>{want.store_occupancy}</strong> customers" in page
    customers = page.count('class="customer"></circle>')
    staff = page.count('class="staff"></circle>')
    assert customers + staff == len(want.people)
    assert staff == sum(p.staff for p in want.people)
    zones = page.split('id="live-zones"')[1]
    for zone, n in want.zone_counts.items():
        assert cell(row(zones, "data-zone", zone), "customers") == str(n)
    for queue, n in want.queue_lengths.items():
        assert cell(row(page, "data-zone", queue), "length") == str(n)
    assert 'data-poll-ms="2000" hx-trigger="poll" hx-get="/live"' in page
    assert "17:15:00" in page  # the moment, in store time
    # a later poll goes through the app's cache and still matches a fresh snapshot
    later = now + 2_000
    client.application.config["FOOTFALL_CLOCK"] = lambda: later / 1000
    page = text(client, "/live", headers=HX)
    conn = connect(client.application.config["FOOTFALL_DB"], readonly=True)
    try:
        fresh = snapshot(conn, config, later)
    finally:
        conn.close()
    assert f"<strong>{fresh.store_occupancy}</strong> customers" in page
    assert page.count("</circle>") == len(fresh.people)


def test_live_draws_the_plan_in_metres_with_line_arrows(client: FlaskClient) -> None:
    page = text(client, "/live", headers=HX)
    assert 'viewBox="-0.5 -0.5 31.0 21.0"' in page  # the 30 x 20 m floor
    assert 'class="zone k-queue"' in page and 'class="zone k-staff_only"' in page
    arrow = re.search(r'<polygon class="arrow" points="([^"]+)"', page)
    assert arrow
    tip_y = [float(p.split(",")[1]) for p in arrow.group(1).split()][3]
    assert tip_y < 20.0  # the door is on the front wall (y = 20): the arrow points inside
