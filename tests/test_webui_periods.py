"""Windows in the store's time zone, period keys and sums per period (DST included)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from appliance.analytics.engine import BUCKET_MS
from appliance.analytics.rollups import period_start
from local_db import connect, migrate
from webui.coverage import bucket_status, by_period, keys_of
from webui.period_sums import coverage_by_period, period_bounds, sums
from webui.periods import WindowError, window_from_args

# 2025-10-26 is the autumn DST change in Europe; Lord Howe shifts by 30 minutes.
ZONES = ["Europe/Berlin", "Australia/Lord_Howe", "America/St_Johns", "Asia/Kolkata", "UTC"]


def utc_ms(text: str, tz: str) -> int:
    return round(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(tz)).timestamp() * 1000)


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("period", ["hour", "day", "week", "month"])
def test_period_keys_are_the_rollups_keys(tz: str, period: str) -> None:
    start = utc_ms("2025-03-01T00:00", "UTC")
    grid = pd.Series(np.arange(start, start + 300 * 86_400_000, BUCKET_MS, dtype=np.int64))
    assert (keys_of(grid, period, tz) == period_start(grid, period, tz)).all()  # type: ignore[arg-type]


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


def test_sums_and_coverage_per_local_day_agree_with_pandas(tmp_path: Path) -> None:
    tz = "Europe/Berlin"
    conn = connect(tmp_path / "box.db")
    migrate(conn)
    t0, t1 = utc_ms("2025-10-24T06:00", tz), utc_ms("2025-10-28T00:00", tz)
    buckets = np.arange(t0, t1, BUCKET_MS, dtype=np.int64)
    rng = np.random.default_rng(1)
    status = rng.choice(["complete", "partial", "missing"], len(buckets), p=[0.8, 0.1, 0.1])
    kept = rng.random(len(buckets)) > 0.05  # some buckets never analysed: missing too
    counts = rng.integers(0, 9, len(buckets))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO agg_windows VALUES ('s', ?, 0, ?, ?, 0, 0)",
        [(int(b), 1.0 if s == "complete" else 0.5 if s == "partial" else 0.0, str(s))
         for b, s, k in zip(buckets, status, kept, strict=True) if k],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO agg_footfall VALUES ('s', ?, 'door', 'in', ?)",
        [(int(b), int(c)) for b, c in zip(buckets, counts, strict=True)],
    )
    conn.execute("COMMIT")
    closed = utc_ms("2025-10-27T12:00", tz)
    start = t0 + 7 * BUCKET_MS  # a window that starts mid-day, mid-hour
    got = sums(
        conn, "agg_footfall", "sum(t.count) AS n", "s",
        period_bounds(start, t1, "day", tz), t0_ms=start,
    ).set_index("key")["n"]  # fmt: skip
    frame = pd.DataFrame({"b": buckets, "n": counts})
    frame = frame[frame["b"] >= start]
    want = frame.groupby(period_start(frame["b"], "day", tz))["n"].sum()
    assert got.to_dict() == want.to_dict()
    assert len(got) == 4  # Fri, Sat, Sun (25 h), Mon
    fast = coverage_by_period(conn, "s", start, t1, closed, "day", tz)
    slow = by_period(bucket_status(conn, "s", start, t1, closed), "day", tz)
    pd.testing.assert_frame_equal(fast[slow.columns], slow, check_dtype=False)
    assert list(fast["status"]) == ["partial", "partial", "partial", "partial"]
    conn.close()
