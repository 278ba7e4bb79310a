"""Probes for ``footfall doctor``: a camera's first frame, the model loading, the GPU.

Each probe answers with a :data:`Verdict` (``ok``/``warn``/``fail`` and a one-line
reason) instead of raising, and touches nothing the running box owns: no prepared
model is written to the cache and no frame is kept (the one frame read is dropped
after its size is taken).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import Literal

from vision.assets import AssetError, cache_dir, resolve_model
from vision.detectors import OnnxDetectorConfig, TensorRtDetectorConfig, UltralyticsDetectorConfig
from vision.onnx_model import file_sha256, import_onnxruntime
from vision.sources import SourceError, open_source

logger = logging.getLogger(__name__)

Verdict = tuple[Literal["ok", "warn", "fail"], str]
AnyDetectorConfig = OnnxDetectorConfig | UltralyticsDetectorConfig | TensorRtDetectorConfig
#: device nodes of an NVIDIA GPU: a discrete card, or a Jetson's integrated one
GPU_NODES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu", "/dev/nvmap")


def probe_camera(spec: str, fps: float, timeout_s: float) -> Verdict:
    """Open a camera source and wait for its first frame.

    Args:
        spec: the resolved source (``rtsp://…``, ``usb:N``, a file path).
        fps: the camera's nominal rate.
        timeout_s: how long the open and the first frame may take together.
    """
    result: list[Verdict] = []

    def read() -> None:
        source = open_source(spec, fps, start_utc_ms=0)
        t0 = time.monotonic()
        try:
            source.open()
            frame = source.read()
        except SourceError as exc:
            result.append(("fail", str(exc)))
            return
        finally:
            source.close()
        if frame is None:
            result.append(("fail", "opened, but delivered no frame (empty file)"))
            return
        h, w = frame.image.shape[:2]
        result.append(("ok", f"{w}x{h} frame in {time.monotonic() - t0:.2f} s"))

    thread = threading.Thread(target=read, name="footfall-doctor-camera", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not result:
        return "fail", f"no frame within {timeout_s:g} s"
    return result[0]


def probe_model(config: AnyDetectorConfig) -> Verdict:
    """Find the detector's model file and, for ONNX, open an ONNX Runtime session on it."""
    suffix = ".onnx" if isinstance(config, OnnxDetectorConfig) else ".pt"
    try:
        path = resolve_model(config.model, suffix)
    except AssetError as exc:
        return "fail", str(exc)
    size = f"{path.stat().st_size / 1e6:.1f} MB"
    if not isinstance(config, OnnxDetectorConfig):
        return "ok", f"{path} ({size}; loaded by {config.type} at start)"
    ort = import_onnxruntime()
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ONNX Runtime raises its own untyped errors for a bad file
        logger.debug("ONNX Runtime cannot load %s", path, exc_info=True)
        return "fail", f"{path}: ONNX Runtime cannot load it: {str(exc).splitlines()[0]}"
    inputs = ", ".join(f"{i.name}{list(i.shape)}" for i in session.get_inputs())
    reason = f"{path} ({size}, input {inputs})"
    if config.precision == "int8":
        digest = file_sha256(path)[:16]
        if not any((cache_dir() / "models").glob(f"{path.stem}-{digest}-*-int8*.onnx")):
            return "warn", f"{reason}; no INT8 model prepared yet (the box calibrates it at start)"
    return "ok", reason


def probe_gpu(config: AnyDetectorConfig) -> Verdict:
    """Whether the GPU the detector config asks for is there (``ok`` when none is asked)."""
    if isinstance(config, OnnxDetectorConfig) or (
        isinstance(config, UltralyticsDetectorConfig) and config.device == "cpu"
    ):
        return "ok", f"not used ({config.type} on the CPU)"
    nodes = [n for n in GPU_NODES if Path(n).exists()]
    if not nodes:
        return "fail", f"{config.type} on device {config.device} asked, but no NVIDIA device node"
    if isinstance(config, TensorRtDetectorConfig):
        if importlib.util.find_spec("tensorrt") is None:
            return "fail", "tensorrt asked, but the tensorrt package is not installed (JetPack)"
        import tensorrt

        from vision.detectors.tensorrt import engine_path

        try:
            engine = engine_path(config, str(tensorrt.__version__))
        except AssetError as exc:
            return "fail", str(exc)
        if not engine.is_file():
            return "warn", f"TensorRT {tensorrt.__version__}; engine not built yet (first start)"
        return "ok", f"TensorRT {tensorrt.__version__}, engine {engine.name}"
    if importlib.util.find_spec("torch") is None:
        return "fail", f"device {config.device} asked, but torch is not installed"
    import torch

    if not torch.cuda.is_available():
        return "fail", f"device {config.device} asked, but CUDA sees no GPU ({', '.join(nodes)})"
    return "ok", f"CUDA: {torch.cuda.get_device_name(0)}"
