"""Tests of appliance.config: the store YAML, its validation and ``footfall config check``.

Every broken variant is built by editing the text of examples/vtest.yaml, and the
expected line is found by searching the edited text, never hard-coded.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ValidationError

from appliance.config import (
    ActiveHours,
    AlertRule,
    BoxConfig,
    CalibrationPair,
    CameraConfig,
    ConfigError,
    ConfigIssue,
    FloorPlan,
    LineConfig,
    OpeningHours,
    RingBufferConfig,
    StorageConfig,
    StoreConfig,
    ZoneConfig,
    load_config,
    parse_config,
)
from vision.detectors import (
    OnnxDetectorConfig,
    TensorRtDetectorConfig,
    UltralyticsDetectorConfig,
)
from vision.tracking import TrackerSettings

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "vtest.yaml"
FILE = "store.yaml"


@pytest.fixture(scope="module")
def example_text() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def edit(text: str, old: str, new: str) -> str:
    """Replace the one occurrence of ``old`` (fails if it is absent or ambiguous)."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the ``nth`` line containing ``needle``."""
    hits = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} is on {len(hits)} lines, wanted #{nth}"
    return hits[nth - 1]


def issues_of(text: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, FILE)
    issues = info.value.issues
    assert issues, "ConfigError without issues"
    for issue in issues:
        assert issue.file == FILE
        assert issue.line >= 1
        assert str(issue) == f"{FILE}:{issue.line}: {issue.path}: {issue.message}"
    return issues


def show(issues: list[ConfigIssue]) -> str:
    return "\n".join(str(i) for i in issues)


# --- the good example -----------------------------------------------------------------


def test_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert isinstance(config, BoxConfig)
    assert config.config_version == 1
    assert config.store.id == "vtest-demo"
    assert config.store.timezone == "Europe/London"
    assert isinstance(config.detector, OnnxDetectorConfig)
    assert config.detector.precision == "int8"
    assert config.detector.person_classes == [0]
    assert config.tracker.min_frames == 3
    assert config.tracker.lost_track_seconds == 3.0
    assert [c.id for c in config.cameras] == ["courtyard"]
    cam = config.camera("courtyard")
    assert cam.fps == 10
    assert cam.resolution == (768, 576)
    assert len(cam.calibration) == 4
    assert [z.id for z in config.zones] == ["crossing", "lawn"]
    assert [a.target for a in config.alerts] == ["crossing"]
    assert config.ring_buffer.seconds == 10
    with pytest.raises(KeyError):
        config.camera("nope")


def test_example_text_parses_the_same_from_a_copy(tmp_path: Path, example_text: str) -> None:
    copy = tmp_path / "copy.yaml"
    copy.write_text(example_text, encoding="utf-8")
    assert load_config(copy) == parse_config(example_text) == load_config(EXAMPLE)


# --- broken variants: key path and exact line -------------------------------------------


@dataclass(frozen=True)
class Broken:
    """A broken variant of the example.

    Attributes:
        build: the edit that breaks the example text.
        expected: acceptable ``(key path, line needle, nth line with it)``; an issue
            must name one of these paths on the line the needle is found on.
        message: a substring the matching issue's message must contain.
    """

    build: Callable[[str], str]
    expected: tuple[tuple[str, str, int], ...]
    message: str = ""


COLLINEAR = (
    ("{image: [188, 420], floor: [10.0, 19.0]}", "{image: [360, 220], floor: [12.0, 10.0]}"),
    ("{image: [692, 420], floor: [18.0, 19.0]}", "{image: [440, 220], floor: [14.0, 10.0]}"),
)


def _collinear(t: str) -> str:
    for old, new in COLLINEAR:
        t = edit(t, old, new)
    return t


# A camera-level check (it needs both resolution and calibration) may be reported on the
# camera's item or on its calibration; either is exact if the line matches the path.
CAMERA_OR_CALIBRATION = (
    ("cameras.0", "- id: courtyard", 1),
    ("cameras.0.calibration", "calibration:", 1),
)

