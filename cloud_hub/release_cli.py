"""``footfall release init|sign|publish|timestamp|status``: the hub's TUF repository of releases.

``init`` creates the repository (``--repo``) and its keys: the root key(s) where
``--root-key`` says (keep them offline: only ``sign`` needs them), the online keys in the
repository's ``keys/``. ``sign`` signs a new root version with the root keys (a new expiry).
``publish`` adds a release (a wheel and model files) to a channel and re-signs targets,
snapshot and timestamp; ``timestamp`` re-signs the timestamp alone (run it from a timer
more often than ``--timestamp-days``: boxes refuse a stale one). ``status`` prints each
role's version and expiry. The TUF libraries are imported inside the handlers, as the
hub's are (:mod:`cloud_hub.cli`). Exit codes: 0 success, 2 bad input (a bad name, a
missing key or file, a version published before).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloud_hub.releases import Expiry

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _expiry(args: argparse.Namespace) -> Expiry:
    from cloud_hub.releases import Expiry

    return Expiry(args.root_days, args.targets_days, args.snapshot_days, args.timestamp_days)


def cmd_release_init(args: argparse.Namespace) -> int:
    """Create the repository and its keys."""
    from cloud_hub.releases import Repository

    keys = [Path(k) for k in args.root_key]
    Repository.init(Path(args.repo), keys, args.root_threshold, _expiry(args))
    print(f"TUF repository ready in {args.repo}; root key(s): {', '.join(args.root_key)} "
          "(move them offline); give the boxes "
          f"{Path(args.repo) / 'metadata' / '1.root.json'} as their trusted root")  # fmt: skip
    return EXIT_OK


def cmd_release_sign(args: argparse.Namespace) -> int:
    """Sign a new root version with the offline root keys."""
    from cloud_hub.releases import Repository

    version = Repository(Path(args.repo)).sign_root([Path(k) for k in args.root_key],
                                                    _expiry(args))  # fmt: skip
    print(f"root version {version} signed")
    return EXIT_OK


def cmd_release_publish(args: argparse.Namespace) -> int:
    """Add a release to a channel."""
    from cloud_hub.releases import Repository

    repo = Repository(Path(args.repo))
    added = repo.publish(args.channel, args.version, Path(args.wheel),
                         [Path(m) for m in args.model], _expiry(args))  # fmt: skip
    print(f"published {args.channel} {args.version}: {len(added)} targets; "
          f"targets version {repo.targets().signed.version}")  # fmt: skip
    return EXIT_OK


def cmd_release_timestamp(args: argparse.Namespace) -> int:
    """Re-sign the timestamp."""
    from cloud_hub.releases import Repository

    version = Repository(Path(args.repo)).refresh_timestamp(_expiry(args))
    print(f"timestamp version {version} signed")
    return EXIT_OK


def cmd_release_status(args: argparse.Namespace) -> int:
    """Print each role's version and expiry, and the releases."""
    from cloud_hub.releases import Repository

    print(json.dumps(Repository(Path(args.repo)).describe(), indent=2))
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from cloud_hub.releases import ReleaseError

    try:
        return int(args.release_func(args))
    except ReleaseError as exc:
        logger.info("release %s refused: %s", args.release_command, exc)
        print(f"release {args.release_command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def add_release_parser(sub: Any) -> None:
    """Register ``footfall release ...`` on the CLI's subparsers."""
    release = sub.add_parser("release", help="the hub's signed release repository (TUF)")
    release_sub = release.add_subparsers(dest="release_command", required=True)
    commands = {
        "init": ("create the repository and its keys", cmd_release_init),
        "sign": ("sign a new root version with the offline root keys", cmd_release_sign),
        "publish": ("add a release to a channel", cmd_release_publish),
        "timestamp": ("re-sign the timestamp (from a timer)", cmd_release_timestamp),
        "status": ("each role's version and expiry", cmd_release_status),
    }
    lifetimes = {"root": 365.0, "targets": 90.0, "snapshot": 7.0, "timestamp": 1.0}
    #: The roles whose metadata each command signs, so whose lifetime it takes.
    online = ("targets", "snapshot", "timestamp")
    signs = {"init": tuple(lifetimes), "sign": tuple(lifetimes), "publish": online,
             "timestamp": ("timestamp",)}  # fmt: skip
    parsers: dict[str, argparse.ArgumentParser] = {}
    for name, (help_text, handler) in commands.items():
        parser = release_sub.add_parser(name, help=help_text)
        parser.add_argument("--repo", required=True, help="the repository folder")
        parser.set_defaults(**{f"{role}_days": days for role, days in lifetimes.items()})
        for role in signs.get(name, ()):
            parser.add_argument(
                f"--{role}-days", type=float, default=lifetimes[role],
                help=f"{role} metadata stays valid this long ({lifetimes[role]:g})",
            )  # fmt: skip
        parser.set_defaults(func=_run, release_func=handler)
        parsers[name] = parser
    for name in ("init", "sign"):
        parsers[name].add_argument("--root-key", action="append", required=True,
                                   help="a root key file (init writes it; repeatable)")  # fmt: skip
    parsers["init"].add_argument("--root-threshold", type=int, default=1,
                                 help="root keys needed to sign a root (1)")  # fmt: skip
    publish = parsers["publish"]
    publish.add_argument("wheel", help="the box's wheel")
    publish.add_argument("--channel", default="stable", help="the channel (stable)")
    publish.add_argument("--version", required=True, help="the release's version")
    publish.add_argument("--model", action="append", default=[], help="a model file (repeatable)")
