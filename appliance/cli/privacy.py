"""``footfall privacy-audit``: check what the box keeps and shows, and print its privacy manifest.

The checks and the manifest are ``appliance/box/privacy.py``'s; this module finds the
dashboard's live camera frame route (the box may not import the dashboard) and prints
the audit as a Markdown document (or ``--json``). Exit code: 0 when nothing failed, 1
when a check failed, 2 for a bad config or arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Final

from appliance.box.doctor import DEFAULT_CONFIG
from appliance.box.privacy import UNIT_DIRS, Options, manifest_markdown, run_audit
from appliance.cli.doctor import BOX_CACHE, format_table, positive_number
from appliance.config import BoxConfig, ConfigError

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAIL: Final = 1
EXIT_BAD_INPUT: Final = 2
#: the dashboard's endpoints that serve a live camera frame (one URL per camera each)
LIVE_VIEW_ENDPOINTS: Final = ("editor.frame",)


def live_view_paths(config: BoxConfig) -> list[str]:
    """The live camera frame's path for each camera, built from the dashboard's own routes."""
    from flask import Flask

    from webui import editor

    app = Flask("footfall-privacy-audit")
    app.register_blueprint(editor.bp)
    urls = app.url_map.bind("localhost")
    return [
        urls.build(endpoint, {"camera_id": camera.id})
        for endpoint in LIVE_VIEW_ENDPOINTS
        for camera in config.cameras
    ]


def cmd_privacy_audit(args: argparse.Namespace) -> int:
    """Run the audit; print the manifest and the checks; exit 1 on a finding."""
    if "FOOTFALL_CACHE" not in os.environ and BOX_CACHE.is_dir():
        os.environ["FOOTFALL_CACHE"] = str(BOX_CACHE)
    options = Options(
        config=Path(args.config),
        db=Path(args.db).expanduser() if args.db else None,
        url=args.url,
        live_paths=live_view_paths,
        unit_dirs=tuple(Path(d) for d in args.units_dir) if args.units_dir else UNIT_DIRS,
        timeout_s=args.timeout_s,
    )
    try:
        audit = run_audit(options)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        logger.warning("privacy-audit: %s: invalid config", args.config)
        return EXIT_BAD_INPUT
    for check in audit.checks:
        if check.status == "fail":
            logger.warning("privacy-audit: %s: %s", check.name, check.reason)
    document = manifest_markdown(audit.manifest, audit.checks)
    if args.manifest:
        Path(args.manifest).write_text(document)
    if args.json:
        body = {"ok": audit.ok, "checks": [c.as_dict() for c in audit.checks]}
        print(json.dumps({**body, "manifest": audit.manifest}, indent=1))
    elif args.manifest:
        print(format_table(audit.checks))
    else:
        print(document, end="")
    return EXIT_OK if audit.ok else EXIT_FAIL


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    return text


def add_privacy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``privacy-audit`` to the ``footfall`` parser.

    Args:
        sub: The top-level parser's subparsers (``parser.add_subparsers()``).
    """
    audit = sub.add_parser(
        "privacy-audit",
        help="check that no image, trajectory or camera view escapes; print the privacy manifest",
    )
    audit.add_argument("--config", default=str(DEFAULT_CONFIG), help=f"default {DEFAULT_CONFIG}")
    audit.add_argument("--db", help="SQLite file (default: storage.db_path)")
    audit.add_argument(
        "--url", type=_http_url, help="the dashboard to try (default: web.host:web.port)"
    )
    audit.add_argument(
        "--units-dir",
        action="append",
        help="where the installed units are (repeatable; default: "
        f"{', '.join(str(d) for d in UNIT_DIRS)})",
    )
    audit.add_argument("--manifest", help="write the Markdown manifest here (stdout: the checks)")
    audit.add_argument(
        "--timeout-s", type=positive_number, default=3.0, help="seconds each HTTP request may take"
    )
    audit.add_argument("--json", action="store_true", help="checks and manifest as one object")
    audit.set_defaults(func=cmd_privacy_audit)
