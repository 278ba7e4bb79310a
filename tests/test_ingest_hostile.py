"""Ingest refuses nonsense per column (``FILE:LINE: column: reason``, exit 2) and stores nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from appliance.analytics.ingest import IngestError, ingest_csv
from appliance.config import BoxConfig, load_config
from local_db import connect, migrate, read_track_points

from .conftest import EXAMPLE_CONFIG, REPO

T0 = 1_795_600_800_000  # 2026-11-25T10:00:00Z
HEADER = "camera_id,track_id,t_ms,x_m,y_m,conf\n"
GOOD = f"courtyard,7,{T0},12.5,13.0,0.9\n"  # the demo config: one camera, a 26 x 25 m plan
BIG_ID = -8_070_450_532_247_928_832  # random 64-bit track ids are exact, not rounded


@pytest.fixture(scope="module")
def config() -> BoxConfig:
    return load_config(EXAMPLE_CONFIG)


def fresh_db(tmp_path: Path) -> Path:
    db = tmp_path / "box.db"
    with closing(connect(db)) as conn:
        migrate(conn)
    return db


def stored(db: Path) -> list[tuple[str, int, int, float, float, float]]:
    with closing(connect(db, readonly=True)) as conn:
        return read_track_points(conn)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("courtyard,1,1e30,1,1,1", "t_ms: 1e30 is outside 2000-01-01..2100-01-01 UTC"),
        (f"courtyard,1e20,{T0},1,1,1", "track_id: 1e20 is outside signed 64 bits"),
        (f"courtyard,99999999999999999999,{T0},1,1,1", "track_id: 99999999999999999999 is outside"),
        (f"courtyard,1.5,{T0},1,1,1", "track_id: '1.5' is not an integer"),
        (f"courtyard,x,{T0},1,1,1", "track_id: 'x' is not a number"),
        ("courtyard,1,-5,1,1,1", "t_ms: -5 is outside 2000-01-01"),
        ("courtyard,1,99999999999999,1,1,1", "t_ms: 99999999999999 is outside"),  # year 5138
        (f"courtyard,1,{T0},1e300,1,1", "x_m: 1e300 is outside the floor plan (26 x 25 m)"),
        (f"courtyard,1,{T0},1,-1e300,1", "y_m: -1e300 is outside the floor plan"),
        (f"courtyard,1,{T0},1,inf,1", "y_m: 'inf' is not a number"),
        (f"courtyard,1,{T0},127,1,1", "x_m: 127 is outside the floor plan"),  # 26 + 100 m
        (f"courtyard,1,{T0},1,1,57", "conf: 57 is outside [0, 1]"),
        (f"courtyard,1,{T0},1,1,-3", "conf: -3 is outside [0, 1]"),
        (f"courtyard,1,{T0},1,1,nan", "conf: 'nan' is not a number"),
        (f",1,{T0},1,1,1", "camera_id '' is not in the config"),
    ],
)
def test_out_of_range_values_name_the_line_and_column(
    tmp_path: Path, config: BoxConfig, row: str, message: str
) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(HEADER + GOOD + row + "\n")
    db = fresh_db(tmp_path)
    with closing(connect(db)) as conn, pytest.raises(IngestError) as err:
        ingest_csv(conn, csv, config)
    assert str(err.value).startswith(f"{csv}:3: {message}")
    assert stored(db) == []


def test_a_duplicate_row_names_both_lines(tmp_path: Path, config: BoxConfig) -> None:
    csv = tmp_path / "in.csv"
    other = f"courtyard,8,{T0},1,1,1\n"
    csv.write_text(HEADER + GOOD + other + GOOD.replace("12.5", "3.0"))
    db = fresh_db(tmp_path)
    with closing(connect(db)) as conn, pytest.raises(IngestError) as err:
        ingest_csv(conn, csv, config)
    assert str(err.value) == f"{csv}:4: camera_id, track_id, t_ms: the same as line 2"
    assert stored(db) == []


def test_a_row_already_stored_is_refused_and_nothing_is_added(
    tmp_path: Path, config: BoxConfig
) -> None:
    first = tmp_path / "first.csv"
    first.write_text(HEADER + GOOD + f"courtyard,{BIG_ID},{T0 + 100},1.0,2.0,0.5\n")
    db = fresh_db(tmp_path)
    with closing(connect(db)) as conn:
        assert ingest_csv(conn, first, config) == 2
    assert stored(db) == [
        ("courtyard", 7, T0, 12.5, 13.0, 0.9),
        ("courtyard", BIG_ID, T0 + 100, 1.0, 2.0, 0.5),
    ]
    again = tmp_path / "again.csv"
    again.write_text(
        HEADER + f"courtyard,9,{T0 + 50},1,1,1\n" + f"courtyard,{BIG_ID},{T0 + 100},1,1,1\n"
    )
    with closing(connect(db)) as conn, pytest.raises(IngestError) as err:
        ingest_csv(conn, again, config)
    assert (
        str(err.value) == f"{again}:3: camera_id, track_id, t_ms: already stored (imported before?)"
    )
    assert len(stored(db)) == 2  # the new row 9 was not kept either


def test_integral_floats_and_edges_are_accepted(tmp_path: Path, config: BoxConfig) -> None:
    csv = tmp_path / "in.csv"
    rows = [
        f"courtyard,3.0,{T0}.0,-100,125,0",  # integral floats; the plan's margin; conf 0
        "courtyard,4,946684800000,126,-100,1",  # 2000-01-01, conf 1
    ]
    csv.write_text(HEADER + "\n".join(rows) + "\n")
    db = fresh_db(tmp_path)
    with closing(connect(db)) as conn:
        assert ingest_csv(conn, csv, config) == 2
    assert stored(db) == [
        ("courtyard", 4, 946_684_800_000, 126.0, -100.0, 1.0),
        ("courtyard", 3, T0, -100.0, 125.0, 0.0),
    ]


def test_cli_exits_2_with_the_location_and_no_traceback(tmp_path: Path) -> None:
    csv = tmp_path / "in.csv"
    csv.write_text(HEADER + GOOD + f"courtyard,1,{T0},1,1,57\n")
    db = tmp_path / "box.db"
    done = subprocess.run(
        [sys.executable, "-m", "appliance.cli", "ingest", "--config", str(EXAMPLE_CONFIG),
         "--csv", str(csv), "--db", str(db)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert re.search(rf"{re.escape(str(csv))}:3: conf: 57 is outside \[0, 1\]", done.stderr)
    assert "Traceback" not in done.stderr
    assert stored(db) == []
