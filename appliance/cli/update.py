"""``footfall update check|apply|status|recover``: the box's signed updates (``appliance/update``).

Where to update from: ``--config`` (the store YAML: its ``hub`` section gives the hub and
the secrets the outcome report is signed with, its database the ``software_update`` item
the hub sent, its ``web`` port the ``/healthz`` the gate probes) or ``--hub URL`` alone.
The version to run is ``--version``, else the hub's ``software_update`` for this store
(its rollout group's), else the channel's newest. ``check`` and ``apply`` first recover
from an interrupted update (:func:`appliance.update.recover`), as ``recover`` does alone.
Exit codes: 0 installed / nothing to do, 1 refused, rolled back or failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from contextlib import closing
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from appliance.config import ConfigError, load_config
from appliance.update import (
    Settings,
    UpdateRefusedError,
    apply_release,
    fetch_release,
    read_journal,
    recover,
)
from appliance.update.fetch import check_release
from appliance.update.install import installed_versions, running_version
from appliance.update.report import send_report

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_RELEASES: Final = "/var/lib/footfall/releases"
DEFAULT_TRUST_ROOT: Final = "/etc/footfall/tuf-root.json"


class _Setup:
    """What an update command works with, from ``--config`` and the flags."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.settings_error = ""
        self.hub_url: str | None = args.hub
        self.store_id: str | None = None
        self.secrets: tuple[str, ...] = ()
        self.db: Path | None = None
        port = 8080
        if args.config:
            from appliance.cli.sync import SyncSetupError, hub_target

            config_path = Path(args.config)
            config = load_config(config_path)
            port = config.web.port
            self.db = Path(config.storage.db_path).expanduser()
            if config.hub is not None:
                try:
                    target = hub_target(config, config_path)
                except SyncSetupError as exc:
                    self.settings_error = str(exc)
                else:
                    self.hub_url = self.hub_url or target.url
                    self.store_id, self.secrets = target.store_id, target.secrets
        self.settings = Settings(
            releases=Path(args.releases),
            health_url=args.health_url or f"http://127.0.0.1:{port}/healthz",
            restart=tuple(shlex.split(args.restart_command)),
            gate_s=args.gate_s,
            poll_s=args.poll_s,
        )

    def wanted(self, version: str | None) -> tuple[str | None, int]:
        """The version to run and its rollout: the flag, the hub's item, or the newest."""
        if version is not None or self.db is None or self.store_id is None:
            return version, 0
        from local_db import connect
        from local_db.outbox import downlink

        if not self.db.exists():
            return None, 0
        with closing(connect(self.db)) as conn:
            items = [d for d in downlink(conn, self.store_id)
                     if d.kind == "software_update" and d.accepted and d.payload]  # fmt: skip
        if not items:
            return None, 0
        payload = items[-1].payload or {}
        rollout = payload.get("rollout_id", 0)
        return str(payload.get("version")), rollout if isinstance(rollout, int) else 0

    def report(self) -> None:
        """Send the last outcome to the hub if it can be (retried by the next command)."""
        if self.hub_url and self.store_id and self.secrets:
            send_report(self.hub_url, self.store_id, self.secrets, self.settings.releases)


def _setup(args: argparse.Namespace) -> _Setup | None:
    try:
        setup = _Setup(args)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return None
    if setup.settings_error:
        print(setup.settings_error, file=sys.stderr)
        return None
    return setup


def _need_hub(setup: _Setup) -> str | None:
    if setup.hub_url is None:
        print("update: no hub: give --hub URL or a --config with a hub section", file=sys.stderr)
    return setup.hub_url


def cmd_update_check(args: argparse.Namespace) -> int:
    """Say which version this box should run and whether it does."""
    setup = _setup(args)
    if setup is None or (hub := _need_hub(setup)) is None:
        return EXIT_BAD_INPUT
    journal = recover(setup.settings)
    wanted, _rollout = setup.wanted(args.version)
    try:
        version = check_release(hub, Path(args.trust_root), setup.settings.releases / "tuf",
                                args.channel, wanted)  # fmt: skip
    except UpdateRefusedError as exc:
        print(f"update check: {exc}", file=sys.stderr)
        return EXIT_FAIL
    state = "up to date" if version == journal.current else "an update is available"
    print(f"running {journal.current or 'nothing'}; {args.channel} offers {version}: {state}")
    return EXIT_OK


