"""YOLOv8-family pre- and post-processing in vectorised numpy (no torch).

Two output layouts are understood:

* ``raw``: the detect head before its box decoding, ``(1, 4 * reg_max + nc, N)``
  (what :func:`vision.onnx_model.prepare_onnx` cuts an export down to, so that
  one model runs at any input size that is a multiple of 32);
* ``decoded``: the standard export, ``(1, 4 + nc, N)`` with ``cx, cy, w, h`` in
  input pixels followed by per-class scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from vision.types import Detections, FloatArray

STRIDES = (8, 16, 32)
REG_MAX = 16
PAD_VALUE = 114


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a source image was fitted into the network input."""

    scale: float
    pad_x: float
    pad_y: float
    src_w: int
    src_h: int


def letterbox(
    image: npt.NDArray[np.uint8], input_hw: tuple[int, int]
) -> tuple[FloatArray, Letterbox]:
    """Resize keeping the aspect ratio, pad to ``input_hw`` and make an NCHW RGB blob.

    Follows ultralytics' ``LetterBox(auto=False, center=True)`` so boxes match it.

    Args:
        image: BGR ``uint8`` image ``(h, w, 3)``.
        input_hw: network input ``(height, width)``.

    Returns:
        The ``(1, 3, H, W)`` float32 blob in ``[0, 1]`` and the letterbox geometry.
    """
    import cv2  # here, not at the top: a config (its detector settings) loads without OpenCV

    h, w = image.shape[:2]
    in_h, in_w = input_hw
    resized: npt.NDArray[np.uint8] = image
    r = min(in_h / h, in_w / w)
    new_w, new_h = round(w * r), round(h * r)
    dw, dh = (in_w - new_w) / 2, (in_h - new_h) / 2
    if (new_w, new_h) != (w, h):
        resized = np.asarray(
            cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), np.uint8
        )
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    if top or bottom or left or right:
        resized = np.asarray(
            cv2.copyMakeBorder(
                resized, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
            ),
            np.uint8,
        )
    blob = np.asarray(
        cv2.dnn.blobFromImage(resized, scalefactor=1 / 255.0, swapRB=True), np.float32
    )
    return blob, Letterbox(r, float(left), float(top), w, h)


def make_anchors(input_hw: tuple[int, int]) -> tuple[FloatArray, FloatArray]:
    """Anchor centres ``(N, 2)`` in grid units and their strides ``(N,)``, in head order."""
    points, strides = [], []
    for s in STRIDES:
        gh, gw = input_hw[0] // s, input_hw[1] // s
        sy, sx = np.meshgrid(np.arange(gh) + 0.5, np.arange(gw) + 0.5, indexing="ij")
        points.append(np.stack([sx.ravel(), sy.ravel()], axis=1))
        strides.append(np.full(gh * gw, s))
    return (
        np.concatenate(points).astype(np.float32),
        np.concatenate(strides).astype(np.float32),
    )


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float32)


class YoloDecoder:
    """Turns a YOLOv8 output tensor into person detections in source pixels.

    Args:
        input_hw: network input ``(height, width)``.
        layout: ``"raw"`` or ``"decoded"`` (see module docs).
        person_classes: model class ids that are people; the others are ignored.
        conf: minimum score.
        iou: NMS IoU threshold (class-agnostic: one person boxed as two classes
            counts once).
        max_det: at most this many boxes per frame.
    """

    def __init__(
        self,
        input_hw: tuple[int, int],
        layout: str,
        person_classes: tuple[int, ...],
        conf: float,
        iou: float,
        max_det: int = 300,
    ) -> None:
        if layout not in ("raw", "decoded"):
            raise ValueError(f"unknown YOLO output layout {layout!r}")
        self.layout = layout
        self.person_classes = np.asarray(person_classes, dtype=np.int64)
        self.conf = conf
        self.iou = iou
        self.max_det = max_det
        self._anchors, self._strides = make_anchors(input_hw)
        self._bins = np.arange(REG_MAX, dtype=np.float32)

    def __call__(self, output: FloatArray, lb: Letterbox) -> Detections:
        """Decode one image's output ``(1, C, N)`` into detections."""
        out = output[0]
        box_rows = 4 * REG_MAX if self.layout == "raw" else 4
        scores = out[box_rows + self.person_classes]  # (P, N)
        if self.layout == "raw":
            scores = _sigmoid(scores)
        best = scores.argmax(axis=0)
        best_score = scores[best, np.arange(scores.shape[1])]
        keep = np.flatnonzero(best_score > self.conf)
        if keep.size == 0:
            return Detections.empty()
        conf = best_score[keep].astype(np.float32)
        cls = self.person_classes[best[keep]]
        xyxy = self._boxes(out, keep)
        # Class-agnostic NMS (OpenCV's C++ implementation, sorted by score).
        import cv2

        wh = xyxy[:, 2:] - xyxy[:, :2]
        kept = cv2.dnn.NMSBoxes(
            np.concatenate([xyxy[:, :2], wh], axis=1).tolist(), conf.tolist(), self.conf, self.iou
        )
        idx = np.asarray(kept, dtype=np.int64).reshape(-1)[: self.max_det]
        xyxy = xyxy[idx]
        xyxy[:, [0, 2]] = (xyxy[:, [0, 2]] - lb.pad_x) / lb.scale
        xyxy[:, [1, 3]] = (xyxy[:, [1, 3]] - lb.pad_y) / lb.scale
        np.clip(xyxy[:, [0, 2]], 0, lb.src_w, out=xyxy[:, [0, 2]])
        np.clip(xyxy[:, [1, 3]], 0, lb.src_h, out=xyxy[:, [1, 3]])
        return Detections(xyxy.astype(np.float32), conf[idx], cls[idx].astype(np.int64))

    def _boxes(self, out: FloatArray, keep: npt.NDArray[np.int64]) -> FloatArray:
        if self.layout == "decoded":
            cx, cy, w, h = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
            return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        # Distribution focal loss: softmax over REG_MAX bins, expectation = distance.
        logits = out[: 4 * REG_MAX, keep].reshape(4, REG_MAX, -1)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        dist = (e * self._bins[None, :, None]).sum(axis=1) / e.sum(axis=1)  # (4, K) l,t,r,b
        anchors = self._anchors[keep]
        stride = self._strides[keep]
        x1 = (anchors[:, 0] - dist[0]) * stride
        y1 = (anchors[:, 1] - dist[1]) * stride
        x2 = (anchors[:, 0] + dist[2]) * stride
        y2 = (anchors[:, 1] + dist[3]) * stride
        return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)
