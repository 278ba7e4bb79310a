"""The box's report of an update's outcome to the hub, ``POST`` :data:`REPORT_PATH`.

The body is JSON, signed and replay-checked as a batch is (:func:`wire.sign_headers`):
which version the box tried, how it went (:data:`OUTCOMES`) and why, the version it runs
now and the hub's rollout it was for (0: none). :func:`encode_update_report` on the box,
:func:`decode_update_report` on the hub, whose :class:`~wire.errors.WireError` names the
JSON path of what is wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from wire.errors import WireError
from wire.heartbeat import _number, _object, _text

REPORT_PATH: Final = "/api/v1/update-report"
#: ``installed``: it passed the health gate; ``current``: it already ran it; the rest failed.
OUTCOMES: Final = ("installed", "current", "rolled_back", "refused", "failed")
#: The most bytes of a report.
MAX_REPORT_BYTES: Final = 16_384
_VERSION: Final = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
_INT_MAX: Final = 2**53

UpdateReport = dict[str, Any]


def encode_update_report(
    store_id: str, rollout_id: int, version: str, outcome: str, reason: str, running: str | None
) -> bytes:
    """The report's body.

    Args:
        store_id: The hub's id of the store.
        rollout_id: The rollout the update was for (0: none).
        version: The version the box tried.
        outcome: One of :data:`OUTCOMES`.
        reason: Why, in words (cut to 1,000 characters).
        running: The version the box runs now (None: nothing yet).
    """
    document = {"store_id": store_id, "rollout_id": rollout_id, "version": version,
                "outcome": outcome, "reason": reason[:1000], "running": running}  # fmt: skip
    return json.dumps(document, sort_keys=True).encode()


def decode_update_report(body: bytes) -> UpdateReport:
    """Parse and check a report.

    Args:
        body: The request body.

    Raises:
        WireError: Too large, not JSON, or a field missing, unknown or out of range.
    """
    if len(body) > MAX_REPORT_BYTES:
        raise WireError(f"the report is over {MAX_REPORT_BYTES} bytes")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"the body is not JSON: {exc}") from exc
    keys = {"store_id", "rollout_id", "version", "outcome", "reason", "running"}
    report = _object(document, "$", keys, set())
    _text(report["store_id"], "$.store_id", 64)
    _number(report["rollout_id"], "$.rollout_id", 0, _INT_MAX, integer=True)
    _text(report["version"], "$.version", 64)
    if report["outcome"] not in OUTCOMES:
        raise WireError(f"expected one of {', '.join(OUTCOMES)}", "$.outcome")
    _text(report["reason"], "$.reason", 1000)
    if report["running"] is not None:
        _text(report["running"], "$.running", 64, _VERSION)
    return report
