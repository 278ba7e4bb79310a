"""``footfall hub …``: the hub's own commands, registered by the box's CLI.

``hub init`` migrates a database, ``hub serve`` migrates and serves the ingest API and
the dashboard (both print a one-time setup token for the first admin while the hub has
no account), ``hub store add|rotate-secret|list`` keep the store registry, ``hub user
add`` makes a dashboard account (its password read from stdin), ``hub pos import``
stores a POS CSV (a bad row: ``FILE:LINE: key: message``, exit 2, nothing stored).
Every command takes ``--db URL`` (default :func:`cloud_hub.db.default_url`). Exit codes: 0 success,
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
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from flask import Flask
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


def _print_setup_token(engine: Engine, where: str) -> None:
    """Print a one-time setup token for the first admin while the hub has no account."""
    from cloud_hub.accounts import issue_setup_token

    with engine.begin() as conn:
        token = issue_setup_token(conn)
    if token is not None:
        print(f"no dashboard account yet: open {where}/setup with this one-time setup token: "
              f"{token}", flush=True)  # fmt: skip


def cmd_hub_init(args: argparse.Namespace) -> int:
    """Create or migrate the hub's database."""
    engine = _engine(args)
    print(f"hub database ready: {engine.url.render_as_string(hide_password=True)}")
    _print_setup_token(engine, "the dashboard (footfall hub serve)")
    return EXIT_OK


def cmd_hub_serve(args: argparse.Namespace) -> int:
    """Migrate, then serve the ingest API until SIGTERM/SIGINT."""
    from cloud_hub.app import create_app
    from cloud_hub.serve import serve

    engine = _engine(args)

    def ready(url: str) -> None:
        print(f"hub: {url}", flush=True)  # the first line: scripts wait for it
        _print_setup_token(engine, url)

    app = create_app(engine)
    _watch_fleet(engine, app)
    if args.releases:  # the TUF repository of releases, read-only (cloud_hub/releases.py)
        from cloud_hub.releases import blueprint

        app.register_blueprint(blueprint(Path(args.releases)))
    try:
        serve(app, args.host, args.port, ready)
    except OSError as exc:
        raise HubCommandError(
            "serve", f"cannot listen on {args.host}:{args.port}: {exc}", EXIT_FAIL
        ) from exc
    return EXIT_OK


def _watch_fleet(engine: Engine, app: Flask) -> None:
    """Start the fleet's thread: rollouts, and ops alerts where the environment names one."""
    import os

    from cloud_hub.fleet_alerts import FleetWatch, notifiers_from_env
    from cloud_hub.fleet_pages import offline_after_ms

    try:
        notifiers = notifiers_from_env(os.environ)
    except ValueError as exc:
        raise HubCommandError("serve", exc, EXIT_BAD_INPUT) from exc
    FleetWatch(engine, offline_after_ms(app), notifiers).start()
    if notifiers:
        logger.info("fleet alerts to %s", ", ".join(n.name for n in notifiers))


def cmd_hub_store_add(args: argparse.Namespace) -> int:
    """Register a store; print its first secret once."""
    from cloud_hub.registry import RegistryError, add_store

    engine = _engine(args)
    try:
        with engine.begin() as conn:
            secret = add_store(
                conn, args.id, args.name, args.region, args.tz, args.area_m2, _now_ms(),
                args.opening_hours,
            )  # fmt: skip
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


def cmd_hub_rollout_create(args: argparse.Namespace) -> int:
    """Make a staged rollout and start its first group."""
    from cloud_hub.rollouts import RolloutError, create_rollout, parse_group

    engine = _engine(args)
    try:
        groups = [parse_group(text, n) for n, text in enumerate(args.group)]
        with engine.begin() as conn:
            rollout_id = create_rollout(
                conn, args.version, groups, _now_ms(), channel=args.channel, regions=args.region,
                max_failure_rate=args.max_failure_rate, soak_min=args.soak_min,
                forecast_check=not args.no_forecast_check,
            )  # fmt: skip
    except RolloutError as exc:
        raise HubCommandError("rollout create", exc, EXIT_BAD_INPUT) from exc
    print(f"rollout {rollout_id}: {args.channel} {args.version}, group {groups[0].name} started")
    return _print_rollouts(engine, rollout_id, as_json=False)


