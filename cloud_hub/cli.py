"""``footfall hub …``: the hub's own commands, registered by the box's CLI.

``hub init`` migrates a database, ``hub serve`` migrates and serves the ingest API,
``hub store add|rotate-secret|list`` keep the store registry. Every command takes
``--db URL`` (default :func:`cloud_hub.db.default_url`). Exit codes: 0 success,
1 runtime failure (the database unreachable, a migration failed), 2 bad input (a bad
URL, id, time zone, a store that exists or does not). SQLAlchemy, Alembic and the rest
are imported inside the handlers: a box installed without the ``hub`` extra still
starts, and ``footfall hub`` then says what to install.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from sqlalchemy import Engine

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAIL: Final = 1
EXIT_BAD_INPUT: Final = 2
DEFAULT_PORT: Final = 8090
HOUR_MS: Final = 3_600_000


class HubCommandError(Exception):
    """A command failed: its message for stderr and its exit code."""

    def __init__(self, command: str, message: object, code: int) -> None:
        super().__init__(f"hub {command}: {message}")
        self.code = code


def _engine(args: argparse.Namespace, migrate: bool = True) -> Engine:
    """The migrated database of ``--db``; raises :class:`HubCommandError` if not."""
    try:
        from cloud_hub.db import HubDbError, default_url, open_engine
        from cloud_hub.db import migrate as run_migrations
    except ImportError as exc:
        raise HubCommandError(
            args.hub_command, f"{exc.name} is not installed: pip install 'footfall[hub]'", 1
        ) from exc
    url = args.db or default_url()
    try:
        engine = open_engine(url)
    except HubDbError as exc:
        raise HubCommandError(args.hub_command, exc, EXIT_BAD_INPUT) from exc
    if migrate:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # not a line per plugin
        try:
            run_migrations(engine)
        except HubDbError as exc:
            raise HubCommandError(args.hub_command, exc, EXIT_FAIL) from exc
    return engine


def _now_ms() -> int:
    return int(time.time() * 1000)


def cmd_hub_init(args: argparse.Namespace) -> int:
    """Create or migrate the hub's database."""
    engine = _engine(args)
    print(f"hub database ready: {engine.url.render_as_string(hide_password=True)}")
    return EXIT_OK


def cmd_hub_serve(args: argparse.Namespace) -> int:
    """Migrate, then serve the ingest API until SIGTERM/SIGINT."""
    from cloud_hub.app import create_app
    from cloud_hub.serve import serve

    engine = _engine(args)
    try:
        serve(
            create_app(engine), args.host, args.port, lambda url: print(f"hub: {url}", flush=True)
        )
    except OSError as exc:
        raise HubCommandError(
            "serve", f"cannot listen on {args.host}:{args.port}: {exc}", EXIT_FAIL
        ) from exc
    return EXIT_OK


def cmd_hub_store_add(args: argparse.Namespace) -> int:
    """Register a store; print its first secret once."""
    from cloud_hub.registry import RegistryError, add_store

    engine = _engine(args)
    try:
        with engine.begin() as conn:
            secret = add_store(
                conn, args.id, args.name, args.region, args.tz, args.area_m2, _now_ms()
            )
    except RegistryError as exc:
        raise HubCommandError("store add", exc, EXIT_BAD_INPUT) from exc
    print(f"store {args.id} added to region {args.region}")
    print(f"secret (shown once; give it to the store's box): {secret}")
    return EXIT_OK


def cmd_hub_store_rotate(args: argparse.Namespace) -> int:
    """Issue a store a new secret; the old ones expire after the grace period."""
    from cloud_hub.registry import RegistryError, rotate_secret

    engine = _engine(args)
    grace_ms = round(args.grace_hours * HOUR_MS)
    try:
        with engine.begin() as conn:
            secret = rotate_secret(conn, args.id, _now_ms(), grace_ms, args.revoke_old)
    except RegistryError as exc:
        raise HubCommandError("store rotate-secret", exc, EXIT_BAD_INPUT) from exc
    old = "revoked" if args.revoke_old else f"valid {args.grace_hours:g} h more"
    print(f"store {args.id}: new secret (shown once): {secret}")
    print(f"the old secret(s): {old}")
    return EXIT_OK


def cmd_hub_store_list(args: argparse.Namespace) -> int:
    """Print every store: region, time zone, area, active secrets, batches, last batch."""
    from datetime import UTC, datetime

    from cloud_hub.registry import list_stores

    engine = _engine(args)
    with engine.connect() as conn:
        infos = list_stores(conn, _now_ms())
    print("id\tname\tregion\ttz\tarea_m2\tsecrets\tbatches\tlast_batch_utc")
    for s in infos:
        last = (
            datetime.fromtimestamp(s.last_received_ms / 1000, UTC).isoformat(timespec="seconds")
            if s.last_received_ms is not None
            else "-"
        )
        area = "-" if s.area_m2 is None else f"{s.area_m2:g}"
        print(
            f"{s.id}\t{s.name}\t{s.region_id}\t{s.tz}\t{area}\t{s.active_secrets}\t"
            f"{s.batches}\t{last}"
        )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.hub_func(args))
    except HubCommandError as exc:
        logger.debug("%s", exc)
        print(exc, file=sys.stderr)
        return exc.code


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not 0 <= value < 1e6:
        raise argparse.ArgumentTypeError(f"{text} must be ≥ 0")
    return value


def add_hub_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``footfall hub`` and its subcommands."""
    hub = sub.add_parser("hub", help="the central hub: ingest API and store registry")
    hub_sub = hub.add_subparsers(dest="hub_command", required=True)
    store = hub_sub.add_parser("store", help="the store registry")
    store_sub = store.add_subparsers(dest="store_command", required=True)

    def command(where: str, name: str, help_text: str, handler: object) -> argparse.ArgumentParser:
        parser = (hub_sub if where == "hub" else store_sub).add_parser(name, help=help_text)
        parser.add_argument("--db", help="database URL (default: $FOOTFALL_HUB_DB or SQLite)")
        parser.set_defaults(func=_run, hub_func=handler)
        return parser

    command("hub", "init", "create or migrate the hub's database", cmd_hub_init)
    serve = command("hub", "serve", "serve the ingest API (migrates first)", cmd_hub_serve)
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")

    add = command("store", "add", "register a store; prints its secret once", cmd_hub_store_add)
    add.add_argument("id", help="the store id (as in its box's config)")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--region", required=True, help="region id (created if new)")
    add.add_argument("--tz", required=True, help="IANA time zone, e.g. Europe/Berlin")
    add.add_argument("--area-m2", type=_positive, help="sales floor area in m²")
    rotate = command("store", "rotate-secret", "issue a new secret", cmd_hub_store_rotate)
    rotate.add_argument("id", help="the store id")
    rotate.add_argument(
        "--grace-hours", type=_positive, default=168.0, help="old secrets stay valid (168)"
    )
    rotate.add_argument("--revoke-old", action="store_true", help="old secrets stop now")
    command("store", "list", "list the stores", cmd_hub_store_list)
