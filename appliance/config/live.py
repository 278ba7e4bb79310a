"""The store config of a running process, reloaded when its file changes.

``footfall run`` builds one :class:`LiveConfig` and hands it to every part: the
cameras, the scheduler (the minute analytics read :meth:`LiveConfig.current` at
each run), the alert engine and the dashboard. The file is checked at most once
per ``interval_s`` on access (and whenever :meth:`LiveConfig.check` or
:meth:`LiveConfig.reload` is called: the box polls every second, the editor
reloads after a save); it is re-read only when its mtime, size or inode moved,
and parsed only when its bytes differ from the last version seen. A new version
is validated before it is used: a bad one keeps the last good config, is logged
once as a warning (no traceback) and is reported to the status listeners until
the file is good again. Subscribers are told about every good change.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from appliance.config import BoxConfig, ConfigError, ConfigIssue, load_config

logger = logging.getLogger(__name__)

#: How often :meth:`LiveConfig.current` looks at the file, seconds.
CHECK_INTERVAL_S = 1.0

#: Told ``(old, new)`` after a good new version replaced ``old``.
Subscriber = Callable[[BoxConfig, BoxConfig], None]
#: Told the reason the file is not in use (``FILE:LINE: key: message``), or None once it is.
StatusListener = Callable[[str | None], None]

_Stamp = tuple[int, int, int]  # mtime_ns, size, inode


def _stamp(path: Path) -> _Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _digest(path: Path) -> bytes | None:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError:
        return None


class LiveConfig:
    """One store config file, validated, with the last good version always at hand.

    Every method may be called from any thread.

    Args:
        path: the store YAML.
        interval_s: the least time between two looks at the file from :meth:`current`.
        clock: monotonic seconds (a test passes its own).

    Raises:
        ConfigError: the file is invalid at start (there is no last good version).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        interval_s: float = CHECK_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.interval_s = interval_s
        self._clock = clock
        self._lock = threading.RLock()
        self._seen = _stamp(self.path)
        self._good_digest = _digest(self.path)
        self._config = load_config(self.path)
        self._bad_digest: bytes | None = None
        self._issues: list[ConfigIssue] = []
        self._checked = clock()
        self._subscribers: list[Subscriber] = []
        self._listeners: list[StatusListener] = []
        #: bumped by every new version of the file, good or bad (readers compare it)
        self.version = 0

    def current(self) -> BoxConfig:
        """The config in use: the newest valid version of the file (checked now and then)."""
        if self._clock() - self._checked >= self.interval_s:
            self.check()
        return self._config

    @property
    def issues(self) -> list[ConfigIssue]:
        """Why the newest version of the file is not in use (empty: it is)."""
        with self._lock:
            return list(self._issues)

    @property
    def error(self) -> str | None:
        """The first issue of a rejected file, as health shows it (None: the file is in use)."""
        with self._lock:
            if not self._issues:
                return None
            first = self._issues[0]
            more = f" (and {len(self._issues) - 1} more)" if len(self._issues) > 1 else ""
            return f"{self.path.name}:{first.line}: {first.path}: {first.message}{more}"

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(old, new)`` after every good change (in the thread that saw it)."""
        with self._lock:
            self._subscribers.append(callback)

    def report_to(self, listener: StatusListener) -> None:
        """Tell ``listener`` the file's state now and whenever it changes."""
        with self._lock:
            self._listeners.append(listener)
            error = self.error
        listener(error)

    def check(self) -> bool | None:
        """Look at the file; use its new version if it is valid.

        Returns:
            None if the file did not change since it was last read, True if a new
            good version is now in use, False if the new version is invalid (the
            last good one stays).
        """
        with self._lock:
            self._checked = self._clock()
            stamp = _stamp(self.path)
            if stamp is not None and stamp == self._seen:
                return None
            return self._read(stamp)

    def reload(self) -> bool | None:
        """Re-read the file now, whatever its stamp says (after a save of this process).

        Returns:
            As :meth:`check`.
        """
        with self._lock:
            self._checked = self._clock()
            return self._read(_stamp(self.path))

    def _read(self, stamp: _Stamp | None) -> bool | None:
        self._seen = stamp
        digest = _digest(self.path)
        if digest is not None and digest == self._good_digest:
            self._settle(None)  # back to the version in use
            return None
        if digest is not None and digest == self._bad_digest:
            return None
        self.version += 1
        try:
            config = load_config(self.path)
        except ConfigError as exc:
            self._bad_digest = digest
            logger.warning(
                "%s not used, running on the last good version: %s",
                self.path,
                "; ".join(str(i) for i in exc.issues),
            )
            self._settle(exc.issues)
            return False
        old, self._config, self._good_digest, self._bad_digest = self._config, config, digest, None
        logger.info("config %s reloaded", self.path)
        self._settle(None)
        for callback in list(self._subscribers):
            try:
                callback(old, config)
            except Exception:  # one part's bug must not keep the change from the others
                logger.exception("a part could not take the new config of %s", self.path)
        return True

    def _settle(self, issues: list[ConfigIssue] | None) -> None:
        """Record the file's state; tell the listeners when it changed."""
        before = self.error
        self._issues = list(issues or [])
        after = self.error
        if after != before:
            if after is None:
                logger.info("config %s is valid again", self.path)
            for listener in list(self._listeners):
                listener(after)


#: What the box's parts accept: a fixed config, or the process's live one.
ConfigSource = BoxConfig | LiveConfig


def current(source: ConfigSource) -> BoxConfig:
    """The config in use of ``source``."""
    return source.current() if isinstance(source, LiveConfig) else source
