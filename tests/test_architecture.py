"""The layout's promises that lint cannot show: no import cycle, no OpenCV where none is needed.

``lint-imports`` (``make lint``) checks the contracts in ``pyproject.toml``; this counts
every import statement, also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parent.parent
OURS = ("appliance", "vision", "local_db", "webui", "sync", "cloud_hub", "wire", "lab")


def test_no_import_cycle_among_our_modules() -> None:
    graph = grimp.build_graph(*OURS, cache_dir=None)
    assert {"webui.app", "webui.editor", "appliance.cli", "lab.sim.engine"} <= graph.modules
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


# Importing the box's CLI and config loads no pixel or neural-network library: OpenCV comes
# in when a homography is first fitted or applied (or the dashboard decodes an image), ONNX
# Runtime with a detector.
IMPORTS_WITHOUT_CV2 = """
import sys
import appliance.cli, appliance.config, appliance.config.editing
loaded = sorted(m for m in ("cv2", "onnxruntime", "torch", "ultralytics") if m in sys.modules)
assert not loaded, loaded
from appliance.cli import main
assert main(["config", "check", "examples/vtest.yaml"]) == 0
assert "cv2" in sys.modules  # the check fitted the homography with OpenCV
loaded = sorted(m for m in ("onnxruntime", "torch", "ultralytics") if m in sys.modules)
assert not loaded, loaded
"""


def test_the_cli_and_config_import_no_pixel_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTS_WITHOUT_CV2],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "examples/vtest.yaml: OK" in done.stdout
    assert "reprojection error" in done.stdout  # the homography was fitted


# "No SQL for a package's tables outside its db layer": every write of the box (and every
# transaction, pragma and schema statement) is in local_db/; outside it only the dashboard's
# pages may keep their own read queries. String constants are scanned (docstrings skipped), so
# an f-string's SQL is caught too.
_WRITE_SQL = re.compile(
    r"\b(INSERT(\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|(CREATE|DROP|ALTER)\s+(TABLE|INDEX|TRIGGER|VIEW)|BEGIN(\s+IMMEDIATE)?\b|COMMIT|ROLLBACK"
    r"|PRAGMA|VACUUM)\b"
)
_READ_SQL = re.compile(r"\bSELECT\b[\s\S]*\bFROM\b|\bSELECT\s+\w+\(")


def _sql_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_sql_for_box_tables_lives_in_local_db() -> None:
    writes, reads = [], []
    for package in ("appliance", "vision", "webui", "sync"):
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO)
            for line, text in _sql_constants(path):
                if _WRITE_SQL.search(text):
                    writes.append(f"{rel}:{line}: {text.strip()[:60]!r}")
                elif _READ_SQL.search(text) and package != "webui":
                    reads.append(f"{rel}:{line}: {text.strip()[:60]!r}")
    assert not writes, "SQL writes outside local_db/:\n" + "\n".join(writes)
    assert not reads, "SQL reads outside local_db/ and the dashboard's pages:\n" + "\n".join(reads)
