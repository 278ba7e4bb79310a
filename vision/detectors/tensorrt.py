"""TensorRT on NVIDIA Jetson: an FP16 engine built on the device and cached.

The engine is built once from the ``.pt`` weights by ultralytics' exporter (on the
device itself, since engines are tied to the GPU and TensorRT version) and cached
under the model's hash, input size, precision and TensorRT version. Nothing is
downloaded. Inference then runs through :class:`UltralyticsDetector`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field

from vision.assets import cache_dir, resolve_model
from vision.detectors.base import DetectorSettings
from vision.detectors.ultralytics import UltralyticsDetector, import_ultralytics
from vision.onnx_model import file_sha256

logger = logging.getLogger(__name__)


class TensorRtDetectorConfig(DetectorSettings):
    """``type: tensorrt`` — a TensorRT engine on an NVIDIA GPU (Jetson).

    Attributes:
        device: CUDA device index.
        fp16: build the engine in FP16.
        workspace_gb: TensorRT builder workspace.
    """

    type: Literal["tensorrt"] = "tensorrt"
    device: str = "0"
    fp16: bool = True
    workspace_gb: float = Field(2.0, gt=0)


def engine_path(config: TensorRtDetectorConfig, trt_version: str) -> Path:
    """Cache path of the engine for these weights, settings and TensorRT version."""
    weights = resolve_model(config.model, ".pt")
    h, w = config.input_size
    precision = "fp16" if config.fp16 else "fp32"
    name = f"{weights.stem}-{file_sha256(weights)[:16]}-{h}x{w}-{precision}-trt{trt_version}"
    return cache_dir() / "engines" / f"{name}.engine"


def build_engine(config: TensorRtDetectorConfig) -> Path:
    """Return the cached engine, building it on this device the first time."""
    import tensorrt

    dst = engine_path(config, str(tensorrt.__version__))
    if dst.is_file():
        return dst
    ultralytics = import_ultralytics()
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        weights = Path(tmp) / "model.pt"
        shutil.copyfile(resolve_model(config.model, ".pt"), weights)
        logger.info("building TensorRT engine %s (minutes, once)", dst.name)
        exported = ultralytics.YOLO(str(weights)).export(
            format="engine",
            imgsz=list(config.input_size),
            half=config.fp16,
            device=config.device,
            workspace=config.workspace_gb,
            verbose=False,
        )
        os.replace(exported, dst)
    return dst


class TensorRtDetector(UltralyticsDetector):
    """Runs the cached TensorRT engine."""

    def __init__(self, config: TensorRtDetectorConfig) -> None:
        super().__init__(config, config.device, weights=build_engine(config))