BROKEN: dict[str, Broken] = {
    "typo-in-store": Broken(
        lambda t: edit(t, "  timezone: Europe/London", "  timezon: Europe/London"),
        (("store.timezon", "timezon:", 1),),
        "unknown key",
    ),
    "unknown-top-level-key": Broken(
        lambda t: edit(t, "floor_plan:\n", "colour: blue\nfloor_plan:\n"),
        (("colour", "colour: blue", 1),),
        "unknown key",
    ),
    "bad-iana-zone": Broken(
        lambda t: edit(t, "timezone: Europe/London", "timezone: Europe/Lundun"),
        (("store.timezone", "timezone: Europe/Lundun", 1),),
        "IANA",
    ),
    "negative-fps": Broken(
        lambda t: edit(t, "    fps: 10\n", "    fps: -1\n"),
        (("cameras.0.fps", "fps: -1", 1),),
        "greater than 0",
    ),
    "three-calibration-pairs": Broken(
        lambda t: edit(t, "      - {image: [692, 420], floor: [18.0, 19.0]}\n", ""),
        (("cameras.0.calibration", "calibration:", 1),),
        "at least 4",
    ),
    "collinear-calibration": Broken(_collinear, CAMERA_OR_CALIBRATION, "degenerate"),
    "calibration-point-outside-image": Broken(
        lambda t: edit(t, "[692, 420]", "[800, 420]"),
        (
            *CAMERA_OR_CALIBRATION,
            ("cameras.0.calibration.3", "[800, 420]", 1),
            ("cameras.0.calibration.3.image", "[800, 420]", 1),
        ),
        "outside 768x576",
    ),
    "zero-area-polygon": Broken(
        lambda t: edit(
            t,
            "[[4.0, 16.0], [16.0, 16.0], [16.0, 24.0], [4.0, 24.0]]",
            "[[4.0, 16.0], [10.0, 16.0], [16.0, 16.0]]",
        ),
        (("zones.1", "- id: lawn", 1), ("zones.1.polygon", "[[4.0, 16.0], [10.0, 16.0]", 1)),
        "no area",
    ),
    "clear-at-not-below-raise-at": Broken(
        lambda t: edit(t, "clear_at: 5", "clear_at: 9"),
        (
            ("alerts.0", "- id: crowd-at-crossing", 1),
            ("alerts.0.clear_at", "clear_at: 9", 1),
        ),
        "hysteresis",
    ),
    "typo-inside-detector-union": Broken(
        lambda t: edit(t, "  precision: int8", "  precison: int8"),
        (("detector.precison", "precison: int8", 1),),
        "unknown key",
    ),
    "field-of-another-detector-type": Broken(
        # ``precision`` belongs to onnx, not to ultralytics.
        lambda t: edit(t, "  type: onnx", "  type: ultralytics"),
        (("detector.precision", "precision: int8", 1),),
        "unknown key",
    ),
    "bogus-detector-type": Broken(
        lambda t: edit(t, "  type: onnx", "  type: bogus"),
        (("detector", "detector:", 1), ("detector.type", "type: bogus", 1)),
        "bogus",
    ),
    "bad-opening-time": Broken(
        lambda t: edit(t, 'close: "23:59"', 'close: "25:00"'),
        (("store.opening_hours.0.close", 'close: "25:00"', 1),),
        "HH:MM",
    ),
    "missing-required-section": Broken(
        lambda t: edit(t, "floor_plan:\n  width_m: 26\n  depth_m: 25\n", ""),
        # No key to point at: the start of the file or of the top-level mapping.
        (("floor_plan", "# footfall store config", 1), ("floor_plan", "config_version: 1", 1)),
        "missing",
    ),
    "missing-required-key": Broken(
        lambda t: edit(t, "  name: PETS 2009 courtyard (demo)\n", ""),
        (("store.name", "store:", 1),),
        "missing",
    ),
    "yaml-mapping-value-in-scalar": Broken(
        lambda t: edit(t, "name: PETS 2009 courtyard (demo)", "name: PETS: 2009 courtyard"),
        (("(yaml)", "name: PETS: 2009", 1),),
    ),
    "yaml-duplicate-key": Broken(
        lambda t: edit(t, "  fps: 10\n", "  fps: 10\n    fps: 12\n"),
        (("(yaml)", "fps: 12", 1),),
        "duplicate key",
    ),
    "yaml-tab-indent": Broken(
        lambda t: edit(t, "  id: vtest-demo", "\tid: vtest-demo"),
        (("(yaml)", "\tid: vtest-demo", 1),),
    ),
}

