"""Point-of-sale hours: transactions and sales per store and local hour.

Both ways in take the same rows, ``hour`` (the store-local hour it starts,
``YYYY-MM-DD HH:00``; in a repeated autumn hour, the first), ``transactions`` (an
integer ≥ 0) and ``sales`` (a number ≥ 0, the store's currency): a CSV with that header
(``footfall hub pos import FILE --store ID``) or the signed JSON API
(``POST /api/v1/pos``: ``{"store_id": ID, "hours": [{...}, ...]}``, signed as a batch is,
:mod:`wire.signing`). A row for an hour already held replaces it. Every row is checked
before any is stored: one bad row stores nothing (:class:`PosError` names its line or
index, its key and why).
"""

from __future__ import annotations

import csv
import io
import math
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from sqlalchemy import Connection, delete

from cloud_hub import day_totals
from cloud_hub.schema import pos_hours

HEADER: Final = ("hour", "transactions", "sales")
MAX_ROWS: Final = 100_000
HOUR_FORMATS: Final = ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


class PosError(ValueError):
    """A POS row that cannot be stored: where (line or index), which key, why."""

    def __init__(self, where: str, key: str, message: str) -> None:
        super().__init__(f"{where}: {key}: {message}")
        self.where, self.key, self.message = where, key, message


@dataclass(frozen=True)
class PosHour:
    """One store-hour of POS data."""

    hour_ms: int
    day: str
    transactions: int
    sales: float


def parse_row(where: str, row: dict[str, object], tz: zoneinfo.ZoneInfo) -> PosHour:
    """One row's values checked and converted.

    Raises:
        PosError: A missing, extra or bad value.
    """
    extra = sorted(set(row) - set(HEADER))
    if extra:
        raise PosError(where, extra[0], f"unknown column (expected {', '.join(HEADER)})")
    for key in HEADER:
        if row.get(key) in (None, ""):
            raise PosError(where, key, "missing")
    text = str(row["hour"]).strip()
    for pattern in HOUR_FORMATS:
        try:
            local = datetime.strptime(text, pattern)
            break
        except ValueError:
            continue
    else:
        raise PosError(where, "hour", f"{text[:40]!r} is not YYYY-MM-DD HH:00")
    if local.minute:
        raise PosError(where, "hour", f"{text!r} does not start an hour")
    transactions, sales = row["transactions"], row["sales"]
    try:
        count = (
            int(str(transactions).strip()) if not isinstance(transactions, int) else transactions
        )
    except ValueError:
        raise PosError(
            where, "transactions", f"{str(transactions)[:40]!r} is not an integer"
        ) from None
    try:
        amount = float(str(sales).strip()) if not isinstance(sales, int | float) else float(sales)
    except ValueError:
        raise PosError(where, "sales", f"{str(sales)[:40]!r} is not a number") from None
    if isinstance(transactions, bool) or not 0 <= count < 10**9:
        raise PosError(where, "transactions", f"{count} must be 0 to 10⁹")
    if isinstance(sales, bool) or not math.isfinite(amount) or not 0 <= amount < 1e12:
        raise PosError(where, "sales", f"{amount} must be a finite number ≥ 0")
    hour_ms = round(local.replace(tzinfo=tz).timestamp() * 1000)
    return PosHour(hour_ms, local.date().isoformat(), count, amount)


def parse_csv(name: str, text: str, tz: zoneinfo.ZoneInfo) -> list[PosHour]:
    """The rows of a POS CSV (``name`` for the messages, as ``FILE:LINE``).

    Raises:
        PosError: A wrong header or a bad row.
    """
    reader = csv.DictReader(io.StringIO(text))
    if tuple(h.strip() for h in reader.fieldnames or ()) != HEADER:
        raise PosError(f"{name}:1", "header", f"must be {','.join(HEADER)}")
    hours: list[PosHour] = []
    for row in reader:
        if len(hours) >= MAX_ROWS:
            raise PosError(f"{name}:{reader.line_num}", "rows", f"more than {MAX_ROWS}")
        if None in row:
            raise PosError(f"{name}:{reader.line_num}", "row", "more values than columns")
        cells: dict[str, object] = {k.strip(): v for k, v in row.items()}
        hours.append(parse_row(f"{name}:{reader.line_num}", cells, tz))
    return _unique(name, hours)


def parse_json(document: object, tz: zoneinfo.ZoneInfo) -> list[PosHour]:
    """The rows of the API's ``hours`` list.

    Raises:
        PosError: Not a list of objects, too many, or a bad row.
    """
    if not isinstance(document, list) or len(document) > MAX_ROWS:
        raise PosError("$", "hours", f"must be a list of at most {MAX_ROWS} objects")
    hours: list[PosHour] = []
    for index, row in enumerate(document):
        if not isinstance(row, dict):
            raise PosError(f"$.hours[{index}]", "row", "must be an object")
        hours.append(parse_row(f"$.hours[{index}]", row, tz))
    return _unique("$.hours", hours)


def _unique(where: str, hours: list[PosHour]) -> list[PosHour]:
    seen: set[int] = set()
    for hour in hours:
        if hour.hour_ms in seen:
            raise PosError(where, "hour", f"{hour.day} hour at {hour.hour_ms} given twice")
        seen.add(hour.hour_ms)
    return hours


def store_hours(conn: Connection, store_id: str, hours: list[PosHour], now_ms: int) -> int:
    """Replace these hours of the store (and their ``day_totals``, in the caller's transaction).

    Returns:
        How many hours were stored.
    """
    for hour in hours:
        conn.execute(
            delete(pos_hours).where(
                pos_hours.c.store_id == store_id, pos_hours.c.hour_ms == hour.hour_ms
            )
        )
    if hours:
        conn.execute(
            pos_hours.insert(),
            [
                {"store_id": store_id, "hour_ms": h.hour_ms, "day": h.day,
                 "transactions": h.transactions, "sales": h.sales, "received_ms": now_ms}
                for h in hours
            ],
        )  # fmt: skip
        days = sorted(date.fromisoformat(h.day) for h in hours)
        day_totals.refresh(conn, store_id, days[0], days[-1])
    return len(hours)
