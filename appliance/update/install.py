"""Install a verified release beside the running one, switch, gate, and roll back by itself.

The releases folder holds ``<version>/`` (``pip install --no-deps --target``), ``current``
(a symlink to the running version, replaced by a rename: never missing, never half-made),
``.staging/`` (scratch, emptied at every start), the TUF client's state (``tuf/``) and the
journal (:mod:`appliance.update.journal`). Each step is journalled before it starts, so
:func:`recover`, which every ``footfall update`` command runs first, finishes or undoes
whatever a SIGKILL interrupted: a half-staged release is dropped, a switch or a gate is
undone to the version that worked, an interrupted rollback is completed.

``FOOTFALL_UPDATE_STOP_AT=<step>`` (tests only) makes the updater stop and wait at a
named step (:data:`STEPS`) so that a test can kill it there.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from packaging.version import InvalidVersion, Version

from appliance.update.fetch import FetchedRelease, UpdateRefusedError
from appliance.update.gate import health_gate
from appliance.update.journal import Journal, LastOutcome, read_journal, write_journal
from local_db.durable import fsync_dir

logger = logging.getLogger(__name__)

#: The steps ``FOOTFALL_UPDATE_STOP_AT`` can stop at, in order.
STEPS: Final = ("downloaded", "unpacked", "placed", "switched", "gating", "rolling_back")
STOP_ENV: Final = "FOOTFALL_UPDATE_STOP_AT"
CURRENT: Final = "current"
STAGING: Final = ".staging"


@dataclass(frozen=True)
class Settings:
    """Where and how this box installs releases.

    Attributes:
        releases: The releases folder.
        health_url: The box's ``/healthz``.
        restart: The command that restarts the box on ``current`` (its service).
        gate_s: How long a new version has to pass the health gate.
        poll_s: Between health probes.
    """

    releases: Path
    health_url: str
    restart: tuple[str, ...] = ("systemctl", "restart", "footfall.service")
    gate_s: float = 300.0
    poll_s: float = 2.0


@dataclass(frozen=True)
class Outcome:
    """What an update did: ``installed``, ``rolled_back``, ``refused``, ``failed``, ``current``."""

    outcome: str
    version: str
    reason: str
    running: str | None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _checkpoint(step: str) -> None:
    """Stop here for good if the test hook names this step (the test then kills us)."""
    if os.environ.get(STOP_ENV) == step:
        print(f"update: stopped at {step}", file=sys.stderr, flush=True)
        while True:
            signal.pause()


def running_version(releases: Path) -> str | None:
    """The version ``current`` points at (None: no release installed yet)."""
    try:
        return os.readlink(releases / CURRENT)
    except OSError:
        return None


def _point_current(releases: Path, version: str) -> None:
    """Point ``current`` at ``version``: a new symlink renamed over the old one."""
    tmp = releases / f".{CURRENT}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(version, tmp)
    os.replace(tmp, releases / CURRENT)
    fsync_dir(releases)
    logger.info("current → %s", version)


def _restart(settings: Settings) -> str | None:
    """Restart the box on ``current``; None, or why it could not be restarted."""
    try:
        done = subprocess.run(
            settings.restart, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"restart {' '.join(settings.restart)!r} failed: {exc}"
    if done.returncode != 0:
        return f"restart exited {done.returncode}: {done.stderr.strip()[-300:]}"
    return None


def _pip_install(wheel: Path, into: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-compile", "--disable-pip-version-check", "--target", str(into), str(wheel)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise UpdateRefusedError(f"{wheel.name}: pip install failed: {done.stderr.strip()[-500:]}")


def staging_dir(releases: Path) -> Path:
    """The scratch folder (emptied at every start)."""
    return releases / STAGING


def _check_version(version: str, running: str | None, allow_downgrade: bool) -> bool:
    """True if ``version`` should be installed; raises if it is a refused downgrade."""
    if running is None:
        return True
    try:
        new, old = Version(version), Version(running)
    except InvalidVersion as exc:
        raise UpdateRefusedError(f"version {version!r} or {running!r}: {exc}") from exc
    if new < old and not allow_downgrade:
        raise UpdateRefusedError(
            f"{version} is older than the running {running}: a downgrade is refused "
            "(footfall update apply --allow-downgrade to force it)"
        )
    return new != old


def apply_release(
    settings: Settings,
    fetch: Callable[[Path], FetchedRelease],
    version_hint: str | None = None,
    rollout_id: int = 0,
    allow_downgrade: bool = False,
) -> Outcome:
    """Fetch, install, switch to and gate a release; roll back by itself if the gate fails.

    Args:
        settings: Where and how.
        fetch: Downloads the verified release into the folder it is given.
        version_hint: The version expected (checked before downloading when known).
        rollout_id: The hub's rollout this belongs to (reported with the outcome).
        allow_downgrade: Install even if older than the running version.

    Returns:
        The outcome (also in the journal's ``last``).
    """
    releases = settings.releases
    journal = recover(settings)
    running = journal.current
    try:
        if version_hint is not None and not _check_version(version_hint, running, allow_downgrade):
            return Outcome("current", version_hint, "already running", running)
        staging = staging_dir(releases)
        release = fetch(staging / "download")
        _checkpoint("downloaded")
        if not _check_version(release.version, running, allow_downgrade):
            return Outcome("current", release.version, "already running", running)
        unpacked = staging / release.version
        _pip_install(release.wheel, unpacked)
        if release.models:
            (unpacked / "models").mkdir()
            for model in release.models:
                shutil.copy2(model, unpacked / "models" / model.name)
        _checkpoint("unpacked")
    except UpdateRefusedError as exc:
        return _finish(settings, journal, "refused", version_hint or "?", str(exc), rollout_id)
    version = release.version
    journal = journal.but(phase="placing", target=version, rollout_id=rollout_id)
    write_journal(releases, journal)
    dest = releases / version
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(unpacked, dest)
    fsync_dir(releases)
    _checkpoint("placed")
    return _switch_and_gate(settings, journal)


def _switch_and_gate(settings: Settings, journal: Journal) -> Outcome:
    releases, version = settings.releases, str(journal.target)
    journal = journal.but(phase="switching")
    write_journal(releases, journal)
    _point_current(releases, version)
    _checkpoint("switched")
    journal = journal.but(phase="gating")
    write_journal(releases, journal)
    reason = _restart(settings)
    _checkpoint("gating")
    if reason is None:
        reason = health_gate(settings.health_url, version, settings.gate_s, settings.poll_s)
    if reason is None:
        installed = journal.but(phase="idle", current=version, previous=journal.current,
                                target=None)  # fmt: skip
        return _finish(settings, installed, "installed", version, "", journal.rollout_id)
    return _roll_back(settings, journal, reason)


def _roll_back(settings: Settings, journal: Journal, reason: str) -> Outcome:
    """Put ``current`` back to the version that worked and restart it."""
    releases, version = settings.releases, str(journal.target)
    journal = journal.but(phase="rolling_back")
    write_journal(releases, journal)
    _checkpoint("rolling_back")
    if journal.current is None:
        (releases / CURRENT).unlink(missing_ok=True)
        failed = journal.but(phase="idle", target=None)
        problem = f"{reason}; no earlier version to roll back to"
        return _finish(settings, failed, "failed", version, problem, journal.rollout_id)
    _point_current(releases, journal.current)
    restart_problem = _restart(settings)
    if restart_problem:
        logger.error("rolled back to %s but %s", journal.current, restart_problem)
    logger.warning("update to %s rolled back to %s: %s", version, journal.current, reason)
    back = journal.but(phase="idle", target=None)
    return _finish(settings, back, "rolled_back", version, reason, journal.rollout_id)


def _finish(
    settings: Settings, journal: Journal, outcome: str, version: str, reason: str, rollout_id: int
) -> Outcome:
    last = LastOutcome(outcome, version, reason, _now_ms(), rollout_id)
    write_journal(settings.releases, journal.but(last=last, reported=False, rollout_id=0))
    shutil.rmtree(staging_dir(settings.releases), ignore_errors=True)
    if outcome == "installed":
        _prune(settings.releases, keep={journal.current, journal.previous})
    return Outcome(outcome, version, reason, journal.current)


def _prune(releases: Path, keep: set[str | None]) -> None:
    """Remove installed versions other than ``keep`` (the running one and the one before)."""
    for child in releases.iterdir():
        versioned = child.is_dir() and not child.is_symlink() and child.name[:1].isdigit()
        if versioned and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)


def recover(settings: Settings) -> Journal:
    """Finish or undo whatever an interrupted update left; the journal, idle.

    Args:
        settings: Where and how.

    Returns:
        The journal afterwards (``phase`` idle, ``current`` the working version).
    """
    releases = settings.releases
    releases.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(staging_dir(releases), ignore_errors=True)
    journal = read_journal(releases)
    if journal.phase == "idle":
        if journal.current is not None and running_version(releases) != journal.current:
            _point_current(releases, journal.current)
        return journal
    target = str(journal.target)
    logger.warning("update to %s was interrupted while %s: recovering", target, journal.phase)
    if journal.phase == "placing":
        if target != journal.current:
            shutil.rmtree(releases / target, ignore_errors=True)
        reason = "interrupted while placing the release; nothing changed"
        idle = journal.but(phase="idle", target=None)
        _finish(settings, idle, "failed", target, reason, journal.rollout_id)
    else:
        _roll_back(settings, journal, f"interrupted while {journal.phase.replace('_', ' ')}")
    return read_journal(releases)


def installed_versions(releases: Path) -> Sequence[str]:
    """The versions installed in the releases folder, oldest name first."""
    if not releases.is_dir():
        return []
    return sorted(
        c.name for c in releases.iterdir()
        if c.is_dir() and not c.is_symlink() and c.name[:1].isdigit()
    )  # fmt: skip