def cmd_update_apply(args: argparse.Namespace) -> int:
    """Install the wanted version, gate it, and roll back by itself if it fails."""
    setup = _setup(args)
    if setup is None or (hub := _need_hub(setup)) is None:
        return EXIT_BAD_INPUT
    wanted, rollout = setup.wanted(args.version)
    trust_root, state_dir = Path(args.trust_root), setup.settings.releases / "tuf"
    outcome = apply_release(
        setup.settings,
        lambda dest: fetch_release(hub, trust_root, state_dir, args.channel, wanted, dest),
        wanted, rollout, args.allow_downgrade,
    )  # fmt: skip
    setup.report()
    if outcome.outcome in ("installed", "current"):
        print(f"update: {outcome.version} {outcome.outcome.replace('current', 'already running')}")
        return EXIT_OK
    print(f"update: {outcome.version} {outcome.outcome.replace('_', ' ')}: {outcome.reason}; "
          f"running {outcome.running or 'nothing'}", file=sys.stderr)  # fmt: skip
    return EXIT_FAIL


def cmd_update_recover(args: argparse.Namespace) -> int:
    """Finish or undo an interrupted update."""
    setup = _setup(args)
    if setup is None:
        return EXIT_BAD_INPUT
    journal = recover(setup.settings)
    setup.report()
    print(f"update: running {journal.current or 'nothing'}")
    return EXIT_OK


def cmd_update_status(args: argparse.Namespace) -> int:
    """Print the journal: the version running, the last outcome, an interrupted step."""
    releases = Path(args.releases)
    try:
        journal = read_journal(releases)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAIL
    info: dict[str, Any] = asdict(journal)
    info["current_link"] = running_version(releases)
    info["installed"] = list(installed_versions(releases))
    if args.json:
        print(json.dumps(info, sort_keys=True))
        return EXIT_OK
    print(f"running: {journal.current or 'nothing'} (current → {info['current_link']})")
    print(f"installed: {', '.join(info['installed']) or 'none'}")
    if journal.phase != "idle":
        print(f"interrupted while {journal.phase} {journal.target}: the next "
              "`footfall update` command recovers")  # fmt: skip
    if journal.last is not None:
        last = journal.last
        reported = "reported" if journal.reported else "not reported yet"
        print(f"last: {last.outcome} {last.version} {last.reason} ({reported})".rstrip())
    return EXIT_OK


def add_update_parser(sub: Any) -> None:
    """Register ``footfall update ...`` on the CLI's subparsers."""
    update = sub.add_parser("update", help="signed software updates from the hub (TUF)")
    update_sub = update.add_subparsers(dest="update_command", required=True)
    commands = {
        "check": ("which version to run, verified", cmd_update_check),
        "apply": ("install it, gate it, roll back by itself", cmd_update_apply),
        "recover": ("finish or undo an interrupted update", cmd_update_recover),
        "status": ("the running version and the last outcome", cmd_update_status),
    }
    defaults = {"config": None, "hub": None, "channel": "stable", "version": None,
                "trust_root": DEFAULT_TRUST_ROOT, "health_url": None,
                "restart_command": "systemctl restart footfall.service", "gate_s": 300.0,
                "poll_s": 2.0, "allow_downgrade": False}  # fmt: skip
    for name, (help_text, handler) in commands.items():
        parser = update_sub.add_parser(name, help=help_text)
        parser.add_argument("--releases", default=DEFAULT_RELEASES, help="the releases folder")
        parser.set_defaults(func=handler, **defaults)
        if name == "status":
            parser.add_argument("--json", action="store_true", help="one JSON object")
            continue
        parser.add_argument("--config", help="the store YAML (hub, secrets, database, port)")
        parser.add_argument("--hub", help="the hub's URL (default: the config's hub.url)")
        if name in ("check", "apply"):
            parser.add_argument("--channel", default="stable", help="the release channel (stable)")
            parser.add_argument("--version", help="this version (default: the hub's rollout's)")
            parser.add_argument(
                "--trust-root", default=DEFAULT_TRUST_ROOT,
                help="the trusted TUF root.json (shipped with the image)",
            )  # fmt: skip
        if name == "check":
            continue
        parser.add_argument("--health-url", help="the /healthz the gate probes")
        parser.add_argument("--restart-command", default=defaults["restart_command"],
                            help="restarts the box on releases/current")  # fmt: skip
        parser.add_argument("--gate-s", type=float, default=300.0, help="the gate's time (300)")
        parser.add_argument("--poll-s", type=float, default=2.0, help="between probes (2)")
        if name == "apply":
            parser.add_argument("--allow-downgrade", action="store_true",
                                help="install an older version than the running one")  # fmt: skip
