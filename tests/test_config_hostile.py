"""Hostile store YAML: bad bytes, alias bombs, deep nesting, huge files, wild geometry, paths.

Each case is a file or an edit a careless installer (or an attacker with the editor, or
later the hub's config push) could produce; each must be a located ``FILE:LINE`` error,
refused in bounded time and memory, and must never stop the alert engine's tick.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from appliance.alerts import AlertEngine, SimulatedGpio, alert_history
from appliance.config import (
    MAX_CALIBRATION_PAIRS,
    MAX_LINES,
    MAX_VERTICES,
    MAX_ZONES,
    ConfigError,
    ConfigIssue,
    load_config,
    parse_config,
)
from appliance.config import editing as config_edit
from appliance.config.editing import read_document, save_edit, set_zones
from appliance.config.yaml_loader import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES
from local_db import connect, migrate
from tests.test_alerts import Box, make_config
from tests.test_config import EXAMPLE, edit, line_of
from tests.test_live import at, walk, write
from tests.webui_support import csrf_token, post_json

REPO = Path(__file__).resolve().parent.parent
FILE = "store.yaml"


@pytest.fixture(scope="module")
def example() -> str:
    return EXAMPLE.read_text(encoding="utf-8")


def issues_of(text: str, file: str = FILE) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, file)
    return info.value.issues


def one_issue(text: str) -> ConfigIssue:
    issues = issues_of(text)
    assert len(issues) == 1, issues
    return issues[0]


def run_cli(*args: str, cwd: Path, memory_mb: int = 0) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process, optionally under an address-space limit."""

    def limit() -> None:
        limit_bytes = memory_mb << 20
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
        env=env,
        preexec_fn=limit if memory_mb else None,
    )


# --- item 5: a byte that is not UTF-8 ------------------------------------------------------


def _bad_byte_file(tmp_path: Path, example: str) -> tuple[Path, int]:
    text = edit(example, "name: PETS 2009 courtyard (demo)", "name: PETS \udcff courtyard")
    path = tmp_path / "store.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    return path, line_of(example, "name: PETS 2009 courtyard")


def test_a_byte_that_is_not_utf8_is_a_located_error(tmp_path: Path, example: str) -> None:
    path, line = _bad_byte_file(tmp_path, example)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (issue,) = info.value.issues
    assert (issue.file, issue.line) == (str(path), line)
    assert "0xff" in issue.message and "UTF-8" in issue.message


def test_cli_config_check_and_ingest_name_the_bad_byte_with_exit_2(
    tmp_path: Path, example: str
) -> None:
    path, line = _bad_byte_file(tmp_path, example)
    check = run_cli("config", "check", str(path), cwd=tmp_path)
    assert check.returncode == 2, check
    assert f"{path}:{line}: (file):" in check.stderr
    assert "Traceback" not in check.stderr
    csv = tmp_path / "points.csv"
    csv.write_text("camera_id,track_id,t_ms,x_m,y_m\ncourtyard,1,1000,10.0,10.0\n")
    db = tmp_path / "box.db"
    ingest = run_cli(
        "ingest", "--config", str(path), "--csv", str(csv), "--db", str(db), cwd=tmp_path
    )
    assert ingest.returncode == 2, ingest
    assert f"{path}:{line}: (file):" in ingest.stderr
    assert "Traceback" not in ingest.stderr


def test_a_control_character_is_a_located_error(example: str) -> None:
    text = edit(example, "name: PETS 2009 courtyard (demo)", "name: PETS \x01 courtyard")
    issue = one_issue(text)
    assert issue.line == line_of(text, "name: PETS")
    assert issue.path == "(yaml)"


# --- item 5: a failed reload never stops the alert engine's tick --------------------------

RULE = "  - {id: q, kind: queue_length, target: queue, raise_at: 2, clear_at: 0}"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "footfall.db"
    conn = connect(path)
    migrate(conn)
    conn.close()
    return path


def _corrupt(path: Path) -> None:
    """Put a byte that is not UTF-8 into the file and make sure its mtime moves."""
    before = path.stat().st_mtime_ns
    path.write_bytes(path.read_bytes().replace(b"Test shop", b"Test \xff shop"))
    os.utime(path, ns=(before + 10**9, before + 10**9))


def _reload_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "appliance.alerts.engine" and "reload" in r.msg]


