"""ByteTrack per camera (the maintained ``trackers`` implementation), with anonymous ids.

One tracker instance per camera, fed the camera's real capture times, so that a
lost track is kept for a span of *seconds*, not a frame count that assumes 30 fps.
Track ids leave this module only as random 64-bit integers drawn from the OS
entropy pool: not sequential, not shared across cameras, not stable across
restarts.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.types import Detections, Tracks

REFERENCE_FPS = 30.0  # ``trackers`` counts its lost-track buffer in 30 fps frames


class TrackerSettings(BaseModel):
    """ByteTrack settings (``tracker:`` in the store config).

    Attributes:
        high_conf: detections at or above it are matched first.
        new_track_conf: an unmatched detection starts a track only at or above it.
        lost_track_seconds: how long a lost track can be re-found.
        min_frames: frames a track must be seen before it counts (suppresses flicker).
        min_iou: minimum box overlap to associate a detection with a track.
    """

    model_config = ConfigDict(extra="forbid")

    high_conf: float = Field(0.4, gt=0, lt=1)
    new_track_conf: float = Field(0.45, gt=0, lt=1)
    lost_track_seconds: float = Field(3.0, gt=0, le=60)
    min_frames: int = Field(3, ge=1, le=30)
    min_iou: float = Field(0.1, gt=0, lt=1)


def random_track_id() -> int:
    """A random signed 64-bit id (fits SQLite INTEGER)."""
    return int.from_bytes(secrets.token_bytes(8), "big", signed=True)


@dataclass(slots=True)
class _IdEntry:
    public_id: int
    last_seen_s: float


class PersonTracker:
    """ByteTrack for one camera, emitting random ids.

    Args:
        fps: the camera's real frame rate (used when frames carry no timestamps).
        settings: ByteTrack thresholds.
    """

    def __init__(self, fps: float, settings: TrackerSettings | None = None) -> None:
        from trackers import ByteTrackTracker

        self.settings = settings or TrackerSettings()
        s = self.settings
        self._tracker = ByteTrackTracker(
            lost_track_buffer=round(s.lost_track_seconds * REFERENCE_FPS),
            frame_rate=fps,
            track_activation_threshold=s.new_track_conf,
            minimum_consecutive_frames=s.min_frames,
            minimum_iou_threshold=s.min_iou,
            high_conf_det_threshold=s.high_conf,
        )
        self._ids: dict[int, _IdEntry] = {}

    def update(self, detections: Detections, t_s: float) -> Tracks:
        """Associate one frame's detections with tracks.

        Args:
            detections: person boxes of this frame.
            t_s: the frame's capture time in seconds (monotonic per camera).

        Returns:
            The confirmed tracks in this frame, with random public ids.
        """
        import supervision as sv

        sv_dets = sv.Detections(
            xyxy=detections.xyxy.astype(np.float32),
            confidence=detections.conf,
            class_id=detections.cls,
        )
        out = self._tracker.update(sv_dets, timestamp=t_s)
        internal = np.asarray(out.tracker_id, dtype=np.int64)
        keep = internal >= 0
        public = np.fromiter((self._public_id(int(i), t_s) for i in internal[keep]), dtype=np.int64)
        self._forget_stale(t_s)
        conf = out.confidence if out.confidence is not None else np.ones(len(out), np.float32)
        return Tracks(
            np.asarray(out.xyxy, dtype=np.float32)[keep],
            np.asarray(conf, dtype=np.float32)[keep],
            public,
        )

    def _public_id(self, internal: int, t_s: float) -> int:
        entry = self._ids.get(internal)
        if entry is None:
            entry = self._ids[internal] = _IdEntry(random_track_id(), t_s)
        entry.last_seen_s = t_s
        return entry.public_id

    def _forget_stale(self, t_s: float) -> None:
        horizon = t_s - self.settings.lost_track_seconds - 1.0
        for key in [k for k, e in self._ids.items() if e.last_seen_s < horizon]:
            del self._ids[key]
