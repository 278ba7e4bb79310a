"""Typed reads and writes of ``web_login_failures``: the failed sign-ins the login limiter counts.

:func:`reserve_failure` is the limiter's atomic check-and-reserve: in one
``BEGIN IMMEDIATE`` transaction it forgets the failures that left the window, reads
the counts, asks the caller's rule how long to wait and, if not at all, records the
attempt as a failure. The rule itself lives in :mod:`webui.limiter`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from local_db.connection import transaction


@dataclass(frozen=True, slots=True)
class FailureCounts:
    """The failures inside the window that concern one attempt (times UTC ms).

    Attributes:
        address_failures: of the address, for any name.
        address_oldest_ms: the oldest of those; None if there are none.
        username_failures: for the name, from any address.
        last_for_pair_ms: the address's latest failure for the name; None if none.
    """

    address_failures: int
    address_oldest_ms: int | None
    username_failures: int
    last_for_pair_ms: int | None


@dataclass(frozen=True, slots=True)
class Reservation:
    """What :func:`reserve_failure` did.

    Attributes:
        row_id: the failure recorded; None if the rule refused (nothing recorded).
        wait_ms: what the rule said: > 0 means refused for that long.
    """

    row_id: int | None
    wait_ms: int


def _counts(conn: sqlite3.Connection, address: str, username: str, since_ms: int) -> FailureCounts:
    address_failures, address_oldest = conn.execute(
        "SELECT count(*), min(t_ms) FROM web_login_failures WHERE address = ? AND t_ms > ?",
        (address, since_ms),
    ).fetchone()
    (username_failures,) = conn.execute(
        "SELECT count(*) FROM web_login_failures WHERE username = ? AND t_ms > ?",
        (username, since_ms),
    ).fetchone()
    (last_for_pair,) = conn.execute(
        "SELECT max(t_ms) FROM web_login_failures WHERE username = ? AND address = ? AND t_ms > ?",
        (username, address, since_ms),
    ).fetchone()
    return FailureCounts(
        int(address_failures),
        None if address_oldest is None else int(address_oldest),
        int(username_failures),
        None if last_for_pair is None else int(last_for_pair),
    )


def reserve_failure(
    conn: sqlite3.Connection,
    address: str,
    username: str,
    now_ms: int,
    window_ms: int,
    wait_ms: Callable[[FailureCounts], int],
) -> Reservation:
    """Check an attempt against the failures in the window and, if allowed, record it.

    One transaction: failures at or before ``now_ms - window_ms`` are deleted, the
    counts read, ``wait_ms`` called with them, and the attempt stored as a failure
    when it returns 0 or less. Another connection can neither reserve nor record
    in between, so concurrent attempts cannot all pass. If ``wait_ms`` raises,
    nothing is changed.

    Args:
        conn: an autocommit connection with no transaction open.
        address: the address as counted (IPv6 by its /64).
        username: the name tried.
        now_ms: the time now (UTC ms).
        window_ms: the sliding window.
        wait_ms: the rule: how long this attempt must wait, given the counts.

    Returns:
        The reservation.
    """
    since_ms = now_ms - window_ms
    with transaction(conn):
        conn.execute("DELETE FROM web_login_failures WHERE t_ms <= ?", (since_ms,))
        wait = wait_ms(_counts(conn, address, username, since_ms))
        row_id = None
        if wait <= 0:
            row_id = conn.execute(
                "INSERT INTO web_login_failures (address, username, t_ms) VALUES (?, ?, ?)",
                (address, username, now_ms),
            ).lastrowid
    return Reservation(row_id, wait)


def forget_failures(conn: sqlite3.Connection, address: str, username: str) -> int:
    """Delete the failures of ``address`` for ``username`` (a right password was given).

    Args:
        conn: a read-write connection.
        address: the address as counted.
        username: the name.

    Returns:
        How many were deleted.
    """
    return conn.execute(
        "DELETE FROM web_login_failures WHERE address = ? AND username = ?", (address, username)
    ).rowcount
