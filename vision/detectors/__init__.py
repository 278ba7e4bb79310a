"""Detector backends, picked by the config's ``type`` (like Frigate's detector plugins).

Importing this package is cheap: each backend imports its runtime (ONNX Runtime,
ultralytics/torch, TensorRT) only when it is built.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
from pydantic import Field

from vision.detectors.base import Detector, DetectorSettings
from vision.detectors.onnx import OnnxDetector, OnnxDetectorConfig
from vision.detectors.tensorrt import TensorRtDetector, TensorRtDetectorConfig
from vision.detectors.ultralytics import UltralyticsDetector, UltralyticsDetectorConfig

DetectorConfig = Annotated[
    OnnxDetectorConfig | UltralyticsDetectorConfig | TensorRtDetectorConfig,
    Field(discriminator="type"),
]

__all__ = [
    "Detector",
    "DetectorConfig",
    "DetectorSettings",
    "OnnxDetectorConfig",
    "TensorRtDetectorConfig",
    "UltralyticsDetectorConfig",
    "create_detector",
]


def create_detector(
    config: OnnxDetectorConfig | UltralyticsDetectorConfig | TensorRtDetectorConfig,
    calibration_images: Iterable[npt.NDArray[np.uint8]] | None = None,
    model_cache: Path | None = None,
) -> Detector:
    """Build the backend the config names.

    Args:
        config: one of the backend configs (discriminated by ``type``).
        calibration_images: BGR frames, used by ``onnx`` INT8 the first time.
        model_cache: override of the prepared-model cache directory.
    """
    if isinstance(config, OnnxDetectorConfig):
        return OnnxDetector(config, calibration_images, model_cache)
    if isinstance(config, TensorRtDetectorConfig):
        return TensorRtDetector(config)
    return UltralyticsDetector(config, config.device)
