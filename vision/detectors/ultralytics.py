"""The ultralytics backend (``.pt``, or a TensorRT ``.engine`` it loads). Imports torch lazily.

ultralytics is kept behind this one module: it is told to stay offline and never
auto-install before it is imported, and it gets its settings from our config.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from vision.assets import cache_dir, resolve_model
from vision.detectors.base import DetectorSettings
from vision.types import Detections

logger = logging.getLogger(__name__)


class UltralyticsDetectorConfig(DetectorSettings):
    """``type: ultralytics`` — PyTorch weights through ultralytics.

    Attributes:
        device: torch device string (``cpu``, ``0``).
    """

    type: Literal["ultralytics"] = "ultralytics"
    device: str = "cpu"


def import_ultralytics() -> Any:
    """Import ultralytics offline, with its settings dir in our cache.

    Returns:
        The ``ultralytics`` module.
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    config_dir = cache_dir() / "ultralytics"
    config_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    import ultralytics

    return ultralytics


class UltralyticsDetector:
    """YOLOv8-family detector through ``ultralytics.YOLO``.

    Args:
        config: backend settings.
        device: torch device string.
        weights: a model file to load instead of ``config.model`` (the TensorRT
            backend passes its cached engine here).
    """

    def __init__(self, config: DetectorSettings, device: str, weights: Path | None = None) -> None:
        ultralytics = import_ultralytics()
        self.config = config
        self.device = device
        source = weights or resolve_model(config.model, ".pt")
        self._model = ultralytics.YOLO(str(source), task="detect")

    def prepare(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Ultralytics does its own letterboxing: pass the frame through."""
        return image

    def detect(self, prepared: npt.NDArray[np.uint8]) -> Detections:
        """Run ultralytics' predictor on one BGR frame."""
        (result,) = self._model.predict(
            prepared,
            imgsz=list(self.config.input_size),
            conf=self.config.conf,
            iou=self.config.iou,
            classes=self.config.person_classes,
            agnostic_nms=True,
            device=self.device,
            verbose=False,
        )
        boxes = result.boxes
        return Detections(
            boxes.xyxy.cpu().numpy().astype(np.float32),
            boxes.conf.cpu().numpy().astype(np.float32),
            boxes.cls.cpu().numpy().astype(np.int64),
        )
