"""The login limiter: failed sign-ins counted in SQLite (``web_login_failures``).

Two rules, over a sliding window (5 minutes):

* an **address** with ``attempts`` failures (for any names) waits until the oldest
  leaves the window: one guesser gets ``attempts`` tries per window;
* a **username** with ``attempts`` failures (from anywhere) is not locked: an
  address that has not failed for it still gets its try (so the real user signs
  in from their own device), but an address that has failed for it waits
  ``2 ** (failures - attempts)`` seconds (at most the window) after its last
  failure for it: a crowd of addresses gets slower and slower.

An attempt is reserved, as a failure, in the same ``BEGIN IMMEDIATE``
transaction that checks the rules, before the password is checked; a right
password then removes it. So concurrent guesses cannot all pass the check, and
the counts survive a restart. IPv6 addresses count by their /64 (one host
holds a whole /64). The table is read and written through
:mod:`local_db.login_failures`; this module holds the rules.
"""

from __future__ import annotations

import ipaddress
import logging
import sqlite3
from dataclasses import dataclass

from local_db.login_failures import FailureCounts, forget_failures, reserve_failure

logger = logging.getLogger(__name__)

WINDOW_MS = 300_000


@dataclass(frozen=True)
class Attempt:
    """A reserved sign-in attempt: ``wait_s`` > 0 means refused, try again then."""

    address: str
    username: str
    row_id: int | None
    wait_s: float


def address_key(address: str | None) -> str:
    """The address the limiter counts: IPv4 as is, IPv6 by its /64, anything else as given."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "?"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginLimiter:
    """Check-and-reserve sign-in attempts (see the module docstring).

    Args:
        attempts: failures allowed per address in the window, and per name before
            its failed addresses are slowed.
        window_ms: the sliding window.
    """

    def __init__(self, attempts: int = 5, window_ms: int = WINDOW_MS) -> None:
        self.attempts = attempts
        self.window_ms = window_ms

    def _wait_ms(self, counts: FailureCounts, now_ms: int) -> int:
        if counts.address_failures >= self.attempts and counts.address_oldest_ms is not None:
            return counts.address_oldest_ms + self.window_ms - now_ms
        if counts.username_failures < self.attempts:
            return 0
        if counts.last_for_pair_ms is None:
            return 0  # this address has not failed for the name: it gets its try
        excess = min(counts.username_failures - self.attempts, 30)  # 2 ** 30 s is past any window
        delay_ms = min(self.window_ms, 1000 << excess)
        return counts.last_for_pair_ms + delay_ms - now_ms

    def reserve(
        self, conn: sqlite3.Connection, address: str | None, username: str, now_ms: int
    ) -> Attempt:
        """Check the rules and, if they allow it, record this attempt as a failure.

        Args:
            conn: a read-write autocommit connection with no transaction open.
            address: the client's address.
            username: the name tried.
            now_ms: the time now (UTC ms).

        Returns:
            The attempt; when ``wait_s`` > 0 nothing was recorded and the attempt must
            be refused.
        """
        key = address_key(address)
        reservation = reserve_failure(
            conn, key, username, now_ms, self.window_ms, lambda c: self._wait_ms(c, now_ms)
        )
        return Attempt(key, username, reservation.row_id, max(0, reservation.wait_ms) / 1000)

    def succeeded(self, conn: sqlite3.Connection, attempt: Attempt) -> None:
        """The password was right: forget this address's failures for this name."""
        forget_failures(conn, attempt.address, attempt.username)
