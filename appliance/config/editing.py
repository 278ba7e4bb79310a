"""Editing a store's YAML in place: comments, key order and layout survive the edit.

The installer's editor (``webui.editor``) and, later, the hub's config push change
a few parts of the file (floor plan, zones, lines, a camera's calibration). They
work on the ruamel round-trip document, so everything they do not touch stays as
the person who wrote the file left it. :func:`save_edit` validates the edited text
with :func:`appliance.config.parse_config` before anything is written, backs up
the previous file with a UTC timestamp, and replaces the file atomically (temp
file, fsync, ``os.replace``, fsync of the folder).

Example:
    >>> def move_door(root):  # doctest: +SKIP
    ...     set_lines(root, [{"id": "door", "a": [0, 5], "b": [2, 5], "in_side": "right"}])
    >>> save_edit("store.yaml", move_door)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from appliance.config import BoxConfig, ConfigError, ConfigIssue, parse_config
from appliance.config.yaml_loader import check_budget, read_yaml_text
from local_db.durable import atomic_write

logger = logging.getLogger(__name__)

#: Backups of one config file kept next to it (older ones are removed).
KEEP_BACKUPS = 20
_DECIMALS = 3  # millimetres / thousandths of a pixel
_LOCK = threading.Lock()  # one save at a time in this process


class ConfigEditError(ValueError):
    """An edit names something the config does not have (e.g. an unknown camera)."""


def _round_trip() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never wrap a long flow list (a polygon stays on its line)
    return yaml


@dataclass
class ConfigDocument:
    """A store YAML loaded for editing.

    Attributes:
        root: the round-trip mapping; edit it with the ``set_*`` functions.
        mapping_indent: spaces per mapping level, as the file has them.
        sequence_indent: spaces from a sequence's parent to its items' content.
        sequence_offset: spaces from a sequence's parent to the ``-``.
    """

    root: CommentedMap
    mapping_indent: int = 2
    sequence_indent: int = 4
    sequence_offset: int = 2

    def text(self) -> str:
        """The document as YAML text."""
        yaml = _round_trip()
        yaml.indent(
            mapping=self.mapping_indent, sequence=self.sequence_indent, offset=self.sequence_offset
        )
        out = io.StringIO()
        yaml.dump(self.root, out)
        return out.getvalue()


@dataclass(frozen=True, slots=True)
class SavedConfig:
    """The result of a save.

    Attributes:
        path: the config file written.
        backup: the copy of the previous file (None if there was none).
        config: the validated config now on disk.
    """

    path: Path
    backup: Path | None
    config: BoxConfig


def read_document(text: str, file: str = "<config>") -> ConfigDocument:
    """Load YAML text for editing, keeping its indentation style.

    Raises:
        ConfigError: the text is not YAML, not a mapping, or over the YAML budget (too
            large, too deeply nested, an alias bomb).
    """
    check_budget(text, file, ConfigError)
    try:
        root, sequence_indent, offset = load_yaml_guess_indent(text, yaml=_round_trip())
    except YAMLError as exc:
        raise ConfigError([ConfigIssue(file, 1, "(yaml)", str(exc))]) from exc
    if not isinstance(root, CommentedMap):
        raise ConfigError([ConfigIssue(file, 1, "(top)", "the file must be a YAML mapping")])
    offset = offset or 0
    return ConfigDocument(root, max(offset, 2), sequence_indent or 2, offset)


def _value(value: Any) -> Any:
    """A JSON-like value as YAML: lists in flow style, floats rounded, the rest as is.

    Nothing is checked here: whatever the value is, the validation of the whole file
    names the key when it is wrong.
    """
    if isinstance(value, float):
        return round(value, _DECIMALS)
    if isinstance(value, Sequence) and not isinstance(value, str):
        seq = CommentedSeq(_value(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    if isinstance(value, Mapping):
        flow = CommentedMap((str(k), _value(v)) for k, v in value.items())
        flow.fa.set_flow_style()
        return flow
    return value


def _update(target: CommentedMap, values: Mapping[str, Any]) -> CommentedMap:
    """Make ``target`` hold exactly ``values``, keeping its key order and comments."""
    for key in [k for k in target if k not in values]:
        del target[key]
    for key, value in values.items():
        target[key] = _value(value)
    return target


def _kept(by_id: dict[str, CommentedMap], item: Mapping[str, Any]) -> CommentedMap:
    """The old map with ``item``'s id (taken out of ``by_id``), or a new one.

    An id that is not a string matches nothing (validation then names it).
    """
    item_id = item.get("id")
    return by_id.pop(item_id, CommentedMap()) if isinstance(item_id, str) else CommentedMap()


def _set_items(root: CommentedMap, key: str, items: Sequence[Mapping[str, Any]]) -> None:
    """Replace the list ``root[key]`` of ``{id: …}`` maps; a kept id keeps its map's comments."""
    old = root.get(key)
    by_id = {
        item["id"]: item
        for item in (old if isinstance(old, list) else [])
        if isinstance(item, CommentedMap) and isinstance(item.get("id"), str)
    }
    seq = CommentedSeq(_update(_kept(by_id, item), item) for item in items)
    if isinstance(old, CommentedSeq):
        seq.ca.comment = old.ca.comment
    root[key] = seq


