"""The staff roster: how many staff are planned per zone and time (``customers_per_staff``).

A CSV with a header ``day,start,end,zone,staff_count`` (any column order, ``#`` lines
are comments):

* ``day``: a weekday (``mon`` … ``sun``), ``daily``, or a date ``YYYY-MM-DD``; for a
  zone, a date's rows replace its weekday's, and a weekday's replace ``daily``;
* ``start``, ``end``: ``HH:MM`` store local time, ``end`` after ``start`` (``24:00`` is
  the end of the day);
* ``zone``: a zone id of the store config, or ``store`` for the whole store;
* ``staff_count``: a whole number ≥ 0.

Rows of one day and zone must not overlap. Every problem is an error naming
``FILE:LINE: column``.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from appliance.config import DAYS, BoxConfig

logger = logging.getLogger(__name__)

COLUMNS = ("day", "start", "end", "zone", "staff_count")
STORE = "store"
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class RosterError(ValueError):
    """A roster file is unreadable or has a bad row; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Shift:
    """One roster row."""

    line: int
    day: str  # "daily", a weekday or an ISO date
    start_min: int
    end_min: int
    zone: str
    staff: int


def _minutes(text: str) -> int | None:
    m = _HHMM.match(text)
    if m is None:
        return None
    return 24 * 60 if text == "24:00" else int(m.group(1)) * 60 + int(m.group(2))


def _day(text: str) -> str | None:
    if text in DAYS or text == "daily":
        return text
    try:
        return date.fromisoformat(text).isoformat() if len(text) == 10 else None
    except ValueError:
        return None


class Roster:
    """Planned staff per zone and time.

    Args:
        shifts: the validated rows.
        source: the file they came from (for messages).
    """

    def __init__(self, shifts: list[Shift], source: str) -> None:
        self.shifts = shifts
        self.source = source

    def staff(self, zone: str, local: datetime) -> int | None:
        """Staff planned for ``zone`` (or ``"store"``) at a store-local time.

        Returns:
            The count, or None where the roster says nothing for that moment.
        """
        minute = local.hour * 60 + local.minute
        for day in (local.date().isoformat(), DAYS[local.weekday()], "daily"):
            rows = [s for s in self.shifts if s.zone == zone and s.day == day]
            if rows:
                return next((s.staff for s in rows if s.start_min <= minute < s.end_min), None)
        return None


def _fail(path: Path, line: int, column: str, message: str) -> RosterError:
    return RosterError(f"{path}:{line}: {column}: {message}")


def _shift(path: Path, line: int, row: dict[str, str], zones: set[str]) -> Shift:
    values = {c: (row.get(c) or "").strip() for c in COLUMNS}
    day = _day(values["day"].lower())
    if day is None:
        raise _fail(path, line, "day", f"{values['day']!r} is not mon…sun, daily or YYYY-MM-DD")
    start, end = _minutes(values["start"]), _minutes(values["end"])
    if start is None or start == 24 * 60:
        raise _fail(path, line, "start", f"{values['start']!r} is not a HH:MM time")
    if end is None:
        raise _fail(path, line, "end", f"{values['end']!r} is not a HH:MM time")
    if end <= start:
        raise _fail(path, line, "end", f"{values['end']} is not after {values['start']}")
    if values["zone"] not in zones:
        raise _fail(path, line, "zone", f"{values['zone']!r} is not a zone id or 'store'")
    count = values["staff_count"]
    if not count.isdigit():
        raise _fail(path, line, "staff_count", f"{count!r} is not a whole number ≥ 0")
    return Shift(line, day, start, end, values["zone"], int(count))


def load_roster(path: str | Path, config: BoxConfig) -> Roster:
    """Read and validate a roster CSV against the store's zones.

    Raises:
        RosterError: the file is unreadable, lacks a column, or a row is bad or
            overlaps another (``FILE:LINE: column: message``).
    """
    p = Path(path)
    zones = {z.id for z in config.zones} | {STORE}
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RosterError(f"{p}:1: (file): {exc}") from exc
    lines = [
        (n, ln) for n, ln in enumerate(text.splitlines(), 1) if not ln.lstrip().startswith("#")
    ]
    if not lines or not lines[0][1].strip():
        raise RosterError(f"{p}:1: (header): the file needs a header {','.join(COLUMNS)}")
    reader = csv.DictReader([ln for _, ln in lines])
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise RosterError(f"{p}:{lines[0][0]}: (header): missing column(s) {', '.join(missing)}")
    shifts = []
    for i, row in enumerate(reader, 1):
        line = lines[i][0]
        if None in row:
            raise _fail(p, line, "(row)", f"more values than the {len(header)} columns")
        if not any((v or "").strip() for v in row.values()):
            continue
        shifts.append(_shift(p, line, row, zones))
    for a in shifts:
        for b in shifts:
            same = a.line < b.line and (a.day, a.zone) == (b.day, b.zone)
            if same and a.start_min < b.end_min and b.start_min < a.end_min:
                raise _fail(p, b.line, "start", f"overlaps line {a.line} ({a.day}, {a.zone})")
    logger.info("roster %s: %d shift(s)", p, len(shifts))
    return Roster(shifts, str(p))
