"""``footfall doctor``: the installer's one-command health check of a box.

Prints one row per check (``appliance/box/doctor.py``) as an aligned table, or
``--json``. Exit code: 0 when nothing failed, 1 when a check failed (or, with
``--strict``, warned).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Final

from appliance.box.doctor import (
    DEFAULT_CONFIG,
    DEFAULT_LITESTREAM_CONFIG,
    Check,
    Options,
    run_checks,
)

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAIL: Final = 1
#: footfall.service's FOOTFALL_CACHE (prepared models, `asset:` sources): what the box sees
BOX_CACHE: Final = Path("/var/cache/footfall")


def format_table(checks: list[Check]) -> str:
    """The report as aligned columns: status, check, reason."""
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{c.status.upper():<5} {c.name:<{width}}  {c.reason}" for c in checks)


def cmd_doctor(args: argparse.Namespace) -> int:
    """Run every check and report; exit 1 on a failure (or a warning with ``--strict``)."""
    if "FOOTFALL_CACHE" not in os.environ and BOX_CACHE.is_dir():
        os.environ["FOOTFALL_CACHE"] = str(BOX_CACHE)
    options = Options(
        config=Path(args.config),
        db=Path(args.db).expanduser() if args.db else None,
        litestream_config=Path(args.litestream_config),
        hub=args.hub,
        camera_timeout_s=args.camera_timeout_s,
        hub_timeout_s=args.hub_timeout_s,
        disk_min_mb=args.disk_min_mb,
    )
    checks = run_checks(options)
    bad = {"fail", "warn"} if args.strict else {"fail"}
    failed = [c for c in checks if c.status in bad]
    for check in failed:
        logger.warning("doctor: %s %s: %s", check.status, check.name, check.reason)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [c.as_dict() for c in checks]}, indent=1))
    else:
        print(format_table(checks))
    return EXIT_FAIL if failed else EXIT_OK


def positive_number(text: str) -> float:
    """An argparse ``type=``: a number above 0 (seconds, a timeout), else a clear usage error."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def _mebibytes(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of MiB")
    return int(text)


def add_doctor_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``doctor`` to the ``footfall`` parser.

    Args:
        sub: The top-level parser's subparsers (``parser.add_subparsers()``).
    """
    doc = sub.add_parser(
        "doctor",
        help="check the box: config, cameras, model, GPU, disk, clock, database, hub, "
        "Litestream, units",
    )
    doc.add_argument("--config", default=str(DEFAULT_CONFIG), help=f"default {DEFAULT_CONFIG}")
    doc.add_argument("--db", help="SQLite file (default: storage.db_path)")
    doc.add_argument(
        "--litestream-config",
        default=str(DEFAULT_LITESTREAM_CONFIG),
        help=f"checked when it exists (default {DEFAULT_LITESTREAM_CONFIG})",
    )
    doc.add_argument("--hub", help="hub URL whose /healthz to try (default: the config's hub)")
    doc.add_argument(
        "--camera-timeout-s",
        type=positive_number,
        default=10.0,
        help="seconds each camera may take to deliver a frame",
    )
    doc.add_argument(
        "--hub-timeout-s", type=positive_number, default=3.0, help="seconds the hub may take"
    )
    doc.add_argument(
        "--disk-min-mb",
        type=_mebibytes,
        help="fail below this much free space, warn below twice it "
        "(default: runtime.disk_free_min_mb)",
    )
    doc.add_argument("--json", action="store_true", help="one JSON object")
    doc.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    doc.set_defaults(func=cmd_doctor)
