"""Alert summaries per 5-minute bucket: what the hub learns of the box's alerts.

For each bucket and each (rule, target) with an alert active in it: how many alerts
were raised in the bucket and how many seconds of the bucket one was active (an alert
still active counts to the end of the range). The message and who acknowledged it stay
in ``alert_log`` on the box.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Final

import pandas as pd

from local_db.alert_log import AlertRecord

COLUMNS: Final = (
    "store_id", "bucket_ms", "rule_id", "target", "kind", "severity", "raised", "active_s",
)  # fmt: skip


@dataclass
class _Summary:
    store_id: str
    bucket_ms: int
    rule_id: str
    target: str
    kind: str
    severity: str
    raised: int = 0
    active_s: float = 0.0


def alert_summaries(
    alerts: Iterable[AlertRecord], store_id: str, t0_ms: int, t1_ms: int, bucket_ms: int
) -> pd.DataFrame:
    """One row per bucket of ``[t0, t1)`` and (rule, target) an alert was active in.

    Args:
        alerts: The store's alerts active in the range (any order).
        store_id: The store.
        t0_ms: The first bucket's start (UTC ms, a bucket boundary).
        t1_ms: The range's end (a bucket boundary, exclusive).
        bucket_ms: The bucket's length.

    Returns:
        The ``agg_alerts`` rows; kind and severity are those of the bucket's latest alert.
    """
    rows: dict[tuple[int, str, str], _Summary] = {}
    for alert in sorted(alerts, key=lambda a: a.raised_ms):
        start = max(alert.raised_ms, t0_ms)
        end = min(t1_ms if alert.cleared_ms is None else alert.cleared_ms, t1_ms)
        bucket = start - start % bucket_ms
        while bucket < end:
            key = (bucket, alert.rule_id, alert.target)
            row = rows.setdefault(
                key, _Summary(store_id, bucket, alert.rule_id, alert.target, "", "")
            )
            row.kind, row.severity = alert.kind, alert.severity
            row.raised += bucket <= alert.raised_ms < bucket + bucket_ms
            row.active_s += (min(end, bucket + bucket_ms) - max(start, bucket)) / 1000
            bucket += bucket_ms
    return pd.DataFrame([asdict(row) for row in rows.values()], columns=list(COLUMNS))