# Whole-config checks, YAML context marks and keys named like the detector types.
BROKEN.update(
    {
        "duplicate-zone-id": Broken(
            lambda t: edit(t, "  - id: lawn", "  - id: crossing"),
            (("zones.1.id", "- id: crossing", 2), ("zones.1", "- id: crossing", 2)),
            "duplicate",
        ),
        "alert-target-names-nothing": Broken(
            lambda t: edit(t, "target: crossing", "target: nowhere"),
            (
                ("alerts.0.target", "target: nowhere", 1),
                ("alerts.0", "- id: crowd-at-crossing", 1),
            ),
            "nowhere",
        ),
        "yaml-unclosed-bracket": Broken(
            lambda t: edit(t, "resolution: [768, 576]", "resolution: [768, 576"),
            (("(yaml)", "resolution: [768, 576", 1),),
        ),
        "unknown-key-named-like-a-union-tag": Broken(
            lambda t: edit(t, "floor_plan:\n", "tensorrt: true\nfloor_plan:\n"),
            (("tensorrt", "tensorrt: true", 1),),
            "unknown key",
        ),
    }
)


def _check_broken(example_text: str, case: Broken) -> None:
    text = case.build(example_text)
    assert text != example_text
    issues = issues_of(text)
    wanted = {(path, line_of(text, needle, nth)) for path, needle, nth in case.expected}
    hits = [i for i in issues if (i.path, i.line) in wanted]
    assert hits, f"wanted one of {sorted(wanted)}, got:\n{show(issues)}"
    assert any(case.message in i.message for i in hits), show(issues)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_variant_names_key_and_line(example_text: str, name: str) -> None:
    _check_broken(example_text, BROKEN[name])


def _after(anchor: str, insert: str) -> tuple[str, str]:
    return anchor, anchor + insert


# site: (old text, new text, expected key path of the unknown key ``zz_typo``)
UNKNOWN_KEY_SITES: dict[str, tuple[str, str, str]] = {
    "store": (*_after("  name: PETS 2009 courtyard (demo)\n", "  zz_typo: 1\n"), "store.zz_typo"),
    "opening_hours": (
        *_after('      open: "00:00"\n', "      zz_typo: 1\n"),
        "store.opening_hours.0.zz_typo",
    ),
    "detector": (*_after("  precision: int8\n", "  zz_typo: 1\n"), "detector.zz_typo"),
    "tracker": (*_after("  min_frames: 3\n", "  zz_typo: 1\n"), "tracker.zz_typo"),
    "camera": (*_after("    loop: true\n", "    zz_typo: 1\n"), "cameras.0.zz_typo"),
    "calibration-pair": (
        "floor: [18.0, 10.0]}",
        "floor: [18.0, 10.0], zz_typo: 1}",
        "cameras.0.calibration.1.zz_typo",
    ),
    "floor_plan": (*_after("  depth_m: 25\n", "  zz_typo: 1\n"), "floor_plan.zz_typo"),
    "line": (*_after("    in_side: right\n", "    zz_typo: 1\n"), "lines.0.zz_typo"),
    "zone": (*_after("    kind: entrance\n", "    zz_typo: 1\n"), "zones.1.zz_typo"),
    "alert": (*_after("    min_duration_s: 10\n", "    zz_typo: 1\n"), "alerts.0.zz_typo"),
    "active_hours": (
        *_after(
            "    min_duration_s: 10\n",
            '    active_hours:\n      start: "08:00"\n      zz_typo: 1\n',
        ),
        "alerts.0.active_hours.zz_typo",
    ),
    "storage": (
        *_after("  db_path: ~/.cache/footfall/demo/footfall.db\n", "  zz_typo: 1\n"),
        "storage.zz_typo",
    ),
    "ring_buffer": (*_after("  max_mb: 64\n", "  zz_typo: 1\n"), "ring_buffer.zz_typo"),
}


