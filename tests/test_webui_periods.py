"""Windows in the store's time zone, period keys and sums per period (DST included)."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient

from appliance.analytics.coverage import bucket_status, by_period, coverage_by_period
from appliance.analytics.engine import BUCKET_MS
from appliance.analytics.rollups import Period, period_bounds, period_start, rollup
from appliance.cli import main
from local_db import connect, migrate
from local_db.aggregates import footfall_per_period, queue_per_period, table_rows
from tests.webui_support import REPO, make_app, sign_in
from webui.periods import WindowError, window_from_args

EXAMPLE = REPO / "examples" / "vtest.yaml"
# 2025-10-26 is the autumn DST change in Europe; Lord Howe shifts by 30 minutes.
ZONES = ["Europe/Berlin", "Australia/Lord_Howe", "America/St_Johns", "Asia/Kolkata", "UTC"]


def utc_ms(text: str, tz: str) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def reference_key(ms: int, period: Period, tz: str) -> int:
    """A bucket's period start, the slow way: one zoneinfo conversion per bucket.

    In the zones tested no local midnight is skipped or repeated in 2025, so a local
    day, week or month start is one instant.
    """
    here = datetime.fromtimestamp(ms / 1000, ZoneInfo(tz))
    if period == "hour":
        return ms - (here.minute * 60 + here.second) * 1000 - here.microsecond // 1000
    day = here.date()
    if period == "week":
        day -= timedelta(days=day.weekday())
    elif period == "month":
        day = date(day.year, day.month, 1)
    return round(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("period", ["hour", "day", "week", "month"])
def test_the_one_period_keying_matches_a_conversion_of_every_bucket(
    tz: str, period: Period
) -> None:
    # every bucket of the weeks around both 2025 DST changes of the zones (Europe in
    # March and October, Lord Howe's half hour in April and October, St John's in March
    # and November), then every 7th hour of the year
    weeks = [
        np.arange(utc_ms(f"{day}T00:00", "UTC"), utc_ms(f"{day}T00:00", "UTC") + 9 * 86_400_000,
                  BUCKET_MS, dtype=np.int64)
        for day in ("2025-03-05", "2025-03-26", "2025-04-02", "2025-10-01", "2025-10-22",
                    "2025-10-29")
    ]  # fmt: skip
    year = np.arange(utc_ms("2025-01-01T00:00", "UTC"), utc_ms("2026-01-01T00:00", "UTC"),
                     7 * 3_600_000 + BUCKET_MS, dtype=np.int64)  # fmt: skip
    grid = pd.Series(np.unique(np.concatenate([*weeks, year])))
    got = period_start(grid, period, tz)
    want = [reference_key(int(ms), period, tz) for ms in grid]
    assert got.tolist() == want
    assert period_start(grid, None, tz).equals(grid)  # None: the buckets themselves


def test_today_and_yesterday_follow_local_midnight_across_dst() -> None:
    tz = "Europe/Berlin"
    now = utc_ms("2025-10-27T09:07:30", tz)
    today = window_from_args({}, tz, now)
    assert today.t0_ms == utc_ms("2025-10-27T00:00", tz)
    assert today.t1_ms == utc_ms("2025-10-27T09:05", tz)  # the last closed bucket
    yesterday = window_from_args({"window": "yesterday"}, tz, now)
    assert yesterday.t1_ms - yesterday.t0_ms == 25 * 3_600_000  # the clocks went back
    hour = window_from_args({"window": "1h"}, tz, now)
    assert (hour.t0_ms, hour.t1_ms) == (today.t1_ms - 3_600_000, today.t1_ms)
    custom = window_from_args(
        {"window": "custom", "from": "2025-10-20", "to": "2025-10-26"}, tz, now
    )
    assert custom.t1_ms == utc_ms("2025-10-27T00:00", tz)  # a bare end date includes that day
    assert custom.args() == {
        "window": "custom",
        "from": "2025-10-20T00:00",
        "to": "2025-10-27T00:00",
    }
    assert "Mon 20 Oct 2025 00:00" in custom.label


@pytest.mark.parametrize(
    "args, message",
    [
        ({"window": "fortnight"}, "unknown window"),
        ({"window": "custom", "from": "2025-10-27", "to": "2025-10-20"}, "after the start"),
        ({"window": "custom", "from": "27/10/2025", "to": "2025-10-28"}, "is not a date"),
        ({"window": "custom", "from": "2020-01-01", "to": "2025-01-01"}, "400 days"),
    ],
)
def test_bad_windows_are_refused_with_the_reason(args: dict[str, str], message: str) -> None:
    with pytest.raises(WindowError, match=message):
        window_from_args(args, "UTC", utc_ms("2025-10-27T09:00", "UTC"))


def _store_with_random_rows(conn: sqlite3.Connection, t0: int, t1: int) -> np.ndarray:
    """Random ``agg_windows``, ``agg_footfall`` and ``agg_queue`` rows of store 's'."""
    buckets = np.arange(t0, t1, BUCKET_MS, dtype=np.int64)
    rng = np.random.default_rng(1)
    status = rng.choice(["complete", "partial", "missing"], len(buckets), p=[0.8, 0.1, 0.1])
    kept = rng.random(len(buckets)) > 0.05  # some buckets never analysed: missing too
    counts = rng.integers(0, 9, (len(buckets), 3))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO agg_windows VALUES ('s', ?, 0, ?, ?, 0, 0)",
        [(int(b), 1.0 if s == "complete" else 0.5 if s == "partial" else 0.0, str(s))
         for b, s, k in zip(buckets, status, kept, strict=True) if k],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO agg_footfall VALUES ('s', ?, 'door', ?, ?)",
        [(int(b), d, int(c[i])) for b, c in zip(buckets, counts, strict=True)
         for i, d in enumerate(("in", "out"))],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO agg_queue VALUES ('s', ?, 'till', ?, ?, 0, ?, NULL, NULL, 1.0, 2, NULL)",
        [(int(b), int(c[2]), int(c[2]), 10.0 * int(c[2]))
         for b, c in zip(buckets, counts, strict=True)],
    )  # fmt: skip
    conn.execute("COMMIT")
    return buckets


@pytest.mark.parametrize(
    "tz, first, days",
    [
        ("Europe/Berlin", "2025-10-24T06:00", 4),  # Fri .. Mon, Sunday has 25 hours
        ("Europe/Berlin", "2025-03-27T06:00", 7),  # spring: a 23-hour Sunday
        ("Asia/Kolkata", "2025-10-24T06:00", 7),  # +5:30: hours start at :30 UTC
        ("Australia/Lord_Howe", "2025-04-03T06:00", 7),  # DST ends: 30 minutes back
    ],
)
@pytest.mark.parametrize("period", ["hour", "day", "week"])
def test_sql_sums_per_period_agree_with_the_export_rollup(
    tmp_path: Path, tz: str, first: str, days: int, period: Period
) -> None:
    conn = connect(tmp_path / "box.db")
    migrate(conn)
    t0 = utc_ms(first, tz)
    t1 = t0 + days * 86_400_000 - 6 * 3_600_000
    _store_with_random_rows(conn, t0, t1)
    start = t0 + 7 * BUCKET_MS  # a window that starts mid-day, mid-hour
    bounds = period_bounds(start, t1, period, tz)
    got = footfall_per_period(conn, "s", bounds, "in").set_index("key")["n"]
    rows = table_rows(conn, "agg_footfall", start, t1)
    export = rollup(rows[rows["direction"] == "in"], "agg_footfall", period, tz)
    assert got.to_dict() == export.set_index("bucket_ms")["count"].to_dict()
    assert [k for k, _, _ in bounds] == sorted(export["bucket_ms"])  # each period has rows here
    queue = queue_per_period(conn, "s", bounds).set_index("key")
    q_export = rollup(table_rows(conn, "agg_queue", start, t1), "agg_queue", period, tz)
    q_export = q_export.set_index("bucket_ms")
    for col in ("joined", "served", "wait_total_s", "max_len"):
        assert queue[col].to_dict() == q_export[col].to_dict(), col
    closed = t1 - 9 * 3_600_000
    fast = coverage_by_period(conn, "s", start, t1, closed, period, tz)
    slow = by_period(bucket_status(conn, "s", start, t1, closed), period, tz)
    pd.testing.assert_frame_equal(fast[slow.columns], slow, check_dtype=False)
    assert fast.index.tolist() == [k for k, _, _ in bounds]
    conn.close()


def test_sums_per_local_day_follow_the_dst_day(tmp_path: Path) -> None:
    tz = "Europe/Berlin"
    conn = connect(tmp_path / "box.db")
    migrate(conn)
    t0, t1 = utc_ms("2025-10-24T06:00", tz), utc_ms("2025-10-28T00:00", tz)
    _store_with_random_rows(conn, t0, t1)
    bounds = period_bounds(t0, t1, "day", tz)
    assert len(bounds) == 4  # Fri, Sat, Sun, Mon
    sunday = utc_ms("2025-10-26T00:00", tz)
    assert (sunday, sunday, sunday + 25 * 3_600_000) in bounds  # the clocks went back
    closed = utc_ms("2025-10-27T12:00", tz)
    fast = coverage_by_period(conn, "s", t0, t1, closed, "day", tz)
    assert list(fast["status"]) == ["partial", "partial", "partial", "partial"]
    assert fast.loc[sunday, "expected"] == 25 * 12
    conn.close()


EDGE_DAYS = ["0001-01-01", "9999-12-31", "1999-12-31", "2101-01-01"]


@pytest.mark.parametrize("day", EDGE_DAYS)
@pytest.mark.parametrize("field", ["from", "to"])
def test_windows_outside_2000_to_2100_are_refused(day: str, field: str) -> None:
    args = {"window": "custom", "from": "2024-01-01", "to": "2024-01-02", field: day}
    for text in (day, f"{day}T12:00"):
        with pytest.raises(WindowError, match=f"'{text}': the year must be 2000 to 2100"):
            window_from_args({**args, field: text}, "UTC", utc_ms("2025-10-27T09:00", "UTC"))


def test_the_last_day_of_2100_is_a_window() -> None:
    now = utc_ms("2025-10-27T09:00", "UTC")
    w = window_from_args({"window": "custom", "from": "2100-12-01", "to": "2100-12-31"}, "UTC", now)
    assert w.t1_ms == utc_ms("2101-01-01T00:00", "UTC") and "Wed 1 Dec 2100" in w.label


def _edge_urls() -> list[tuple[str, str]]:
    """(url, the reason its answer must give) for every date a page or the CSV takes."""
    urls = []
    for day in ("0001-01-01", "9999-12-31"):
        reason = f"&#39;{day}&#39;: the year must be 2000 to 2100"
        for page in ("/heatmap", "/dwell", "/queues", "/flow"):
            urls.append((f"{page}?window=custom&from=2024-01-01&to={day}", reason))
        urls.append((f"/alerts?window=custom&from={day}&to=2024-01-01", reason))
        urls.append((f"/export/agg_footfall.csv?window=custom&from={day}&to={day}", reason))
        for period in ("hour", "day", "week", "month"):
            urls.append((f"/trends?period={period}&date={day}", reason))
        urls.append((f"/trends?window=custom&from={day}&to={day}", reason))
        urls.append((f"/compare?mode=change&change={day}", reason))
        for field in ("a_from", "a_to", "b_from", "b_to"):
            urls.append((f"/compare?{field}={day}", reason))
    return urls


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> FlaskClient:
    client = make_app(tmp_path_factory.mktemp("edge")).test_client()
    assert sign_in(client, "manager") == 302
    return client


@pytest.mark.parametrize("url, reason", _edge_urls())
def test_edge_dates_are_a_400_with_the_reason(manager: FlaskClient, url: str, reason: str) -> None:
    response = manager.get(url)
    assert response.status_code == 400
    assert reason in response.get_data(as_text=True)


@pytest.mark.parametrize("page", ["/", "/live", "/health"])
def test_pages_without_a_window_ignore_an_edge_one(manager: FlaskClient, page: str) -> None:
    for day in ("0001-01-01", "9999-12-31"):
        assert manager.get(f"{page}?window=custom&from={day}&to={day}").status_code == 200


@pytest.mark.parametrize(
    "query, reason",
    [
        ("period=fortnight", "unknown period &#39;fortnight&#39;; one of hour, day, week, month"),
        ("k=abc", "k: &#39;abc&#39; is not a whole number from 0 to 100"),
        ("k=101", "k: &#39;101&#39; is not a whole number from 0 to 100"),
        ("k=-1", "k: &#39;-1&#39; is not a whole number from 0 to 100"),
    ],
)
def test_unknown_csv_period_or_k_is_a_400_naming_what_is_allowed(
    manager: FlaskClient, query: str, reason: str
) -> None:
    response = manager.get(f"/export/agg_footfall.csv?{query}")
    assert response.status_code == 400 and reason in response.get_data(as_text=True)
    assert manager.get("/export/agg_footfall.csv?period=&k=").status_code == 200  # empty: off


@pytest.mark.parametrize("page", ["/heatmap", "/flow"])
def test_a_bad_k_on_a_page_is_explained(manager: FlaskClient, page: str) -> None:
    response = manager.get(f"{page}?k=1e9")
    assert response.status_code == 400
    assert "k: &#39;1e9&#39; is not a whole number from 0 to 100" in response.get_data(as_text=True)
    assert manager.get(f"{page}?k=5").status_code == 200


@pytest.mark.parametrize("command", ["export", "analyze"])
@pytest.mark.parametrize("day", ["0001-01-01", "9999-12-31T23:59:59Z", "2101-01-01"])
def test_the_cli_refuses_edge_dates_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, day: str
) -> None:
    db = str(tmp_path / "box.db")
    args = [command, "--config", str(EXAMPLE), "--db", db, "--from", "2024-01-01", "--to", day]
    if command == "export":
        args += ["--table", "agg_footfall", "--out", str(tmp_path / "out.csv")]
    assert main(args) == 2
    assert f"argument --to: '{day}': the year must be 2000 to 2100" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_the_cli_export_names_the_allowed_periods(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["export", "--config", str(EXAMPLE), "--db", str(tmp_path / "box.db"), "--table"]
    args += ["agg_footfall", "--from", "2024-01-01", "--to", "2024-01-02", "--out"]
    args += [str(tmp_path / "out.csv"), "--period", "fortnight"]
    assert main(args) == 2
    assert "invalid choice: 'fortnight' (choose from" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()