def test_a_bad_byte_keeps_the_last_good_rules_with_one_warning(
    tmp_path: Path, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_path = make_config(tmp_path, RULE)
    e = AlertEngine(config_path, db, gpio=SimulatedGpio(), system=Box())
    _corrupt(config_path)
    caplog.set_level(logging.INFO, logger="appliance.alerts.engine")
    assert e.reload_if_changed() is False
    (error,) = e.errors
    assert error.startswith(f"{config_path}:3: (file): ") and "0xff" in error
    for _ in range(5):
        assert e.reload_if_changed() is None  # the same bad version is not re-read
    (warning,) = _reload_warnings(caplog)
    assert warning.levelno == logging.WARNING and warning.exc_info is None
    assert str(config_path) in warning.getMessage()
    # the old rule still raises
    write(e.conn, *[walk([(0, 7 + i, 5), (30, 7 + i, 5)], "cam-a", i + 1) for i in range(2)])
    assert [tr.action for tr in e.tick(at(10))] == ["raise"]
    assert [a.rule_id for a in alert_history(e.conn)] == ["q"]
    e.close()


def test_a_reload_failure_of_any_kind_keeps_the_engine_ticking(
    tmp_path: Path, db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a simulated buzzer first; the new file asks for a GPIO chip that does not exist,
    # which fails while the new setup is swapped in, not while the file is validated
    config_path = make_config(tmp_path, RULE)
    e = AlertEngine(config_path, db, system=Box())
    text = config_path.read_text()
    nochip = tmp_path / "no-such-gpiochip"
    config_path.write_text(
        text.replace("backend: simulated", f"backend: gpiod, chip: {nochip}").replace(
            "raise_at: 2", "raise_at: 1"
        )
    )
    caplog.set_level(logging.INFO, logger="appliance.alerts.engine")
    assert e.reload_if_changed() is False
    assert e.reload_if_changed() is None
    (warning,) = _reload_warnings(caplog)
    assert warning.levelno == logging.WARNING and warning.exc_info is None
    assert e.config.alerts[0].raise_at == 2
    write(e.conn, *[walk([(0, 7 + i, 5), (30, 7 + i, 5)], "cam-a", i + 1) for i in range(2)])
    assert [tr.action for tr in e.tick(at(10))] == ["raise"]
    e.close()


class Ticks:
    """Counts the engine's ticks (its ``on_tick`` hook) and lets a test wait for more."""

    def __init__(self) -> None:
        self.n = 0
        self._cond = threading.Condition()

    def __call__(self, *_args: object) -> None:
        with self._cond:
            self.n += 1
            self._cond.notify_all()

    def wait_for(self, n: int, timeout_s: float = 30) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.n >= n, timeout=timeout_s)


@pytest.fixture
def running(tmp_path: Path, db: Path) -> Iterator[tuple[AlertEngine, Ticks, Path]]:
    config_path = make_config(tmp_path, RULE)
    ticks = Ticks()
    e = AlertEngine(config_path, db, gpio=SimulatedGpio(), system=Box(), on_tick=ticks)
    stop = threading.Event()
    thread = threading.Thread(target=e.run, args=(stop, 0.01), daemon=True)
    thread.start()
    yield e, ticks, config_path
    stop.set()
    thread.join(timeout=30)
    e.close()


def test_the_running_engine_keeps_ticking_after_the_file_is_corrupted(
    running: tuple[AlertEngine, Ticks, Path], caplog: pytest.LogCaptureFixture
) -> None:
    e, ticks, config_path = running
    caplog.set_level(logging.INFO, logger="appliance.alerts.engine")
    assert ticks.wait_for(1)
    _corrupt(config_path)
    start = ticks.n
    assert ticks.wait_for(start + 20), "the engine stopped ticking after the file went bad"
    assert e.errors and "0xff" in e.errors[0]
    assert len(_reload_warnings(caplog)) == 1
    assert not [r for r in caplog.records if r.exc_info]


# --- item 6: alias bombs, deep nesting, huge files -----------------------------------------


def alias_bomb(levels: int) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path: Path, example: str) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(example)
    assert run_cli("config", "check", str(good), cwd=tmp_path, memory_mb=700).returncode == 0
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(example + alias_bomb(9))
    started = time.monotonic()
    proc = run_cli("config", "check", str(bomb), cwd=tmp_path, memory_mb=700)
    assert proc.returncode == 2, proc
    assert time.monotonic() - started < 30
    assert "Traceback" not in proc.stderr
    text = bomb.read_text()
    assert f"{bomb}:" in proc.stderr and "alias" in proc.stderr
    line = int(proc.stderr.split(f"{bomb}:")[1].split(":")[0])
    assert line > line_of(text, "a0: &a0")


