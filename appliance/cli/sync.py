"""``footfall sync status`` and ``footfall sync push``, and the sync job of ``footfall run``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.config import BoxConfig, ConfigError, load_config
from local_db import connect, migrate
from sync import HubTarget, SecretError, Sender, load_secrets, sync_status

if TYPE_CHECKING:
    from appliance.box.runtime import Box
    from appliance.config.live import LiveConfig

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_CONFIG = "/etc/footfall/store.yaml"


class SyncSetupError(ValueError):
    """The config's ``hub`` section is missing or its secret unusable (``FILE: key: why``)."""


def hub_target(config: BoxConfig, config_path: Path) -> HubTarget:
    """Where and as whom this box sends, its secrets read now.

    Args:
        config: The store config.
        config_path: Its file (``hub.secret_file`` is relative to its folder).

    Raises:
        SyncSetupError: No ``hub`` section, or its secret is unset, unreadable or malformed.
    """
    hub = config.hub
    if hub is None:
        raise SyncSetupError(f"{config_path}: hub: not configured (the box keeps its data local)")
    secret_file = None if hub.secret_file is None else config_path.parent / hub.secret_file
    try:
        secrets = load_secrets(secret_file.expanduser() if secret_file else None, hub.secret_env)
    except SecretError as exc:
        key = "secret_env" if hub.secret_env else "secret_file"
        raise SyncSetupError(f"{config_path}: hub.{key}: {exc}") from None
    return HubTarget(hub.url, hub.store_id or config.store.id, config.store.id, tuple(secrets))


def box_sender(config: BoxConfig, live: LiveConfig, box: Box) -> Sender:
    """``footfall run``'s sender: its heartbeats carry the box's health, configs go live.

    Raises:
        SyncSetupError: As :func:`hub_target`.
    """
    from appliance.box.heartbeat import BoxAgent
    from appliance.box.remote_config import RemoteConfig

    target = hub_target(config, live.path)
    remote = RemoteConfig(live.path, box.db_path, target.store_id, live)
    agent = BoxAgent(config, live.path, box.db_path, target.store_id, health=box.health,
                     remote=remote)  # fmt: skip
    return Sender(box.db_path, target, agent=agent)


def _db_path(config: BoxConfig, db: str | None) -> Path:
    path = Path(db).expanduser() if db else Path(config.storage.db_path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(connect(path)) as conn:
        migrate(conn)
    return path


def _setup(args: argparse.Namespace) -> tuple[BoxConfig, HubTarget, Path] | None:
    """The config, target and database of a sync command; None (printed) when unusable."""
    try:
        config = load_config(args.config)
        target = hub_target(config, Path(args.config))
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None
    except SyncSetupError as exc:
        logger.debug("sync setup: %s", exc)
        print(exc, file=sys.stderr)
        return None
    return config, target, _db_path(config, args.db)


def _utc(t_ms: int | None) -> str:
    if t_ms is None:
        return "never"
    return datetime.fromtimestamp(t_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cmd_sync_status(args: argparse.Namespace) -> int:
    """Pending rows per table, the batch in flight, the last ack, the lag, the last error."""
    setup = _setup(args)
    if setup is None:
        return EXIT_BAD_INPUT
    _config, target, db = setup
    now_ms = round(time.time() * 1000)
    with closing(connect(db, readonly=True)) as conn:
        status = sync_status(conn, target.local_store_id, target.store_id, now_ms)
    if args.json:
        print(json.dumps({"hub": target.url, "store_id": target.store_id, **status.as_dict()}))
        return EXIT_OK
    state, batch = status.state, status.pending_batch
    print(f"sync of store {target.local_store_id} to {target.url} as {target.store_id}")
    print(f"  last ack: {_utc(state.last_ack_ms)}" + (
        f" (batch {state.last_ack_batch})" if state.last_ack_batch else ""))  # fmt: skip
    print(f"  lag: {status.lag_s:.0f} s (age of the oldest write not acknowledged)")
    if batch is not None:
        print(f"  in flight: batch {batch.batch_id}, {batch.rows} rows, {batch.attempts} tries")
    if state.error:
        kind = "refused by the hub (needs a human)" if state.rejected else "failed"
        print(f"  last attempt {kind} at {_utc(state.error_ms)}: {state.error}")
        print(f"  next try after {_utc(state.retry_at_ms)} ({state.failures} failure(s) in a row)")
    print(f"  downlink: {status.downlink_accepted} accepted, {status.downlink_rejected} rejected")
    print(f"  {'table':<16} {'pending rows':>12}")
    for table, rows in status.pending_rows.items():
        print(f"  {table:<16} {rows:>12}")
    return EXIT_OK


def cmd_sync_push(args: argparse.Namespace) -> int:
    """Send the outbox now (the backoff's wait skipped): all of it, or one batch."""
    setup = _setup(args)
    if setup is None:
        return EXIT_BAD_INPUT
    config, target, db = setup
    from appliance.box.heartbeat import BoxAgent

    agent = BoxAgent(config, Path(args.config), db, target.store_id)
    sender = Sender(db, target, run_budget_s=args.budget_s, agent=agent)
    result = sender.push(max_batches=1 if args.once else None, force=True)
    beat_error = sender.beat()
    print(
        f"sync: {result.batches} batch(es), {result.rows} rows acknowledged by {target.url} "
        f"({result.duplicates} duplicate(s)), {result.attempts} request(s): {result.state}"
        + (f": {result.error}" if result.error else "")
    )
    if result.downlink_accepted or result.downlink_rejected:
        print(f"downlink: {result.downlink_accepted} accepted, {result.downlink_rejected} rejected")
    print(f"heartbeat: {beat_error or 'delivered'}")
    return EXIT_OK if result.state in ("synced", "partial") else EXIT_FAIL


def add_sync_parser(sub: Any) -> None:
    """Register ``footfall sync ...`` on the CLI's subparsers."""
    sync = sub.add_parser("sync", help="the box's outbox to the hub: status, push now")
    sync_sub = sync.add_subparsers(dest="sync_command", required=True)
    status = sync_sub.add_parser("status", help="pending rows per table, last ack, lag")
    push = sync_sub.add_parser("push", help="send the outbox to the hub now")
    for parser in (status, push):
        parser.add_argument("--config", default=DEFAULT_CONFIG, help="the store YAML")
        parser.add_argument("--db", help="SQLite file (default: storage.db_path)")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(func=cmd_sync_status)
    push.add_argument("--once", action="store_true", help="one batch only")
    push.add_argument(
        "--budget-s", type=float, default=600.0, help="stop starting batches after this long"
    )
    push.set_defaults(func=cmd_sync_push)
