"""ONNX Runtime's telemetry is off: nothing appears under ``$HOME`` (no ``deviceid``, no event db).

Each check runs in a child process with its own empty ``HOME`` (and no
``XDG_CACHE_HOME``), since onnxruntime 1.32 writes
``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` as soon as it is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

TINY_SESSION = """
import numpy as np
import onnx
from onnx import TensorProto, helper
from vision.onnx_model import import_onnxruntime
ort = import_onnxruntime()
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
out = session.run(None, {"x": np.array([[-1.0, 0.0, 2.0]], np.float32)})[0]
assert out.tolist() == [[0.0, 0.0, 2.0]], out
"""

DETECTOR_ON_VIDEO = """
import sys
from vision.detectors import OnnxDetectorConfig, create_detector
from vision.sources import open_source
detector = create_detector(OnnxDetectorConfig(type="onnx", precision="fp32", threads=2))
source = open_source(sys.argv[1], 10, start_utc_ms=0)
source.open()
boxes = 0
for _ in range(5):
    frame = source.read()
    boxes += len(detector.detect(detector.prepare(frame.image)).conf)
source.close()
assert boxes > 0, "no walker detected in five frames of vtest.avi"
"""


def run_with_empty_home(tmp_path: Path, code: str, *args: str) -> list[Path]:
    """Run ``code`` in a child whose HOME is a new empty folder; what it left there."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "ORT_DISABLE_TELEMETRY")
    }
    env.update(HOME=str(home), PYTHONPATH=str(REPO), FOOTFALL_CACHE=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return sorted(home.rglob("*"))


def test_an_onnx_session_writes_nothing_under_home(tmp_path: Path) -> None:
    assert run_with_empty_home(tmp_path, TINY_SESSION) == []


@pytest.mark.slow
def test_the_onnx_detector_on_real_frames_writes_nothing_under_home(
    tmp_path: Path, vtest: Path
) -> None:
    assert run_with_empty_home(tmp_path, DETECTOR_ON_VIDEO, str(vtest)) == []