def test_the_alias_bomb_is_refused_at_the_alias_that_crosses_the_cap(example: str) -> None:
    text = example + alias_bomb(9)
    issue = one_issue(text)
    assert issue.path == "(yaml)"
    assert str(MAX_YAML_NODES) in issue.message
    assert line_of(text, "a3: &a3") <= issue.line <= line_of(text, "a9: &a9")


def test_small_aliases_still_work() -> None:
    from tests.stores import SHOP

    assert "*whole-floor" in SHOP
    config = parse_config(SHOP)
    assert config.cameras[0].calibration == config.cameras[1].calibration


@pytest.mark.parametrize("kind", ["flow-sequence", "flow-mapping", "block"])
def test_deep_nesting_is_a_located_error(example: str, kind: str) -> None:
    n = 50_000  # 200 KB: under the file size limit
    nested = {
        "flow-sequence": "deep: " + "[" * n + "]" * n + "\n",
        "flow-mapping": "deep: " + "{a: " * n + "1" + "}" * n + "\n",
        "block": "deep:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(MAX_YAML_DEPTH + 5)),
    }[kind]
    text = example + nested
    started = time.monotonic()
    issue = one_issue(text)
    assert time.monotonic() - started < 20
    assert issue.path == "(yaml)" and f"more than {MAX_YAML_DEPTH}" in issue.message
    assert issue.line >= line_of(text, "deep:")


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path, example: str) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text(example + "#" * (MAX_YAML_BYTES + 10) + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.path) == (str(path), 1, "(file)")
    assert str(MAX_YAML_BYTES) in issue.message
    # text handed over directly (the editor, the hub) is held to the same limit
    assert issues_of(example + "#" * MAX_YAML_BYTES)[0].path == "(file)"


def test_the_editor_refuses_a_deeply_nested_file_with_a_located_error(
    tmp_path: Path, example: str
) -> None:
    path = tmp_path / "store.yaml"
    path.write_text(example + "deep: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as info:
        save_edit(path, lambda root: set_zones(root, []))
    assert "more than" in info.value.issues[0].message
    with pytest.raises(ConfigError):
        read_document(path.read_text(), str(path))


# --- item 9: geometry --------------------------------------------------------------------

CROSSING = "polygon: [[9.0, 9.0], [19.0, 9.0], [19.0, 15.0], [9.0, 15.0]]"


@pytest.mark.parametrize("bad", [".nan", ".inf", "-.inf", ".NaN"])
def test_coordinates_must_be_finite(example: str, bad: str) -> None:
    for old, new, path in [
        (CROSSING, CROSSING.replace("[19.0, 9.0]", f"[{bad}, 9.0]"), "zones.0.polygon.1.0"),
        ("a: [17.0, 8.5]", f"a: [17.0, {bad}]", "lines.0.a.1"),
        ("floor: [18.0, 10.0]", f"floor: [{bad}, 10.0]", "cameras.0.calibration.1.floor.0"),
    ]:
        text = edit(example, old, new)
        issues = issues_of(text)
        hits = [i for i in issues if i.path == path]
        assert hits, (path, issues)
        assert "finite" in hits[0].message
        assert hits[0].line == line_of(text, bad)


def test_a_self_intersecting_polygon_is_refused(example: str) -> None:
    bowtie = "polygon: [[9.0, 9.0], [19.0, 15.0], [19.0, 9.0], [9.0, 15.0]]"
    text = edit(example, CROSSING, bowtie)
    issue = one_issue(text)
    assert issue.path == "zones.0.polygon"
    assert issue.line == line_of(text, bowtie)
    assert "self-intersect" in issue.message.lower()


def test_a_line_needs_length(example: str) -> None:
    text = edit(example, "b: [22.5, 8.5]", "b: [17.0, 8.5]")
    issue = one_issue(text)
    assert issue.path == "lines.0" and "two different points" in issue.message


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        (CROSSING, CROSSING.replace("[19.0, 15.0]", "[60.0, 15.0]"), "zones.0.polygon.2"),
        (CROSSING, CROSSING.replace("[9.0, 15.0]", "[-20.0, 15.0]"), "zones.0.polygon.3"),
        ("b: [22.5, 8.5]", "b: [122.5, 8.5]", "lines.0.b"),
    ],
)
def test_geometry_must_lie_on_the_floor_plan(example: str, old: str, new: str, path: str) -> None:
    text = edit(example, old, new)
    issue = one_issue(text)
    assert issue.path == path, issue
    assert "outside the floor plan" in issue.message
    assert issue.line == line_of(text, new)
    # over the edge within the margin is fine (a door line on the wall, a plan resized
    # before its zones are moved)
    parse_config(edit(example, "a: [17.0, 8.5]", "a: [38.9, 8.5]"))


