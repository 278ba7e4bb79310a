"""``footfall ingest``: trajectories from any tracker, as CSV, into ``track_points``.

The file needs a header with ``camera_id,track_id,t_ms,x_m,y_m`` (``conf`` optional).
Every row is checked before anything is written; the first problem is reported as
``FILE:LINE: column: reason`` and the import is all or nothing (one transaction).

Each column has a range: ``track_id`` a signed 64-bit integer, ``t_ms`` an integer
between 2000-01-01 and 2100-01-01 UTC, ``x_m``/``y_m`` finite and on the floor plan
with a :data:`PLAN_MARGIN_M` margin, ``conf`` in [0, 1], ``camera_id`` a configured
camera. A ``(camera_id, track_id, t_ms)`` that appears twice in the file, or that
is already stored, is refused.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from appliance.config import BoxConfig
from local_db.ingest import import_track_points

logger = logging.getLogger(__name__)

REQUIRED = ("camera_id", "track_id", "t_ms", "x_m", "y_m")
KEY = ["camera_id", "track_id", "t_ms"]
T_MIN_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z
T_MAX_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z
PLAN_MARGIN_M: Final = 100.0  # points this far outside the floor plan are still accepted
_INT64: Final = (-(2**63), 2**63 - 1)
_INTEGER: Final = re.compile(r"[+-]?[0-9]+")


class IngestError(ValueError):
    """The CSV cannot be imported; the message names the file and line."""


def _fail(path: Path, line: int, message: str) -> IngestError:
    return IngestError(f"{path}:{line}: {message}")


def _integer(text: str) -> int | None:
    """``text`` as an exact integer (``12``, ``12.0``, ``1e3``), or None."""
    if _INTEGER.fullmatch(text):
        return int(text)
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def _integers(
    path: Path, col: str, texts: pd.Series, bounds: tuple[int, int], what: str
) -> npt.NDArray[np.int64]:
    """An integer column, exact and within ``bounds`` (inclusive), or the first bad line."""
    fast = pd.to_numeric(texts, errors="coerce")
    if fast.dtype.kind == "i":  # every value an int64 literal: exact, vectorised
        values: npt.NDArray[np.int64] = fast.to_numpy(np.int64)
        bad = np.flatnonzero((values < bounds[0]) | (values > bounds[1]))
        if bad.size:
            i = int(bad[0])
            raise _fail(path, i + 2, f"{col}: {texts.iloc[i]} is outside {what}")
        return values
    out = np.empty(len(texts), np.int64)
    for i, text in enumerate(texts.tolist()):
        number = _integer(text)
        if number is None:
            kind = "a number" if pd.isna(fast.iloc[i]) else "an integer"
            raise _fail(path, i + 2, f"{col}: {text!r} is not {kind}")
        if not bounds[0] <= number <= bounds[1]:
            raise _fail(path, i + 2, f"{col}: {text} is outside {what}")
        out[i] = number
    return out


def _floats(
    path: Path, col: str, texts: pd.Series, bounds: tuple[float, float], what: str
) -> npt.NDArray[np.float64]:
    """A finite float column within ``bounds`` (inclusive), or the first bad line."""
    values: npt.NDArray[np.float64] = pd.to_numeric(texts, errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        i = int(bad[0])
        raise _fail(path, i + 2, f"{col}: {texts.iloc[i]!r} is not a number")
    bad = np.flatnonzero((values < bounds[0]) | (values > bounds[1]))
    if bad.size:
        i = int(bad[0])
        raise _fail(path, i + 2, f"{col}: {texts.iloc[i]} is outside {what}")
    return values


def read_trajectory_csv(path: Path, config: BoxConfig) -> pd.DataFrame:
    """Read and validate a trajectory CSV.

    Raises:
        IngestError: missing header columns, a non-numeric, missing or out-of-range
            value, an unknown camera, a duplicate row, or times going backwards
            within a track.
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
    text = {col: raw[col].str.strip() for col in (*REQUIRED, "conf")}
    plan, margin = config.floor_plan, PLAN_MARGIN_M
    x_range = (-margin, plan.width_m + margin)
    y_range = (-margin, plan.depth_m + margin)
    on_plan = f"the floor plan ({plan.width_m:g} x {plan.depth_m:g} m) with a {margin:g} m margin"
    df = pd.DataFrame(
        {
            "camera_id": text["camera_id"],
            "track_id": _integers(path, "track_id", text["track_id"], _INT64, "signed 64 bits"),
            "t_ms": _integers(
                path, "t_ms", text["t_ms"], (T_MIN_MS, T_MAX_MS),
                f"2000-01-01..2100-01-01 UTC ({T_MIN_MS}..{T_MAX_MS} ms)",
            ),
            "x_m": _floats(path, "x_m", text["x_m"], x_range, f"{on_plan}: {x_range} m"),
            "y_m": _floats(path, "y_m", text["y_m"], y_range, f"{on_plan}: {y_range} m"),
            "conf": _floats(path, "conf", text["conf"], (0.0, 1.0), "[0, 1]"),
        }
    )  # fmt: skip
    known = {c.id for c in config.cameras}
    unknown = np.flatnonzero(~df["camera_id"].isin(known).to_numpy())
    if unknown.size:
        i = int(unknown[0])
        raise _fail(path, i + 2, f"camera_id {df['camera_id'].iloc[i]!r} is not in the config")
    repeated = np.flatnonzero(df.duplicated(KEY, keep="first").to_numpy())
    if repeated.size:
        i = int(repeated[0])
        first = int(np.flatnonzero((df[KEY] == df.loc[i, KEY]).all(axis=1).to_numpy())[0])
        raise _fail(path, i + 2, f"{', '.join(KEY)}: the same as line {first + 2}")
    back = df.groupby(["camera_id", "track_id"], sort=False)["t_ms"].diff() < 0
    if back.any():
        i = int(np.flatnonzero(back.to_numpy())[0])
        raise _fail(path, i + 2, "t_ms goes backwards within its track (rows out of order)")
    return df


def ingest_csv(conn: sqlite3.Connection, path: Path, config: BoxConfig) -> int:
    """Validate the whole file, then insert it in one transaction.

    Returns:
        Rows imported.

    Raises:
        IngestError: the file is invalid (see :func:`read_trajectory_csv`), or one of
            its rows is already stored; nothing is written.
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
    stored = import_track_points(conn, rows)
    if stored is not None:
        raise _fail(path, stored + 2, f"{', '.join(KEY)}: already stored (imported before?)")
    logger.info("ingested %d rows from %s", len(rows), path)
    return len(rows)
