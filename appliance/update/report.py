"""The signed outcome report to the hub (``POST /api/v1/update-report``).

The body is JSON, signed and replay-checked as a batch is (``wire.sign_headers`` with the
store's secrets): which version the box tried, ``installed`` / ``rolled_back`` /
``refused`` / ``failed`` and why, the version it runs now, and the rollout it was for. It
is sent after each update and retried by every later ``footfall update`` command until
the hub takes it (the journal's ``reported``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import requests

from appliance.update.journal import Journal, read_journal, write_journal
from wire import sign_headers
from wire.update_report import REPORT_PATH, encode_update_report

logger = logging.getLogger(__name__)


def report_body(store_id: str, journal: Journal) -> bytes:
    """The report of the journal's last outcome (``wire.update_report``)."""
    last = journal.last
    assert last is not None
    return encode_update_report(
        store_id, last.rollout_id, last.version, last.outcome, last.reason, journal.current
    )


def send_report(
    hub_url: str, store_id: str, secrets: Sequence[str], releases: Path, timeout_s: float = 20
) -> str | None:
    """Send the last outcome if the hub does not have it yet; None, or why it was not taken.

    Args:
        hub_url: The hub's base URL.
        store_id: The hub's id of this store.
        secrets: The store's signing secrets.
        releases: The releases folder (its journal).
        timeout_s: The request's timeout.
    """
    journal = read_journal(releases)
    if journal.last is None or journal.reported:
        return None
    body = report_body(store_id, journal)
    headers = sign_headers(secrets, f"upd-{uuid.uuid4().hex}", store_id, body, int(time.time()))
    headers["Content-Encoding"] = "identity"
    try:
        response = requests.post(hub_url.rstrip("/") + REPORT_PATH, data=body, headers=headers,
                                 timeout=timeout_s)  # fmt: skip
    except requests.RequestException as exc:
        logger.warning("update report not sent (retried later): %s", exc)
        return f"not sent: {exc}"
    if response.status_code != 200:
        logger.warning(
            "update report refused: HTTP %d %s", response.status_code, response.text[:300]
        )
        return f"HTTP {response.status_code}: {response.text[:300]}"
    write_journal(releases, read_journal(releases).but(reported=True))
    logger.info("update report sent: %s %s", journal.last.outcome, journal.last.version)
    return None
