"""MOTChallenge track files: the format ``footfall vision --mot-out`` writes.

One box per line::

    frame,id,x,y,w,h,conf,-1,-1,-1

with 1-based frame numbers and ``(x, y)`` the top-left corner of the box in
pixels. :func:`write_mot` writes our tracker's boxes; :func:`read_mot` reads
them (and ground truth) back in the layout of py-motmetrics's loader. Scoring a
file against ground truth is the lab's job (``lab.mot_eval``, ``footfall eval-mot``).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)

__all__ = [
    "BOX_COLUMNS",
    "MOT_COLUMNS",
    "MotFormatError",
    "MotRow",
    "read_mot",
    "write_mot",
]

#: Columns of the frame :func:`read_mot` returns, after its ``(FrameId, Id)`` index.
MOT_COLUMNS: tuple[str, ...] = (
    "X",
    "Y",
    "Width",
    "Height",
    "Confidence",
    "ClassId",
    "Visibility",
)
#: The box columns of that frame.
BOX_COLUMNS = ["X", "Y", "Width", "Height"]
# Names of the fields after frame and id, for error messages.
_FLOAT_FIELDS = ("x", "y", "width", "height", "conf", "class", "visibility", "unused")
_MIN_FIELDS = 7
_MAX_FIELDS = 10


class MotFormatError(ValueError):
    """A MOTChallenge file that cannot be read.

    Attributes:
        path: The file.
        line: The 1-based line number of the offending line.
        reason: What is wrong with that line.
    """

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = Path(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{self.path}:{line}: {reason}")


class MotRow(NamedTuple):
    """One box of a MOTChallenge file.

    Attributes:
        frame: 1-based frame number.
        track_id: Track (or ground-truth object) id.
        x: Left edge of the box in pixels.
        y: Top edge of the box in pixels.
        w: Width of the box in pixels.
        h: Height of the box in pixels.
        conf: Detection confidence; in ground truth, 0 marks a row to ignore.
    """

    frame: int
    track_id: int
    x: float
    y: float
    w: float
    h: float
    conf: float


def _split_fields(text: str) -> list[str]:
    """Splits a line on commas or, where it has none, on whitespace."""
    if "," in text:
        return [field.strip() for field in text.split(",")]
    return text.split()


def _parse_float(path: Path, line_no: int, name: str, field: str) -> float:
    try:
        value = float(field)
    except ValueError:
        raise MotFormatError(path, line_no, f"{name} is not a number: {field!r}") from None
    if not math.isfinite(value):
        raise MotFormatError(path, line_no, f"{name} is not finite: {field!r}")
    return value


def _parse_int(path: Path, line_no: int, name: str, field: str) -> int:
    value = _parse_float(path, line_no, name, field)
    if not value.is_integer():
        raise MotFormatError(path, line_no, f"{name} is not an integer: {field!r}")
    return int(value)


def read_mot(path: str | Path) -> pd.DataFrame:
    """Reads a MOTChallenge file.

    Lines are ``frame,id,x,y,w,h,conf`` followed by up to three optional
    columns (class, visibility, and the unused one; ``-1`` where absent). Fields
    may be separated by commas or, on a line without commas, by whitespace;
    blank lines are skipped.

    Args:
        path: The file to read.

    Returns:
        One row per box, sorted by frame and id, in the layout of py-motmetrics's
        MOTChallenge loader: a ``(FrameId, Id)`` index of ints and the float
        columns ``X, Y, Width, Height, Confidence, ClassId, Visibility``. Unlike
        that loader, ``X`` and ``Y`` are as written (no 1-pixel MATLAB shift).

    Raises:
        MotFormatError: A line is malformed: a field count outside 7-10, a
            non-numeric or non-finite field, a non-integral or non-positive
            frame, a non-integral id, a negative width or height, or an id that
            occurs twice in one frame. The message names the file and line.
        OSError: The file cannot be opened.
    """
    path = Path(path)
    keys: list[tuple[int, int]] = []
    values: list[tuple[float, ...]] = []
    seen: dict[tuple[int, int], int] = {}
    with path.open(encoding="utf-8-sig") as handle:
        for line_no, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            fields = _split_fields(text.strip())
            if not _MIN_FIELDS <= len(fields) <= _MAX_FIELDS:
                raise MotFormatError(
                    path,
                    line_no,
                    f"expected {_MIN_FIELDS} to {_MAX_FIELDS} fields, found {len(fields)}",
                )
            frame = _parse_int(path, line_no, "frame", fields[0])
            if frame < 1:
                raise MotFormatError(path, line_no, f"frame must be 1 or more, not {frame}")
            track_id = _parse_int(path, line_no, "id", fields[1])
            numbers = [
                _parse_float(path, line_no, name, field)
                for name, field in zip(_FLOAT_FIELDS, fields[2:], strict=False)
            ]
            if numbers[2] < 0 or numbers[3] < 0:
                raise MotFormatError(path, line_no, "width and height must not be negative")
            key = (frame, track_id)
            if key in seen:
                raise MotFormatError(
                    path,
                    line_no,
                    f"id {track_id} occurs twice in frame {frame} (first on line {seen[key]})",
                )
            seen[key] = line_no
            numbers += [-1.0] * (len(MOT_COLUMNS) - len(numbers))
            keys.append(key)
            values.append(tuple(numbers[: len(MOT_COLUMNS)]))
    index = pd.MultiIndex.from_tuples(keys, names=["FrameId", "Id"])
    if not keys:
        index = pd.MultiIndex.from_arrays(
            [np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)], names=["FrameId", "Id"]
        )
    frame_df = pd.DataFrame(
        np.asarray(values, dtype=np.float64).reshape(len(values), len(MOT_COLUMNS)),
        index=index,
        columns=list(MOT_COLUMNS),
    )
    logger.debug("Read %d boxes from %s", len(frame_df), path)
    return frame_df.sort_index()


def _format_number(value: float) -> str:
    """Formats a float as the shortest text that reads back as the same float."""
    return str(int(value)) if value.is_integer() else repr(value)


def write_mot(rows: Iterable[MotRow], path: str | Path) -> None:
    """Writes boxes as a MOTChallenge file (``frame,id,x,y,w,h,conf,-1,-1,-1``).

    The file is written to a temporary name beside ``path`` and then renamed
    into place, so a reader never sees half a file. Rows are written in the
    order given; floats are written exactly (shortest round-trip form).

    Args:
        rows: The boxes.
        path: The file to (over)write.

    Raises:
        ValueError: A row has a frame below 1, a non-finite number, or a
            negative width or height.
        OSError: The file cannot be written.
    """
    path = Path(path)
    lines: list[str] = []
    for row in rows:
        floats = (float(row.x), float(row.y), float(row.w), float(row.h), float(row.conf))
        if int(row.frame) < 1:
            raise ValueError(f"frame must be 1 or more: {row}")
        if not all(math.isfinite(value) for value in floats):
            raise ValueError(f"row has a non-finite number: {row}")
        if floats[2] < 0 or floats[3] < 0:
            raise ValueError(f"row has a negative width or height: {row}")
        fields = [str(int(row.frame)), str(int(row.track_id))]
        fields += [_format_number(value) for value in floats]
        lines.append(",".join(fields) + ",-1,-1,-1\n")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="\n") as handle:
            handle.writelines(lines)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("Wrote %d boxes to %s", len(lines), path)
