"""Remote configuration: a store's config versions edited on the hub, and their downlink.

An authorised user (an admin, or a manager of the store's region) saves a new version of
a store's YAML; it is validated with the box's own validation
(:func:`appliance.config.parse_config`, the one import of the box the hub makes: a pure
library), so a mistake answers the same ``FILE:LINE: key: message`` lines the box would
log, and nothing is stored. Each version has a number and its parent: the version the box
ran when the edit started (the box's own edits, the installer's editor, bump the box's
number and are reported in its heartbeats). A new number is one more than any the hub or
the box has used.

:func:`provider` (in :data:`cloud_hub.downlink.PROVIDERS`) offers the newest hub version
as a ``config_version`` item (payload: ``version``, ``parent``, ``yaml``, ``hash``) until
the box's heartbeat says it runs it or rejected it. A version whose parent is not the
version the box runs is a :class:`Conflict`: the store's config page shows both and the
diff, and the box refuses it too (it checks the parent), so neither side's edit is
silently overwritten.
"""

from __future__ import annotations

import difflib
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, func, select

from appliance.config import ConfigError, parse_config
from cloud_hub.heartbeats import latest
from cloud_hub.schema import store_configs
from wire.heartbeat import MAX_CONFIG_CHARS, Heartbeat

logger = logging.getLogger(__name__)

#: The file name the hub's validation messages use (the box's file is ``store.yaml`` too).
CONFIG_FILE: Final = "store.yaml"
#: The downlink kind of a config version.
KIND: Final = "config_version"


class ConfigRefusedError(ValueError):
    """A config version the hub does not store: its validation issues, line-numbered."""

    def __init__(self, issues: list[str]) -> None:
        super().__init__("; ".join(issues))
        self.issues = issues


@dataclass(frozen=True)
class Version:
    """One config version on the hub."""

    version: int
    parent: int | None
    yaml: str
    hash: str
    author: str
    created_ms: int


@dataclass(frozen=True)
class Running:
    """What the box says it runs (its newest heartbeat's ``config``)."""

    version: int
    parent: int | None
    hash: str
    source: str
    yaml: str
    rejected_version: int | None
    rejected_error: str


@dataclass(frozen=True)
class Conflict:
    """A hub version edited from another version than the box runs: both, and the diff."""

    hub: Version
    box: Running
    diff: str


def text_hash(text: str) -> str:
    """The SHA-256 of a config's text (the box hashes its file's bytes the same way)."""
    return hashlib.sha256(text.encode()).hexdigest()


def validate(text: str) -> None:
    """Validate YAML with the box's validation.

    Raises:
        ConfigRefusedError: Its issues as ``store.yaml:LINE: key: message`` lines.
    """
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigRefusedError([f"{CONFIG_FILE}: over {MAX_CONFIG_CHARS} characters"])
    try:
        parse_config(text, CONFIG_FILE)
    except ConfigError as exc:
        raise ConfigRefusedError([str(i) for i in exc.issues]) from exc


def running(beat: Heartbeat | None) -> Running | None:
    """The config a heartbeat reports, or None without one."""
    if beat is None:
        return None
    config = beat["config"]
    rejected = config.get("rejected") or {}
    return Running(
        config["version"], config["parent"], config["hash"], config["source"], config["yaml"],
        rejected.get("version"), rejected.get("error", ""),
    )  # fmt: skip


def box_running(conn: Connection, store_id: str) -> Running | None:
    """What the store's box last said it runs."""
    found = latest(conn, store_id)
    return running(None if found is None else found[1])


def versions(conn: Connection, store_id: str) -> list[Version]:
    """The store's hub versions, newest first."""
    return [
        Version(int(r.version), None if r.parent is None else int(r.parent), r.yaml, r.hash,
                r.author, int(r.created_ms))
        for r in conn.execute(
            select(store_configs).where(store_configs.c.store_id == store_id)
            .order_by(store_configs.c.version.desc())
        )
    ]  # fmt: skip


def save_version(
    conn: Connection, store_id: str, text: str, parent: int | None, author: str, now_ms: int
) -> Version:
    """Validate and store a new version of a store's config.

    Args:
        conn: A connection in a transaction.
        store_id: The store.
        text: The YAML.
        parent: The version the edit started from (the box's, as the editor showed it).
        author: The hub user.
        now_ms: The hub's clock.

    Raises:
        ConfigRefusedError: The YAML is invalid (nothing stored).
    """
    validate(text)
    box = box_running(conn, store_id)
    newest = conn.execute(
        select(func.max(store_configs.c.version)).where(store_configs.c.store_id == store_id)
    ).scalar()
    number = max(int(newest or 0), box.version if box else 0) + 1
    version = Version(number, parent, text, text_hash(text), author, now_ms)
    conn.execute(
        store_configs.insert().values(
            store_id=store_id,
            version=number,
            parent=parent,
            yaml=text,
            hash=version.hash,
            author=author,
            created_ms=now_ms,
        )
    )
    logger.info("config version %d of %s saved by %s (parent %s)", number, store_id, author,
                parent)  # fmt: skip
    return version


def diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A unified diff of two config texts."""
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True), old_name, new_name
        )
    )


def conflict(newest: Version | None, box: Running | None) -> Conflict | None:
    """The conflict between the newest hub version and what the box runs, if any."""
    if newest is None or box is None or box.hash == newest.hash:
        return None
    if newest.parent == box.version or box.version > newest.version:
        return None  # the box has not taken it yet, or moved on past it (reported)
    return Conflict(
        newest, box,
        diff(box.yaml, newest.yaml, f"box version {box.version} ({box.source})",
             f"hub version {newest.version} (from {newest.parent})"),
    )  # fmt: skip


def pending(newest: Version | None, box: Running | None) -> bool:
    """Whether the box should get ``newest``: newer than it runs, not rejected by it."""
    if newest is None or (box is not None and box.hash == newest.hash):
        return False
    if box is None:
        return True
    return newest.version > box.version and box.rejected_version != newest.version


def provider(
    conn: Connection, store_id: str, now_ms: int
) -> Iterator[tuple[str, str, dict[str, object]]]:
    """The ``config_version`` downlink item for a store, while the box has not acted on it."""
    del now_ms
    found = versions(conn, store_id)
    newest = found[0] if found else None
    if newest is not None and pending(newest, box_running(conn, store_id)):
        payload: dict[str, object] = {"version": newest.version, "parent": newest.parent,
                                      "yaml": newest.yaml, "hash": newest.hash}  # fmt: skip
        yield KIND, f"config-{newest.version}", payload