def _zones(n: int, vertices: int = 4) -> str:
    def ring(i: int) -> str:
        x, y = (i % 20) + 0.5, (i // 20) * 0.5 + 0.1
        turns = [2 * math.pi * k / vertices for k in range(vertices)]
        pts = [(x + 0.2 * math.cos(a), y + 0.2 * math.sin(a)) for a in turns]
        return "[" + ", ".join(f"[{px:.4f}, {py:.4f}]" for px, py in pts) + "]"

    return "".join(f"  - {{id: z{i}, kind: display, polygon: {ring(i)}}}\n" for i in range(n))


def _with_zones(example: str, zones: str) -> str:
    start = example.index("zones:\n")
    end = example.index("alerts:\n")
    return (
        example[:start]
        + "zones:\n"
        + zones
        + example[end:].replace("target: crossing", "target: z0")
    )


def test_caps_on_zones_lines_and_vertices(example: str) -> None:
    parse_config(_with_zones(example, _zones(MAX_ZONES)))
    too_many = _with_zones(example, _zones(MAX_ZONES + 1))
    issue = one_issue(too_many)
    assert (issue.path, issue.line) == ("zones", line_of(too_many, "zones:"))
    assert str(MAX_ZONES) in issue.message
    parse_config(_with_zones(example, _zones(1, MAX_VERTICES)))
    spiky = _with_zones(example, _zones(1, MAX_VERTICES + 1))
    issue = one_issue(spiky)
    assert issue.path == "zones.0.polygon" and str(MAX_VERTICES) in issue.message
    lines = "".join(
        f"  - {{id: l{i}, a: [1.0, {i * 0.1:.1f}], b: [2.0, {i * 0.1:.1f}], in_side: left}}\n"
        for i in range(MAX_LINES + 1)
    )
    start, end = example.index("lines:\n"), example.index("zones:\n")
    text = example[:start] + "lines:\n" + lines + example[end:]
    issue = one_issue(text)
    assert issue.path == "lines" and str(MAX_LINES) in issue.message


# --- item 9: the editor refuses wild geometry before taking the save lock -----------------


def _layout(app: Flask) -> dict[str, list[dict[str, object]]]:
    config = load_config(app.extensions["footfall"].config_path)
    return {
        "zones": [z.model_dump(mode="json") for z in config.zones],
        "lines": [ln.model_dump(mode="json") for ln in config.lines],
    }


def _post_raw(client: FlaskClient, path: str, data: str, token: str) -> tuple[int, str]:
    response = client.post(
        path, data=data, content_type="application/json", headers={"X-CSRFToken": token}
    )
    return response.status_code, response.get_json()["error"]


def test_the_editor_never_saves_nan_or_infinity(app: Flask, installer: FlaskClient) -> None:
    path: Path = app.extensions["footfall"].config_path
    before = path.read_bytes()
    token = csrf_token(installer, "/installer/")
    for bad in (math.nan, math.inf, -math.inf):
        body = _layout(app)
        polygon = body["zones"][0]["polygon"]
        assert isinstance(polygon, list)
        polygon[1] = [bad, polygon[1][1]]
        raw = json.dumps(body)  # NaN / Infinity, as a browser's script could send them
        assert "NaN" in raw or "Infinity" in raw
        status, error = _post_raw(installer, "/installer/layout", raw, token)
        assert status == 400, error
        assert "zones.0.polygon.1.0" in error and "finite" in error
    assert path.read_bytes() == before


def _without_the_save_lock(post: Callable[[], TestResponse]) -> TestResponse:
    """``post()`` while another save holds the lock; it must answer without waiting for it."""
    answers: list[TestResponse] = []
    with config_edit._LOCK:
        worker = threading.Thread(target=lambda: answers.append(post()), daemon=True)
        worker.start()
        worker.join(timeout=30)
        waited = worker.is_alive()
    worker.join()
    assert not waited, "the refusal waited for the save lock"
    return answers[0]


def test_the_editor_refuses_huge_layouts_before_the_save_lock(
    app: Flask, installer: FlaskClient
) -> None:
    path: Path = app.extensions["footfall"].config_path
    before = path.read_bytes()
    token = csrf_token(installer, "/installer/")
    body = _layout(app)

    def layout(zones: list[dict[str, object]]) -> TestResponse:
        return _without_the_save_lock(
            lambda: post_json(installer, "/installer/layout", {**body, "zones": zones}, token)
        )

    ring = [[1 + i * 1e-5, 1.0 + (i % 2) * 1e-5] for i in range(100_000)]
    huge = layout([{"id": "spiky", "kind": "display", "polygon": ring}])
    assert huge.status_code == 413, huge.get_json()
    assert str(MAX_YAML_BYTES) in huge.get_json()["error"]
    spiky = layout([{"id": "spiky", "kind": "display", "polygon": ring[: MAX_VERTICES + 1]}])
    assert spiky.status_code == 400
    assert "zones.0.polygon" in spiky.get_json()["error"]
    assert str(MAX_VERTICES) in spiky.get_json()["error"]
    square = [[1, 1], [2, 1], [2, 2]]
    many = layout([{"id": f"z{i}", "kind": "display", "polygon": square} for i in range(1000)])
    assert many.status_code == 400 and str(MAX_ZONES) in many.get_json()["error"]
    pairs = [{"image": [1, 1], "floor": [1, 1]}] * 1000
    calibration = _without_the_save_lock(
        lambda: post_json(installer, "/installer/cameras/west/calibration", {"pairs": pairs}, token)
    )
    assert calibration.status_code == 400
    assert str(MAX_CALIBRATION_PAIRS) in calibration.get_json()["error"]
    assert path.read_bytes() == before


def test_the_editor_refuses_a_self_intersecting_zone(app: Flask, installer: FlaskClient) -> None:
    path: Path = app.extensions["footfall"].config_path
    before = path.read_bytes()
    token = csrf_token(installer, "/installer/")
    body = _layout(app)
    body["zones"].append(
        {"id": "bowtie", "kind": "display", "polygon": [[1, 1], [3, 3], [3, 1], [1, 3]]}
    )
    refused = post_json(installer, "/installer/layout", body, token)
    assert refused.status_code == 400
    assert f"zones.{len(body['zones']) - 1}.polygon" in refused.get_json()["error"]
    assert "self-intersect" in refused.get_json()["error"].lower()
    assert path.read_bytes() == before


# --- item 12 (part): floor_plan.image stays in the config's folder ------------------------


@pytest.mark.parametrize("image", ["../plan.png", "/etc/passwd", "sub/../../plan.png"])
def test_the_plan_image_may_not_leave_the_config_folder(
    tmp_path: Path, example: str, image: str
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    path = folder / "store.yaml"
    text = edit(example, "  depth_m: 25\n", f"  depth_m: 25\n  image: {image}\n")
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (issue,) = info.value.issues
    assert (issue.path, issue.line) == ("floor_plan.image", line_of(text, f"  image: {image}"))
    assert "outside" in issue.message
    assert issues_of(text)[0].path == "floor_plan.image"  # text without a folder, too


def test_a_symlink_out_of_the_config_folder_is_refused(tmp_path: Path, example: str) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    outside = tmp_path / "secret.png"
    outside.write_bytes(b"not a plan")
    (folder / "plan.png").symlink_to(outside)
    (folder / "inside.png").write_bytes(b"a plan")
    path = folder / "store.yaml"
    text = edit(example, "  depth_m: 25\n", "  depth_m: 25\n  image: plan.png\n")
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.issues[0].path == "floor_plan.image"
    path.write_text(text.replace("plan.png", "inside.png"))
    assert load_config(path).floor_plan.image == "inside.png"
    (folder / "sub").mkdir()
    path.write_text(text.replace("plan.png", "sub/../inside.png"))
    assert load_config(path).floor_plan.image == "sub/../inside.png"