def _print_rollouts(engine: Engine, rollout_id: int | None, as_json: bool) -> int:
    import json
    from dataclasses import asdict

    from cloud_hub.rollouts import rollout_views

    with engine.begin() as conn:
        views = rollout_views(conn, rollout_id)
    if rollout_id is not None and not views:
        raise HubCommandError("rollout status", f"no rollout {rollout_id}", EXIT_BAD_INPUT)
    if as_json:
        print(json.dumps([asdict(v) for v in views], sort_keys=True))
        return EXIT_OK
    for view in views:
        print(f"rollout {view.id}: {view.channel} {view.version} {view.state}"
              + (f": {view.reason}" if view.reason else ""))  # fmt: skip
        for group in view.groups:
            state = "not started" if group.started_ms is None else (
                f"{group.count('installed', 'current')} updated, {group.count(None)} waiting, "
                f"{group.count('rolled_back', 'refused', 'failed')} failed")  # fmt: skip
            print(f"  {group.name}: {len(group.stores)} stores, {state}")
    return EXIT_OK


def cmd_hub_rollout_status(args: argparse.Namespace) -> int:
    """Print one rollout (or every one) with its groups."""
    return _print_rollouts(_engine(args), args.id, args.json)


def cmd_hub_rollout_act(args: argparse.Namespace) -> int:
    """Pause, resume or abort a rollout."""
    from cloud_hub.rollouts import RolloutError, act

    engine = _engine(args)
    check = False if args.without_forecast_check else None
    try:
        with engine.begin() as conn:
            state = act(conn, args.id, args.rollout_command, _now_ms(), args.reason, check)
    except RolloutError as exc:
        raise HubCommandError(f"rollout {args.rollout_command}", exc, EXIT_BAD_INPUT) from exc
    print(f"rollout {args.id}: {state}")
    return EXIT_OK


