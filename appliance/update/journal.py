"""The updater's journal: one JSON file, replaced atomically before every step.

Why a file and not a box.db table: the journal must be readable by whichever version
runs after a crash, before it migrates anything, and a rollback may put back a version
whose schema is older; the step it records must not wait on the database's one writer
thread; and ``local_db.durable.atomic_write`` (temp file, fsync, rename, fsync of the
folder) makes every write all-or-nothing under SIGKILL or power loss. ``phase`` says
what was being done: ``idle`` (nothing; ``current`` runs), ``placing`` (a new version
being moved into the releases folder), ``switching`` (``current`` being pointed at
``target``), ``gating`` (``target`` runs, on trial), ``rolling_back`` (``current`` being
put back). :func:`appliance.update.install.recover` finishes or undoes each.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Final, Literal

from local_db.durable import atomic_write

logger = logging.getLogger(__name__)

Phase = Literal["idle", "placing", "switching", "gating", "rolling_back"]
PHASES: Final = ("idle", "placing", "switching", "gating", "rolling_back")
FILE_NAME: Final = "update-state.json"


@dataclass(frozen=True)
class LastOutcome:
    """How the last update ended.

    Attributes:
        outcome: ``installed``, ``rolled_back``, ``refused`` or ``failed``.
        version: The version it tried.
        reason: Why (empty when installed).
        at_ms: When (Unix ms).
        rollout_id: The hub's rollout it belonged to (0: none).
    """

    outcome: str
    version: str
    reason: str
    at_ms: int
    rollout_id: int = 0


@dataclass(frozen=True)
class Journal:
    """The updater's state (see the module's docstring).

    Attributes:
        phase: The step under way.
        current: The version that works (``current`` points at it when idle).
        target: The version being installed.
        previous: The version before ``current``.
        rollout_id: The rollout the step belongs to.
        last: The last update's outcome.
        reported: Whether the hub has the last outcome.
    """

    phase: Phase = "idle"
    current: str | None = None
    target: str | None = None
    previous: str | None = None
    rollout_id: int = 0
    last: LastOutcome | None = None
    reported: bool = True

    def but(self, **changes: object) -> Journal:
        """A copy with ``changes``."""
        return replace(self, **changes)  # type: ignore[arg-type]


def journal_path(releases: Path) -> Path:
    """The journal of a releases folder."""
    return releases / FILE_NAME


def read_journal(releases: Path) -> Journal:
    """The journal, or a fresh one if there is none.

    Raises:
        ValueError: The file is not a journal (named, with the reason).
    """
    path = journal_path(releases)
    try:
        raw = json.loads(path.read_bytes())
    except FileNotFoundError:
        return Journal()
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable update journal: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("phase") not in PHASES:
        raise ValueError(f"{path}: not an update journal (phase {raw.get('phase')!r})")
    last = raw.pop("last", None)
    try:
        return Journal(**raw, last=LastOutcome(**last) if last else None)
    except TypeError as exc:
        raise ValueError(f"{path}: not an update journal: {exc}") from exc


def write_journal(releases: Path, journal: Journal) -> None:
    """Replace the journal atomically (durable before the step it announces starts)."""
    data = json.dumps(asdict(journal), indent=2, sort_keys=True).encode()
    atomic_write(journal_path(releases), data, 0o644)
    logger.debug("update journal: %s %s → %s", journal.phase, journal.current, journal.target)
