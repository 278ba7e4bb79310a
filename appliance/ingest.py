"""``footfall ingest``: trajectories from any tracker, as CSV, into ``track_points``.

The file needs a header with ``camera_id,track_id,t_ms,x_m,y_m`` (``conf`` optional).
Every row is checked before anything is written; the first problem is reported with
its line number and the import is all or nothing (one transaction).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from appliance.config import BoxConfig

logger = logging.getLogger(__name__)

REQUIRED = ("camera_id", "track_id", "t_ms", "x_m", "y_m")
NUMERIC = ("track_id", "t_ms", "x_m", "y_m", "conf")


class IngestError(ValueError):
    """The CSV cannot be imported; the message names the file and line."""


def _fail(path: Path, line: int, message: str) -> IngestError:
    return IngestError(f"{path}:{line}: {message}")


def read_trajectory_csv(path: Path, config: BoxConfig) -> pd.DataFrame:
    """Read and validate a trajectory CSV.

    Raises:
        IngestError: missing header columns, a non-numeric or missing value, an
            unknown camera, or times going backwards within a track.
    """
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise IngestError(f"{path}: {exc}") from exc
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise _fail(path, 1, f"header lacks column(s) {', '.join(missing)}")
    if "conf" not in raw.columns:
        raw["conf"] = "1"
    df = pd.DataFrame({"camera_id": raw["camera_id"].str.strip()})
    for col in NUMERIC:
        values = pd.to_numeric(raw[col].str.strip(), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() | ~np.isfinite(values.to_numpy(float)))
        if bad.size:
            i = int(bad[0])
            raise _fail(path, i + 2, f"{col}: {raw[col].iloc[i]!r} is not a number")
        df[col] = values
    for col in ("track_id", "t_ms"):
        frac = np.flatnonzero(df[col].to_numpy(float) % 1 != 0)
        if frac.size:
            i = int(frac[0])
            raise _fail(path, i + 2, f"{col}: {raw[col].iloc[i]!r} is not an integer")
        df[col] = df[col].astype(np.int64)
    known = {c.id for c in config.cameras}
    unknown = np.flatnonzero(~df["camera_id"].isin(known).to_numpy())
    if unknown.size:
        i = int(unknown[0])
        raise _fail(path, i + 2, f"camera_id {df['camera_id'].iloc[i]!r} is not in the config")
    back = df.groupby(["camera_id", "track_id"], sort=False)["t_ms"].diff() < 0
    if back.any():
        i = int(np.flatnonzero(back.to_numpy())[0])
        raise _fail(path, i + 2, "t_ms goes backwards within its track (rows out of order)")
    return df


def ingest_csv(conn: sqlite3.Connection, path: Path, config: BoxConfig) -> int:
    """Validate the whole file, then insert it in one transaction.

    Returns:
        Rows imported.
    """
    df = read_trajectory_csv(path, config)
    rows = list(
        zip(
            df["camera_id"].tolist(),
            df["track_id"].tolist(),
            df["t_ms"].tolist(),
            df["x_m"].tolist(),
            df["y_m"].tolist(),
            df["conf"].tolist(),
            strict=True,
        )
    )
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT INTO track_points VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    logger.info("ingested %d rows from %s", len(rows), path)
    return len(rows)