def _read_password() -> str:
    """The new account's password: a prompt on a terminal, else stdin's first line."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\n")


def cmd_hub_user_add(args: argparse.Namespace) -> int:
    """Make a dashboard account (password from stdin or a prompt)."""
    from cloud_hub.accounts import AccountError, create_user

    engine = _engine(args)
    try:
        with engine.begin() as conn:
            user = create_user(conn, args.name, _read_password(), args.role, set(args.region))
    except AccountError as exc:
        raise HubCommandError("user add", exc, EXIT_BAD_INPUT) from exc
    scope = ", ".join(sorted(user.regions)) or "every region"
    print(f"account {user.username} added: {user.role}, {scope}")
    return EXIT_OK


def cmd_hub_pos_import(args: argparse.Namespace) -> int:
    """Store a POS CSV (hour,transactions,sales) for one store; all rows or none."""
    import zoneinfo

    from cloud_hub.pos import PosError, parse_csv, store_hours
    from cloud_hub.registry import store_tz

    engine = _engine(args)
    with engine.connect() as conn:
        tz = store_tz(conn, args.store)
    if tz is None:
        raise HubCommandError("pos import", f"no store {args.store!r}", EXIT_BAD_INPUT)
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise HubCommandError("pos import", f"{args.file}: {exc}", EXIT_BAD_INPUT) from exc
    try:
        hours = parse_csv(args.file, text, zoneinfo.ZoneInfo(tz))
    except PosError as exc:
        logger.info("POS import refused: %s", exc)
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    with engine.begin() as conn:
        stored = store_hours(conn, args.store, hours, _now_ms())
    print(f"store {args.store}: {stored} POS hours imported")
    return EXIT_OK


def _opening_hours(text: str) -> list[int]:
    from cloud_hub.compare import OpeningHoursError, parse_opening_hours

    try:
        return parse_opening_hours(text)
    except OpeningHoursError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


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
    user = hub_sub.add_parser("user", help="the dashboard's accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    pos = hub_sub.add_parser("pos", help="point-of-sale data")
    pos_sub = pos.add_subparsers(dest="pos_command", required=True)
    rollout = hub_sub.add_parser("rollout", help="staged rollouts of a release to the boxes")
    rollout_sub = rollout.add_subparsers(dest="rollout_command", required=True)
    groups = {"hub": hub_sub, "store": store_sub, "user": user_sub, "pos": pos_sub,
              "rollout": rollout_sub}  # fmt: skip

    def command(where: str, name: str, help_text: str, handler: object) -> argparse.ArgumentParser:
        parser = groups[where].add_parser(name, help=help_text)
        parser.add_argument("--db", help="database URL (default: $FOOTFALL_HUB_DB or SQLite)")
        parser.set_defaults(func=_run, hub_func=handler)
        return parser

    command("hub", "init", "create or migrate the hub's database", cmd_hub_init)
    serve = command("hub", "serve", "serve the ingest API (migrates first)", cmd_hub_serve)
    serve.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    serve.add_argument("--releases", help="serve this TUF repository (footfall release) at /tuf")

    add = command("store", "add", "register a store; prints its secret once", cmd_hub_store_add)
    add.add_argument("id", help="the store id (as in its box's config)")
    add.add_argument("--name", required=True, help="display name")
    add.add_argument("--region", required=True, help="region id (created if new)")
    add.add_argument("--tz", required=True, help="IANA time zone, e.g. Europe/Berlin")
    add.add_argument("--area-m2", type=_positive, help="sales floor area in m²")
    add.add_argument(
        "--opening-hours", type=_opening_hours, help="e.g. 'mon-fri 9-20, sat 9-18' (default 24 h)"
    )
    rotate = command("store", "rotate-secret", "issue a new secret", cmd_hub_store_rotate)
    rotate.add_argument("id", help="the store id")
    rotate.add_argument(
        "--grace-hours", type=_positive, default=168.0, help="old secrets stay valid (168)"
    )
    rotate.add_argument("--revoke-old", action="store_true", help="old secrets stop now")
    command("store", "list", "list the stores", cmd_hub_store_list)

    user_add = command("user", "add", "add a dashboard account (password on stdin)",
                       cmd_hub_user_add)  # fmt: skip
    user_add.add_argument("name", help="the username")
    user_add.add_argument("--role", required=True, choices=("admin", "manager", "viewer"))
    user_add.add_argument(
        "--region", action="append", default=[], help="a region the account sees (repeatable)"
    )
    create = command("rollout", "create", "a staged rollout; its first group starts",
                     cmd_hub_rollout_create)  # fmt: skip
    create.add_argument("version", help="the release version (footfall release publish)")
    create.add_argument(
        "--group",
        action="append",
        required=True,
        help="in order: NAME=store,store or NAME=25%% (cumulative; repeatable)",
    )
    create.add_argument("--channel", default="stable", help="the release channel (stable)")
    create.add_argument(
        "--region",
        action="append",
        default=[],
        help="shares are of this region's stores (repeatable; default all)",
    )
    create.add_argument(
        "--max-failure-rate",
        type=float,
        default=0.0,
        help="a group's failed share that pauses the rollout (0: any failure)",
    )
    create.add_argument(
        "--soak-min",
        type=_positive,
        default=30.0,
        help="minutes a group runs before the next starts (30)",
    )
    create.add_argument(
        "--no-forecast-check",
        action="store_true",
        help="do not pause when updated stores' footfall leaves its forecast",
    )
    status = command("rollout", "status", "a rollout's groups and boxes", cmd_hub_rollout_status)
    status.add_argument("id", type=int, nargs="?", help="the rollout (default: every one)")
    status.add_argument("--json", action="store_true", help="JSON, every store's outcome")
    for action, text in (("pause", "stop starting groups and sending the update"),
                         ("resume", "go on; the failed boxes are asked again"),
                         ("abort", "stop for good")):  # fmt: skip
        acting = command("rollout", action, text, cmd_hub_rollout_act)
        acting.add_argument("id", type=int, help="the rollout")
        acting.add_argument("--reason", default="", help="why, kept with the rollout")
        acting.set_defaults(without_forecast_check=False)
        if action == "resume":
            acting.add_argument(
                "--without-forecast-check",
                action="store_true",
                help="stop judging boxes by their forecast from now on",
            )
    pos_import = command("pos", "import", "import a POS CSV for a store", cmd_hub_pos_import)
    pos_import.add_argument("file", help="CSV: hour,transactions,sales (store-local hours)")
    pos_import.add_argument("--store", required=True, help="the store id")
