"""The box's setup state: whether the setup wizard is still open, and its one-time token.

``footfall firstboot`` (:mod:`appliance.box.firstboot`) writes ``setup.json`` beside the
store config (``/etc/footfall`` on a box) with the box's hostname and the SHA-256 of the
wizard's one-time token; the token itself is printed on the console and kept only in
``setup-token`` (mode 0600, root's), so that a reboot can print it again. The dashboard's
wizard (``webui.wizard``) is served while the state is ``pending`` and only to a request
carrying that token; finishing it marks the state ``done`` and deletes the token file.
A box without ``setup.json`` (a developer's checkout, ``make demo``) has no wizard.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from local_db.durable import atomic_write

logger = logging.getLogger(__name__)

SETUP_FILE = "setup.json"
TOKEN_FILE = "setup-token"
_STATES = ("pending", "done")


class SetupStateError(ValueError):
    """``setup.json`` is unreadable or malformed; the message names the file."""


@dataclass(frozen=True)
class SetupState:
    """What ``setup.json`` holds.

    Attributes:
        state: ``pending`` until the wizard has written the store's config, then ``done``.
        hostname: the name first boot gave the box.
        token_sha256: the hex SHA-256 of the wizard's one-time token ("" once done).
        created_utc: when first boot made it (ISO 8601).
        done_utc: when the wizard finished ("" while pending).
    """

    state: Literal["pending", "done"]
    hostname: str
    token_sha256: str
    created_utc: str
    done_utc: str = ""

    @property
    def pending(self) -> bool:
        """Whether the wizard is still open."""
        return self.state == "pending"

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is the wizard's one-time token (constant-time compare)."""
        if not self.pending or not self.token_sha256:
            return False
        return hmac.compare_digest(token_hash(token.strip()), self.token_sha256)


def token_hash(token: str) -> str:
    """The hex SHA-256 stored for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def setup_path(config_path: str | Path) -> Path:
    """Where the setup state of the store config ``config_path`` lives (beside it)."""
    return Path(config_path).parent / SETUP_FILE


def read_state(path: Path) -> SetupState | None:
    """The setup state in ``path``, or None if there is none.

    Raises:
        SetupStateError: the file exists but cannot be read or is not a setup state.
    """
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SetupStateError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
        state = SetupState(**data)
    except (ValueError, TypeError) as exc:
        raise SetupStateError(f"{path}: not a setup state ({exc})") from exc
    if state.state not in _STATES:
        raise SetupStateError(f"{path}: state {state.state!r} is not one of {', '.join(_STATES)}")
    return state


def state_bytes(state: SetupState) -> bytes:
    """``state`` as the JSON ``setup.json`` holds."""
    return (json.dumps(asdict(state), indent=2) + "\n").encode()


def write_state(path: Path, state: SetupState) -> None:
    """Replace ``path`` with ``state`` atomically (a new file is made with mode 0600).

    Raises:
        OSError: the folder is not writable.
    """
    atomic_write(path, state_bytes(state), mode=0o600)


def mark_done(path: Path, now_utc: str) -> SetupState:
    """Close the wizard: the state becomes ``done``, the token's hash and file are deleted.

    Raises:
        SetupStateError: there is no pending setup state in ``path``.
        OSError: the folder is not writable.
    """
    state = read_state(path)
    if state is None or not state.pending:
        raise SetupStateError(f"{path}: no pending setup")
    done = replace(state, state="done", token_sha256="", done_utc=now_utc)
    write_state(path, done)
    (path.parent / TOKEN_FILE).unlink(missing_ok=True)
    logger.info("setup done: the wizard is closed (%s)", path)
    return done
