"""Round-trip edits of a store YAML: layout kept, validated before writing, atomic, backed up."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from appliance.config import ConfigError, load_config
from appliance.config.editing import (
    ConfigEditError,
    atomic_save,
    read_document,
    save_edit,
    scaled_plan,
    set_calibration,
    set_floor_plan,
    set_lines,
    set_zones,
)

REPO = Path(__file__).resolve().parent.parent
STORES = [
    REPO / "examples" / "vtest.yaml",
    *sorted((REPO / "examples" / "sim").glob("*/store.yaml")),
]


@pytest.mark.parametrize("store", STORES, ids=lambda p: p.parent.name)
def test_rewriting_the_same_layout_changes_nothing(tmp_path: Path, store: Path) -> None:
    path = tmp_path / "store.yaml"
    path.write_text(store.read_text())
    plain = YAML(typ="safe").load(store.read_text())  # the values as a browser would send them
    camera = plain["cameras"][0]
    pairs = [(p["image"], p["floor"]) for p in camera["calibration"]]

    def same(root: CommentedMap) -> None:
        set_zones(root, plain.get("zones", []))
        set_lines(root, plain.get("lines", []))
        set_calibration(root, camera["id"], pairs)

    saved = save_edit(path, same)
    assert path.read_text() == store.read_text()
    assert saved.backup is not None and saved.backup.read_text() == store.read_text()
    assert saved.config == load_config(store)


def test_an_invalid_edit_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store.yaml"
    original = (REPO / "examples" / "sim" / "corner_shop" / "store.yaml").read_text()
    path.write_text(original)
    with pytest.raises(ConfigError) as err:
        save_edit(path, lambda root: set_lines(root, [{"id": "Door!", "a": [0, 0], "b": [1, 0]}]))
    paths = {i.path for i in err.value.issues}
    assert {"lines.0.id", "lines.0.in_side"} <= paths
    assert all(i.file == str(path) for i in err.value.issues)
    assert path.read_text() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.yaml"]  # no backup, no temp
    with pytest.raises(ConfigEditError, match="no camera 'nope'"):
        save_edit(path, lambda root: set_calibration(root, "nope", []))


def test_backups_are_timestamped_and_pruned(tmp_path: Path) -> None:
    path = tmp_path / "store.yaml"
    path.write_text((REPO / "examples" / "sim" / "corner_shop" / "store.yaml").read_text())
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    backups = []
    for i in range(4):
        doc = read_document(path.read_text())
        set_floor_plan(doc.root, width_m=10 + i)
        backups.append(atomic_save(path, doc, now=t0 + timedelta(seconds=i), keep_backups=2).backup)
    assert backups[0] is not None and backups[0].name == "store.yaml.20260301T120000.000000Z.bak"
    left = sorted(p.name for p in tmp_path.glob("*.bak"))
    assert left == [b.name for b in backups[2:] if b is not None]
    assert load_config(path).floor_plan.width_m == 13


def test_new_items_follow_the_files_indentation_and_kept_items_their_comments(
    tmp_path: Path,
) -> None:
    text = (REPO / "examples" / "sim" / "corner_shop" / "store.yaml").read_text()
    out_stream = io.StringIO()
    YAML(typ="rt").dump(YAML(typ="rt").load(text), out_stream)  # ruamel's default: "- " flush
    flush = out_stream.getvalue()
    assert "\n- id: shop\n" in flush
    path = tmp_path / "store.yaml"
    path.write_text(flush)
    config = load_config(path)
    zones = [z.model_dump(mode="json") for z in config.zones]
    zones.insert(0, {"id": "new", "kind": "display", "polygon": [[1, 1], [2.00004, 1], [2, 2]]})
    save_edit(path, lambda root: set_zones(root, zones))
    out = path.read_text()
    assert "\n- id: new\n  kind: display\n  polygon: [[1, 1], [2.0, 1], [2, 2]]\n" in out
    assert (
        out.replace("- id: new\n  kind: display\n  polygon: [[1, 1], [2.0, 1], [2, 2]]\n", "")
        == flush
    )


def test_floor_plan_keys_and_scale(tmp_path: Path) -> None:
    doc = read_document((REPO / "examples" / "sim" / "corner_shop" / "store.yaml").read_text())
    del doc.root["floor_plan"]
    set_floor_plan(doc.root, width_m=12.5, depth_m=8, image="store.plan.png")
    assert "floor_plan:\n  width_m: 12.5\n  depth_m: 8\n  image: store.plan.png\n" in doc.text()
    assert scaled_plan(30, 20, (0, 0), (3, 4), 10) == (60, 40)
    with pytest.raises(ValueError, match="same point"):
        scaled_plan(30, 20, (1, 1), (1, 1), 10)
    with pytest.raises(ValueError, match="positive"):
        scaled_plan(30, 20, (0, 0), (1, 1), 0)
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        read_document("- just\n- a list\n")
