"""Pushing aggregate tables (never trajectories) from the box to the hub.

The outbox lives in the box's database (:mod:`local_db.outbox`: bucket revisions,
high-water marks, the pending batch); this package builds batches from it in the wire
format (:mod:`sync.batches`), sends them (:class:`Sender`: signed at send time,
retried with capped exponential backoff and full jitter, marks advanced only by the
hub's ack) and reads the store's secrets (:func:`load_secrets`). It imports only
``local_db`` and ``wire`` of ours (``make lint``).
"""

from sync.batches import ROW_BUDGET, next_batch, plan
from sync.secrets import SecretError, load_secrets
from sync.sender import Backoff, HubRejectedError, HubTarget, PushResult, Sender
from sync.status import SyncStatus, sync_status

__all__ = [
    "ROW_BUDGET",
    "Backoff",
    "HubRejectedError",
    "HubTarget",
    "PushResult",
    "SecretError",
    "Sender",
    "SyncStatus",
    "load_secrets",
    "next_batch",
    "plan",
    "sync_status",
]