@pytest.mark.parametrize("site", sorted(UNKNOWN_KEY_SITES))
def test_unknown_key_anywhere_is_reported_on_its_line(example_text: str, site: str) -> None:
    old, new, path = UNKNOWN_KEY_SITES[site]
    text = edit(example_text, old, new)
    issues = issues_of(text)
    assert [(i.path, i.line, i.message) for i in issues] == [
        (path, line_of(text, "zz_typo"), "unknown key 'zz_typo' (typo?)")
    ], show(issues)


def test_all_issues_are_reported_at_once(example_text: str) -> None:
    text = edit(example_text, "    fps: 10\n", "    fps: -1\n")
    text = edit(text, "  min_frames: 3\n", "  min_frame: 3\n")
    issues = issues_of(text)
    got = {(i.path, i.line) for i in issues}
    assert ("cameras.0.fps", line_of(text, "fps: -1")) in got
    assert ("tracker.min_frame", line_of(text, "min_frame: 3")) in got


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_not_a_mapping(text: str) -> None:
    issues = issues_of(text)
    assert [(i.path, i.line) for i in issues] == [("(top)", 1)]


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert [i.path for i in info.value.issues] == ["(file)"]
    assert info.value.issues[0].file == str(missing)


# --- every model forbids unknown keys -----------------------------------------------------


def models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from models_in(arg)


def all_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    todo = [root]
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.append(model)
        for field in model.model_fields.values():
            todo.extend(models_in(field.annotation))
    return seen


def test_model_walk_finds_every_section() -> None:
    found = set(all_models(BoxConfig))
    assert found >= {
        BoxConfig,
        StoreConfig,
        OpeningHours,
        CameraConfig,
        CalibrationPair,
        FloorPlan,
        LineConfig,
        ZoneConfig,
        AlertRule,
        ActiveHours,
        StorageConfig,
        RingBufferConfig,
        OnnxDetectorConfig,
        UltralyticsDetectorConfig,
        TensorRtDetectorConfig,
        TrackerSettings,
    }


@pytest.mark.parametrize("model", all_models(BoxConfig), ids=lambda m: m.__name__)
def test_every_model_forbids_unknown_keys(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "forbid"
    with pytest.raises(ValidationError) as info:
        model.model_validate({"zz_not_a_key": 1})
    assert any(
        e["type"] == "extra_forbidden" and e["loc"] == ("zz_not_a_key",)
        for e in info.value.errors()
    )


# --- the real CLI -----------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_cli_config_check_reports_file_line_and_key(tmp_path: Path, example_text: str) -> None:
    text = edit(example_text, "  timezone: Europe/London", "  timezon: Europe/London")
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    proc = run_cli("config", "check", str(path), cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert f"{path}:{line_of(text, 'timezon:')}: store.timezon:" in proc.stderr, proc.stderr
    assert "OK" not in proc.stdout


def test_cli_config_check_accepts_the_example(tmp_path: Path, example_text: str) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(example_text, encoding="utf-8")
    proc = run_cli("config", "check", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc
    assert "reprojection error" in proc.stdout
    assert f"{path}: OK" in proc.stdout
    assert proc.stderr == ""


def test_cli_config_check_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    proc = run_cli("config", "check", str(path), cwd=tmp_path)
    assert proc.returncode == 2, proc
    assert str(path) in proc.stderr
