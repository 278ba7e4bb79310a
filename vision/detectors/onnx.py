"""ONNX Runtime on the CPU: the box's default backend. Never imports torch."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from vision.assets import cache_dir, resolve_model
from vision.detectors.base import DetectorSettings
from vision.onnx_model import PreparedModel, import_onnxruntime, prepare_onnx
from vision.types import Detections, FloatArray
from vision.yolo import Letterbox, YoloDecoder, letterbox

logger = logging.getLogger(__name__)


class OnnxDetectorConfig(DetectorSettings):
    """``type: onnx`` — ONNX Runtime CPU execution.

    Attributes:
        precision: ``int8`` (static QDQ, calibrated on the camera's own frames
            held in RAM) or ``fp32``.
        threads: intra-op threads; 0 means every core.
        calibration_frames: frames used once to calibrate INT8.
    """

    type: Literal["onnx"] = "onnx"
    precision: Literal["fp32", "int8"] = "int8"
    threads: int = Field(0, ge=0)
    calibration_frames: int = Field(32, ge=4, le=512)


class OnnxDetector:
    """YOLOv8-family detector on ONNX Runtime.

    Args:
        config: backend settings.
        calibration_images: BGR frames for INT8 calibration (only needed when the
            quantised model is not cached yet).
        model_cache: where prepared models are cached.
    """

    def __init__(
        self,
        config: OnnxDetectorConfig,
        calibration_images: Iterable[npt.NDArray[np.uint8]] | None = None,
        model_cache: Path | None = None,
    ) -> None:
        ort = import_onnxruntime()  # telemetry off before the session
        self.config = config
        self.input_hw = config.input_size
        blobs = (
            None
            if calibration_images is None
            else (letterbox(img, self.input_hw)[0] for img in calibration_images)
        )
        self.model: PreparedModel = prepare_onnx(
            resolve_model(config.model, ".onnx"),
            self.input_hw,
            config.precision,
            (model_cache or cache_dir() / "models"),
            blobs,
        )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = config.threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            str(self.model.path), opts, providers=["CPUExecutionProvider"]
        )
        self._decode = YoloDecoder(
            self.input_hw,
            self.model.layout,
            tuple(config.person_classes),
            config.conf,
            config.iou,
        )
        logger.info(
            "onnx detector %s (%s, %s) at %sx%s",
            self.model.path.name,
            config.precision,
            self.model.layout,
            *self.input_hw,
        )

    def prepare(self, image: npt.NDArray[np.uint8]) -> tuple[FloatArray, Letterbox]:
        """Letterbox a BGR frame into the network's input blob."""
        return letterbox(image, self.input_hw)

    def detect(self, prepared: tuple[FloatArray, Letterbox]) -> Detections:
        """Run the network on a prepared blob."""
        blob, lb = prepared
        (out,) = self._session.run(None, {self.model.input_name: blob})
        return self._decode(out, lb)
