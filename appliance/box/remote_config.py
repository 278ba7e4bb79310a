"""The box's side of remote configuration: apply the hub's config versions, track its own.

:meth:`RemoteConfig.act` takes the hub's pending ``config_version`` items (verified by
the sender and kept in ``sync_downlink``), newest last, and for each:

1. refuses it if its parent is not the version the box runs (a conflict: the box's own
   edit is never overwritten; the hub shows both);
2. validates its YAML with the box's validation (:func:`appliance.config.parse_config`)
   and refuses it with the first ``FILE:LINE: key: message`` if invalid;
3. keeps the file in use as ``<file>.prev``, writes the new one atomically
   (:func:`local_db.durable.atomic_write`) and has the process's live config take it
   (:meth:`appliance.config.live.LiveConfig.reload`); should that refuse it, the
   previous file is put back;
4. records the version in use, or the refusal (so it is acted on once).

:meth:`RemoteConfig.state` is what the heartbeat reports. It first notices an edit made
on the box (the installer's editor, or by hand): a file whose hash is not the recorded
version's is a new box version, one more than the last, whose parent is that version.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from appliance.config import ConfigError, parse_config
from appliance.config.live import LiveConfig
from local_db import connect
from local_db.durable import atomic_write
from local_db.fleet import (
    ConfigRejection,
    ConfigVersion,
    last_rejection,
    pending_config_items,
    record_rejection,
    record_version,
    running_version,
)

logger = logging.getLogger(__name__)

#: The copy of the config file in use before the last hub version was applied.
PREVIOUS_SUFFIX = ".prev"


def file_hash(data: bytes) -> str:
    """The SHA-256 of a config file's bytes, as the hub hashes its text."""
    return hashlib.sha256(data).hexdigest()


class RemoteConfig:
    """One box's config file, its versions, and the hub's versions to apply.

    Args:
        config_path: The store YAML the box runs.
        db_path: The box's database (migrated).
        target: The hub's id of the store (whose downlink items apply).
        live: The process's live config, when the box runs (``footfall run``).
        clock: UTC seconds.
    """

    def __init__(
        self,
        config_path: Path,
        db_path: Path,
        target: str,
        live: LiveConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config_path, self.db_path, self.target = config_path, db_path, target
        self.live, self._clock = live, clock

    def _now_ms(self) -> int:
        return round(self._clock() * 1000)

    def _current(self, conn: sqlite3.Connection) -> tuple[ConfigVersion, bytes]:
        """The version in use and the file's bytes, recording an edit made on the box."""
        data = self.config_path.read_bytes()
        digest = file_hash(data)
        found = running_version(conn)
        if found is None or found.hash != digest:
            version = ConfigVersion(
                0 if found is None else found.version + 1,
                None if found is None else found.version,
                digest, "box", self._now_ms(),
            )  # fmt: skip
            record_version(conn, version)
            if found is not None:
                logger.info("config: edited on the box: version %d (from %d)",
                            version.version, found.version)  # fmt: skip
            found = version
        return found, data

    def state(self) -> dict[str, Any]:
        """The heartbeat's ``config``: the version in use, its text, the last refusal."""
        with closing(connect(self.db_path)) as conn:
            version, data = self._current(conn)
            rejected = last_rejection(conn)
        return {
            "version": version.version, "parent": version.parent, "hash": version.hash,
            "source": version.source, "yaml": data.decode("utf-8", "replace"),
            "rejected": None if rejected is None or rejected.version <= version.version
            else {"version": rejected.version, "error": rejected.error},
        }  # fmt: skip

    def act(self) -> int:
        """Apply or refuse every pending hub version; how many were applied."""
        applied = 0
        with closing(connect(self.db_path)) as conn:
            for item_id, payload in pending_config_items(conn, self.target):
                applied += self._apply(conn, item_id, payload)
        return applied

    def _refuse(self, conn: sqlite3.Connection, item_id: str, version: int, error: str) -> bool:
        logger.warning("config version %d from the hub refused (the box keeps its own): %s",
                       version, error)  # fmt: skip
        record_rejection(conn, ConfigRejection(item_id, version, error, self._now_ms()))
        return False

    def _apply(self, conn: sqlite3.Connection, item_id: str, payload: dict[str, object]) -> bool:
        version, parent, text = payload.get("version"), payload.get("parent"), payload.get("yaml")
        if not isinstance(version, int) or not isinstance(text, str):
            return self._refuse(conn, item_id, -1, "malformed config_version item")
        current, old = self._current(conn)
        new = text.encode()
        if file_hash(new) == current.hash:
            record_version(conn, ConfigVersion(version, current.version, current.hash, "hub",
                                               self._now_ms()), item_id)  # fmt: skip
            return True
        if parent != current.version:
            return self._refuse(
                conn, item_id, version,
                f"conflict: version {version} was edited from version {parent}, but this box "
                f"runs version {current.version} ({'edited on the box' if current.source == 'box' else 'from the hub'})",  # noqa: E501
            )  # fmt: skip
        try:
            parse_config(text, self.config_path.name, folder=self.config_path.parent)
        except ConfigError as exc:
            return self._refuse(conn, item_id, version, str(exc.issues[0]))
        path = self.config_path
        atomic_write(path.with_name(path.name + PREVIOUS_SUFFIX), old)
        atomic_write(path, new)
        if self.live is not None and self.live.reload() is False:
            error = self.live.error or "the live config refused it"
            atomic_write(path, old)
            self.live.reload()
            return self._refuse(conn, item_id, version, error)
        record_version(conn, ConfigVersion(version, current.version, file_hash(new), "hub",
                                           self._now_ms()), item_id)  # fmt: skip
        logger.info("config version %d from the hub applied (previous kept in %s%s)", version,
                    path.name, PREVIOUS_SUFFIX)  # fmt: skip
        return True
