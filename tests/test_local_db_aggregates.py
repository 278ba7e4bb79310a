"""local_db's typed functions for the aggregates, the camera observations, the import and vacuum."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from local_db import connect, migrate
from local_db.aggregates import (
    WindowRow,
    newest_bucket,
    replace_buckets,
    table_rows,
    window_rows,
)
from local_db.ingest import import_track_points
from local_db.maintenance import vacuum
from local_db.observations import (
    camera_history,
    latest_camera_events,
    newest_rowid,
    points_since,
    points_written_after,
)
from local_db.track_points import count_track_points

B = 300_000  # a 5-minute bucket
T0 = 1_760_000_100_000 - 1_760_000_100_000 % B


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = connect(tmp_path / "box.db")
    migrate(c)
    yield c
    c.close()


def footfall(store: str, buckets: list[int], count: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"store_id": store, "bucket_ms": buckets, "line_id": "door", "direction": "in",
         "count": count}
    )  # fmt: skip


def windows(buckets: list[int]) -> list[WindowRow]:
    return [WindowRow(b, 1, 1.0, "complete", 3, 0) for b in buckets]


def test_replace_buckets_replaces_only_its_store_and_range(conn: sqlite3.Connection) -> None:
    four = [T0 + i * B for i in range(4)]
    replace_buckets(conn, "s", four[0], four[-1] + B, {"agg_footfall": footfall("s", four, 1)},
                    windows(four))  # fmt: skip
    replace_buckets(conn, "t", four[0], four[-1] + B, {"agg_footfall": footfall("t", four, 7)},
                    windows(four))  # fmt: skip
    # recompute the middle two buckets of s: new counts, the others untouched
    middle = four[1:3]
    replace_buckets(conn, "s", middle[0], middle[-1] + B,
                    {"agg_footfall": footfall("s", middle, 5)}, windows(middle))  # fmt: skip
    rows = table_rows(conn, "agg_footfall", four[0], four[-1] + B)
    got = rows.groupby("store_id")["count"].apply(list).to_dict()
    assert got == {"s": [1, 5, 5, 1], "t": [7, 7, 7, 7]}
    assert len(window_rows(conn, "s", four[0], four[-1] + B)) == 4
    # an empty frame deletes the range's rows
    replace_buckets(conn, "s", middle[0], middle[-1] + B,
                    {"agg_footfall": footfall("s", [], 0)}, [])  # fmt: skip
    rows = table_rows(conn, "agg_footfall", four[0], four[-1] + B)
    assert rows[rows["store_id"] == "s"]["count"].tolist() == [1, 1]
    assert sorted(window_rows(conn, "s", four[0], four[-1] + B)["bucket_ms"]) == [four[0], four[3]]


def test_replace_buckets_stores_nan_as_null(conn: sqlite3.Connection) -> None:
    queue = pd.DataFrame(
        {"store_id": ["s"], "bucket_ms": [T0], "zone_id": ["q"], "joined": [0], "served": [0],
         "abandoned": [0], "wait_total_s": [0.0], "mean_wait_s": [math.nan],
         "p90_wait_s": [math.nan], "mean_len": [0.0], "max_len": [0],
         "predicted_mae_s": [math.nan]}
    )  # fmt: skip
    replace_buckets(conn, "s", T0, T0 + B, {"agg_queue": queue}, windows([T0]))
    row = conn.execute("SELECT mean_wait_s, p90_wait_s, predicted_mae_s FROM agg_queue").fetchone()
    assert row == (None, None, None)


def test_a_failed_replace_leaves_the_old_rows(conn: sqlite3.Connection) -> None:
    two = [T0, T0 + B]
    replace_buckets(conn, "s", T0, T0 + 2 * B, {"agg_footfall": footfall("s", two, 1)},
                    windows(two))  # fmt: skip
    bad = footfall("s", two, 2).assign(colour="red")  # no such column: the insert fails
    with pytest.raises(sqlite3.OperationalError, match="colour"):
        replace_buckets(conn, "s", T0, T0 + 2 * B, {"agg_footfall": bad}, windows(two))
    assert not conn.in_transaction
    assert table_rows(conn, "agg_footfall", T0, T0 + 2 * B)["count"].tolist() == [1, 1]
    assert len(window_rows(conn, "s", T0, T0 + 2 * B)) == 2  # deleted, then rolled back
    with pytest.raises(ValueError, match="unknown aggregate table 'track_points'"):
        replace_buckets(conn, "s", T0, T0 + 2 * B, {"track_points": bad}, [])
    with pytest.raises(ValueError, match="unknown aggregate table"):
        table_rows(conn, "web_users", T0, T0 + B)
    assert len(window_rows(conn, "s", T0, T0 + 2 * B)) == 2


def test_newest_bucket_is_per_store_and_may_be_bounded(conn: sqlite3.Connection) -> None:
    assert newest_bucket(conn, "s") is None
    buckets = [T0, T0 + B, T0 + 5 * B]
    replace_buckets(conn, "s", T0, T0 + 6 * B, {}, windows(buckets))
    replace_buckets(conn, "t", T0, T0 + 9 * B, {}, windows([T0 + 8 * B]))
    assert newest_bucket(conn, "s") == T0 + 5 * B
    assert newest_bucket(conn, "s", before_ms=T0 + 5 * B) == T0 + B
    assert newest_bucket(conn, "s", before_ms=T0) is None


def test_an_import_is_all_or_nothing(conn: sqlite3.Connection) -> None:
    first = [("cam", 1, T0 + i, 1.0, 2.0, 0.9) for i in range(3)]
    assert import_track_points(conn, first) is None
    again = [("cam", 2, T0, 1.0, 2.0, 0.9), ("cam", 1, T0 + 2, 5.0, 5.0, 0.5)]
    assert import_track_points(conn, again) == 1  # its second row is stored already
    assert count_track_points(conn) == 3 and not conn.in_transaction
    assert import_track_points(conn, []) is None
    assert import_track_points(conn, [("cam", 2, T0, 1.0, 2.0, 0.9)]) is None
    assert count_track_points(conn) == 4


def test_camera_events_in_time_order_then_the_order_written(conn: sqlite3.Connection) -> None:
    conn.executemany(
        "INSERT INTO camera_events (camera_id, t_ms, state, detail) VALUES (?, ?, ?, ?)",
        [("a", 20, "up", "2"), ("a", 10, "down", "1"), ("a", 20, "down", "3"), ("a", 30, "up", "")],
    )
    assert camera_history(conn, "a", 30) == [(10, "down"), (20, "up"), (20, "down")]
    latest = latest_camera_events(conn, ["a", "b"], 25)
    assert latest == {"a": ("a", 20, "down", "3"), "b": None}


def test_points_by_rowid_for_the_live_state(conn: sqlite3.Connection) -> None:
    assert newest_rowid(conn) == 0
    import_track_points(conn, [("cam", 1, T0 + i * 1000, 1.0, 2.0, 0.9) for i in range(5)])
    top = newest_rowid(conn)
    import_track_points(conn, [("cam", 1, T0 + 9000, 1.0, 2.0, 0.9)])
    assert points_since(conn, T0 + 2000, top)["t_ms"].tolist() == [T0 + 2000, T0 + 3000, T0 + 4000]
    later = points_written_after(conn, top, newest_rowid(conn))
    assert later["t_ms"].tolist() == [T0 + 9000]
    assert list(later.columns) == ["rowid", "camera_id", "track_id", "t_ms", "x_m", "y_m"]


def test_vacuum_is_full_once_then_incremental_and_frees_pages(conn: sqlite3.Connection) -> None:
    rows = [("cam", i, T0 + i, 1.0, 2.0, 0.9) for i in range(20_000)]
    import_track_points(conn, rows)
    first = vacuum(conn)
    assert first.kind == "full"
    conn.execute("DELETE FROM track_points")
    second = vacuum(conn)
    assert second.kind == "incremental"
    assert second.pages_after < second.pages_before <= first.pages_after + 1