def set_zones(root: CommentedMap, zones: Sequence[Mapping[str, Any]]) -> None:
    """Replace the zones (``id``, ``kind``, ``polygon``), in the given order.

    A zone whose id was already in the file keeps its comments and key order.
    """
    _set_items(root, "zones", zones)


def set_lines(root: CommentedMap, lines: Sequence[Mapping[str, Any]]) -> None:
    """Replace the counting lines (``id``, ``a``, ``b``, ``in_side``), in the given order."""
    _set_items(root, "lines", lines)


def set_calibration(
    root: CommentedMap, camera_id: str, pairs: Sequence[tuple[Sequence[float], Sequence[float]]]
) -> None:
    """Replace one camera's calibration with ``(image [u, v], floor [x, y])`` pairs.

    Raises:
        ConfigEditError: no camera has this id.
    """
    cameras = root.get("cameras")
    camera = next(
        (c for c in cameras or [] if isinstance(c, CommentedMap) and c.get("id") == camera_id),
        None,
    )
    if camera is None:
        raise ConfigEditError(f"no camera {camera_id!r} in the config")
    camera["calibration"] = CommentedSeq(
        _value({"image": image, "floor": floor}) for image, floor in pairs
    )


def set_floor_plan(
    root: CommentedMap,
    *,
    width_m: float | None = None,
    depth_m: float | None = None,
    image: str | None = None,
) -> None:
    """Set the floor plan's size and/or image file (arguments left None stay as they are)."""
    plan = root.get("floor_plan")
    if not isinstance(plan, CommentedMap):
        plan = CommentedMap()
        root["floor_plan"] = plan
    for key, value in (("width_m", width_m), ("depth_m", depth_m), ("image", image)):
        if value is not None:
            plan[key] = _value(value)


def scaled_plan(
    width_m: float,
    depth_m: float,
    a: Sequence[float],
    b: Sequence[float],
    distance_m: float,
) -> tuple[float, float]:
    """The plan size that makes the points ``a`` and ``b`` ``distance_m`` apart.

    ``a`` and ``b`` are two points clicked on the plan as it is now drawn
    (``width_m`` x ``depth_m``); the drawing keeps its aspect ratio, so both sides
    scale by the same factor.

    Raises:
        ValueError: the points coincide or the distance is not positive.
    """
    drawn = float(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5)
    if drawn <= 0:
        raise ValueError("the two scale points are the same point")
    if not distance_m > 0:
        raise ValueError(f"the known distance must be positive, got {distance_m}")
    factor = distance_m / drawn
    return round(width_m * factor, _DECIMALS), round(depth_m * factor, _DECIMALS)


def _backup(path: Path, now: datetime, keep: int) -> Path | None:
    """Copy ``path`` to ``NAME.YYYYmmddTHHMMSS.ffffffZ.bak`` and prune the oldest copies."""
    if not path.exists():
        return None
    backup = path.with_name(f"{path.name}.{now.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}.bak")
    atomic_write(backup, path.read_bytes())
    for old in sorted(path.parent.glob(f"{path.name}.*Z.bak"))[:-keep]:
        old.unlink()
        logger.info("removed old config backup %s", old)
    return backup


def atomic_save(
    path: str | Path,
    doc: ConfigDocument,
    *,
    now: datetime | None = None,
    keep_backups: int = KEEP_BACKUPS,
) -> SavedConfig:
    """Validate ``doc`` and write it to ``path``, keeping a timestamped backup.

    Args:
        path: the config file.
        doc: the edited document.
        now: the backup's timestamp (default: now, UTC).
        keep_backups: how many backups of this file to keep.

    Raises:
        ConfigError: the edited config is invalid; nothing was written.
        OSError: the file or its folder is not writable.
    """
    target = Path(path)
    text = doc.text()
    config = parse_config(text, str(target), folder=target.parent)
    backup = _backup(target, now or datetime.now(UTC), keep_backups)
    atomic_write(target, text.encode("utf-8"))
    logger.info("saved %s (backup %s)", target, backup)
    return SavedConfig(target, backup, config)


def save_edit(path: str | Path, edit: Callable[[CommentedMap], None], **save: Any) -> SavedConfig:
    """Read the config file, apply ``edit`` to its document, validate and save it.

    One save at a time runs in this process, so two editors cannot lose each other's
    change between read and write.

    Args:
        path: the config file.
        edit: changes the document's root mapping (e.g. with :func:`set_zones`).
        **save: passed to :func:`atomic_save` (``now``, ``keep_backups``).

    Raises:
        ConfigError: the file is unreadable, or the edited config is invalid (the
            file is then untouched).
        ConfigEditError: the edit names something the config lacks.
        OSError: the file or its folder is not writable.
    """
    target = Path(path)
    with _LOCK:
        doc = read_document(read_yaml_text(target, ConfigError), str(target))
        edit(doc.root)
        return atomic_save(target, doc, **save)
