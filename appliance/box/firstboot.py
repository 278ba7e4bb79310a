"""First boot of a flashed box (``footfall firstboot``, ``footfall-firstboot.service``).

On the first run it makes what is this box's own: a hostname (``footfall-`` and six
random hex digits), the setup wizard's one-time token (``setup-token``, 0600, and its
hash in ``setup.json``: :mod:`appliance.config.setup`) and a first store config that
``footfall run`` accepts (one placeholder camera, ``usb:0``, whose calibration the wizard
and the editor replace). The image has no password and no token: each box makes its own.

Every later run changes nothing: an existing config, state or token is never
overwritten; while the wizard is open the token is returned again (the unit prints it
on the console at every boot until setup is done). ``new_token=True`` replaces a lost
token while the wizard is still open.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.config import parse_config
from appliance.config.setup import (
    TOKEN_FILE,
    SetupState,
    read_state,
    setup_path,
    state_bytes,
    token_hash,
)
from local_db.durable import atomic_write

logger = logging.getLogger(__name__)

CONFIG_NAME = "store.yaml"
HOSTNAME_PREFIX = "footfall-"

_FIRST_CONFIG = """\
# footfall: the first config of this box, written by `footfall firstboot` on {created}.
# The setup wizard (the dashboard's /wizard, with the one-time token printed on the
# console) replaces the store, the time zone, the hub and the cameras; the installer's
# editor then calibrates each camera on the floor plan. Until then the one camera below
# is a placeholder (the first USB camera, with a rough calibration).
config_version: 1
store:
  id: {store_id}
  name: New store ({hostname})
  timezone: {timezone}
cameras:
  - id: camera-1
    source: usb:0
    fps: 10
    resolution: [1280, 720]
    calibration:
      - {{image: [0, 0], floor: [0.0, 0.0]}}
      - {{image: [1280, 0], floor: [10.0, 0.0]}}
      - {{image: [0, 720], floor: [0.0, 10.0]}}
      - {{image: [1280, 720], floor: [10.0, 10.0]}}
floor_plan:
  width_m: 10
  depth_m: 10
"""


@dataclass(frozen=True)
class FirstBoot:
    """What a first-boot run found or made.

    Attributes:
        hostname: the box's name.
        config: the store config.
        token: the wizard's one-time token while setup is pending and it is known,
            else None (setup done, or the token file lost: see ``new_token``).
        created: what this run made, in order (empty on a later boot).
        pending: whether the wizard is still open.
    """

    hostname: str
    config: Path
    token: str | None
    created: tuple[str, ...]
    pending: bool


def _system_timezone(localtime: Path) -> str:
    """The IANA name /etc/localtime points to, or UTC."""
    try:
        target = os.readlink(localtime)
    except OSError:
        return "UTC"
    name = target.partition("zoneinfo/")[2]
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return name


def first_config(hostname: str, timezone: str, created: str) -> str:
    """The first store config's text (valid: ``footfall config check`` accepts it).

    Raises:
        appliance.config.ConfigError: ``hostname`` or ``timezone`` makes it invalid.
    """
    text = _FIRST_CONFIG.format(
        created=created, store_id=hostname, hostname=hostname, timezone=timezone
    )
    parse_config(text, CONFIG_NAME)
    return text


def _write_private(path: Path, data: bytes, owner: tuple[int, int] | None) -> None:
    """Write ``path`` atomically, created with mode 0600, then hand it to ``owner`` (uid, gid)."""
    atomic_write(path, data, mode=0o600)
    if owner is not None:
        os.chown(path, *owner)


def first_boot(
    etc_dir: Path,
    hostname_file: Path,
    *,
    owner: tuple[int, int] | None = None,
    localtime: Path = Path("/etc/localtime"),
    new_token: bool = False,
    now: datetime | None = None,
) -> FirstBoot:
    """Make the box's own hostname, wizard token and first config, once.

    Args:
        etc_dir: the config folder (``/etc/footfall``).
        hostname_file: ``/etc/hostname`` (written once, on the run that names the box).
        owner: uid and gid of the box's user, given the config and the setup state
            (the token file stays the caller's: root on a box).
        localtime: the system's time-zone link, the first config's default time zone.
        new_token: replace the wizard's token (a lost one) while setup is pending.
        now: the time stamped into what is made (default: now).

    Returns:
        What was found or made; ``token`` is the one to print.

    Raises:
        appliance.config.setup.SetupStateError: ``setup.json`` exists but is malformed
            (it is left alone for a person to look at).
        ValueError: ``new_token`` after setup is done.
        OSError: a folder is not writable.
    """
    stamp = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    created: list[str] = []
    etc_dir.mkdir(parents=True, exist_ok=True)
    state_file = setup_path(etc_dir / CONFIG_NAME)
    token_file = etc_dir / TOKEN_FILE
    state = read_state(state_file)
    token: str | None = None
    if state is None or new_token:
        if state is not None and not state.pending:
            raise ValueError(f"{state_file}: setup is done; a new wizard token is not needed")
        token = secrets.token_urlsafe(18)
        # the token file first: a run cut short before the state is written starts afresh
        _write_private(token_file, (token + "\n").encode(), None)
        created.append("wizard token")
        if state is None:
            hostname = HOSTNAME_PREFIX + secrets.token_hex(3)
            state = SetupState("pending", hostname, token_hash(token), stamp)
            atomic_write(hostname_file, (hostname + "\n").encode())
            created.append(f"hostname {hostname}")
        else:
            state = replace(state, token_sha256=token_hash(token))
        _write_private(state_file, state_bytes(state), owner)
        created.append("setup state")
    elif state.pending:
        token = _read_token(token_file, state)
    config = etc_dir / CONFIG_NAME
    if not config.exists():
        text = first_config(state.hostname, _system_timezone(localtime), stamp)
        atomic_write(config, text.encode(), mode=0o640)
        if owner is not None:
            os.chown(config, *owner)
        created.append(f"config {config}")
    for what in created:
        logger.info("first boot made the %s", what)
    return FirstBoot(state.hostname, config, token, tuple(created), state.pending)


def _read_token(token_file: Path, state: SetupState) -> str | None:
    """The kept token if it still matches the state's hash, else None (logged)."""
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        logger.warning(
            "%s is missing: the wizard's token is lost (footfall firstboot --new-token)",
            token_file,
        )
        return None
    if not state.accepts(token):
        logger.warning("%s does not match the setup state: not printed", token_file)
        return None
    return token


def wizard_lines(result: FirstBoot, port: int, addresses: Iterable[str] = ()) -> list[str]:
    """What the console shows: where the wizard is and its token, or that setup is done."""
    if not result.pending:
        return [f"footfall {result.hostname}: setup is done; the dashboard is on port {port}"]
    where = [f"http://{result.hostname}.local:{port}/wizard"]
    where += [f"http://{address}:{port}/wizard" for address in addresses]
    lines = [f"footfall {result.hostname}: open the setup wizard at " + " or ".join(where)]
    if result.token is None:
        lines.append("the wizard's token is lost: run `footfall firstboot --new-token` as root")
    else:
        lines.append(f"setup token (one use, opens the wizard): {result.token}")
    return lines
