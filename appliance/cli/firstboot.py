"""``footfall firstboot``: a flashed box's first boot (``footfall-firstboot.service``).

Runs as root at every boot before ``footfall.service``; only the first run makes
anything (:mod:`appliance.box.firstboot`). It prints where the setup wizard is and its
one-time token while setup is pending (the unit sends stdout to the console and the
journal). Exit code: 0 done, 1 a folder not writable, 2 a bad argument or a malformed
``setup.json``.
"""

from __future__ import annotations

import argparse
import logging
import pwd
import socket
import sys
from pathlib import Path
from typing import Final

from appliance.box.firstboot import CONFIG_NAME, first_boot, wizard_lines
from appliance.config import ConfigError, load_config
from appliance.config.setup import SetupStateError

logger = logging.getLogger(__name__)

EXIT_OK: Final = 0
EXIT_FAIL: Final = 1
EXIT_BAD_INPUT: Final = 2
BOX_USER: Final = "footfall"


def _owner(name: str) -> tuple[int, int] | None:
    """The uid and gid of the box's user, or None where it does not exist (a dev machine)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        logger.warning("no user %s: the files made stay the caller's", name)
        return None
    return entry.pw_uid, entry.pw_gid


def _addresses() -> list[str]:
    """This box's IPv4 addresses as its hostname resolves (empty when it cannot say)."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos} - {"127.0.0.1", "127.0.1.1"})


def cmd_firstboot(args: argparse.Namespace) -> int:
    """Make the box's own hostname, wizard token and first config once; print the wizard."""
    etc = Path(args.etc)
    try:
        result = first_boot(
            etc, Path(args.hostname_file), owner=_owner(args.user), new_token=args.new_token
        )
        port = load_config(result.config).web.port
    except ConfigError as exc:  # a config someone wrote by hand before the first boot
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        logger.warning("firstboot: %s: invalid config", etc / CONFIG_NAME)
        return EXIT_BAD_INPUT
    except (SetupStateError, ValueError) as exc:
        logger.warning("firstboot: %s", exc)
        print(exc, file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        logger.warning("firstboot: %s: %s", exc.filename or etc, exc.strerror)
        print(f"{exc.filename or etc}: {exc.strerror}", file=sys.stderr)
        return EXIT_FAIL
    for line in wizard_lines(result, port, _addresses()):
        print(line, flush=True)
    return EXIT_OK


def add_firstboot_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``firstboot`` to the ``footfall`` parser.

    Args:
        sub: The top-level parser's subparsers (``parser.add_subparsers()``).
    """
    fb = sub.add_parser(
        "firstboot",
        help="a new box's hostname, setup token and first config (once); print the wizard",
    )
    fb.add_argument(
        "--etc", default="/etc/footfall", help=f"the config folder ({CONFIG_NAME} and setup.json)"
    )
    fb.add_argument("--hostname-file", default="/etc/hostname", help="written on the first run")
    fb.add_argument("--user", default=BOX_USER, help="the box's user, owner of what is made")
    fb.add_argument(
        "--new-token",
        action="store_true",
        help="replace a lost setup token (only while the wizard is open)",
    )
    fb.set_defaults(func=cmd_firstboot)
