"""The layout's promises that lint cannot show: no import cycle, no OpenCV where none is needed.

``lint-imports`` (``make lint``) checks the contracts in ``pyproject.toml``; this counts
every import statement, also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

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
