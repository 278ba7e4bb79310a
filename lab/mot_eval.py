"""Evaluate a multi-object tracker against MOTChallenge ground truth.

Both the ground truth and the tracker output are MOTChallenge text files
(:mod:`vision.mot_format`, the format ``footfall vision --mot-out`` writes). The
metrics come from maintained libraries, never from code of ours:

* CLEAR-MOT (MOTA, MOTP, switches, ...) and identity (IDF1, IDP, IDR) metrics
  from py-motmetrics (``motmetrics``), matching boxes at an IoU threshold.
* HOTA with DetA, AssA and LocA from TrackEval (the ``trackeval`` package),
  averaged over the localisation thresholds 0.05, 0.10, ..., 0.95 exactly as
  the MOTChallenge leaderboard reports it.

MOTChallenge conventions that apply: ground-truth rows whose ``conf`` column
(the "consider" flag) is 0 are dropped before matching, as TrackEval does and as
motmetrics documents for its loader; the tracker's ``conf`` column plays no role.
The class-based distractor filtering that TrackEval applies to MOT17/MOT20 is
not done: footfall ground truth has one class.

Note on motmetrics 1.4.0 (the newest release on PyPI): its
``utils.compare_to_groundtruth`` calls ``distances.iou_matrix``, which uses
``np.asfarray``, removed in NumPy 2 (cheind/py-motmetrics#199, fixed upstream by
#200 but not released). So this module feeds ``motmetrics.MOTAccumulator`` with
the same loop and the same ``distances.boxiou`` that ``compare_to_groundtruth``
uses, which gives identical events without patching NumPy or motmetrics.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import motmetrics as mm
import numpy as np
import numpy.typing as npt
import pandas as pd
from trackeval.metrics import HOTA

from vision.mot_format import BOX_COLUMNS, read_mot

logger = logging.getLogger(__name__)

__all__ = [
    "MotScores",
    "evaluate_mot",
    "format_scores",
]

# The py-motmetrics metrics that MotScores carries, by their motmetrics names.
_MM_METRICS = [
    "mota",
    "motp",
    "idf1",
    "idp",
    "idr",
    "recall",
    "precision",
    "num_switches",
    "num_fragmentations",
    "num_false_positives",
    "num_misses",
    "mostly_tracked",
    "partially_tracked",
    "mostly_lost",
    "num_frames",
    "num_unique_objects",
    "num_objects",
    "num_predictions",
]


@dataclasses.dataclass(frozen=True)
class MotScores:
    """Scores of one tracker output against one ground-truth sequence.

    Ratios are in [0, 1] (MOTA can be negative); a ratio that is undefined, such
    as MOTA without any ground-truth box, is NaN.

    Attributes:
        mota: Multiple Object Tracking Accuracy (py-motmetrics).
        motp: Mean IoU of the matched boxes (MOTChallenge/TrackEval convention,
            higher is better; py-motmetrics itself reports 1 - this).
        idf1: Identity F1 score (py-motmetrics).
        idp: Identity precision.
        idr: Identity recall.
        recall: Share of ground-truth boxes matched.
        precision: Share of predicted boxes matched.
        hota: Higher Order Tracking Accuracy, mean over the alpha thresholds (TrackEval).
        deta: Detection accuracy, mean over alpha.
        assa: Association accuracy, mean over alpha.
        loca: Localisation accuracy, mean over alpha.
        detre: Detection recall, mean over alpha.
        detpr: Detection precision, mean over alpha.
        assre: Association recall, mean over alpha.
        asspr: Association precision, mean over alpha.
        num_switches: Identity switches.
        num_fragmentations: Interruptions of a ground-truth track's coverage.
        num_false_positives: Predicted boxes matched to no ground truth.
        num_misses: Ground-truth boxes matched to no prediction.
        mostly_tracked: Ground-truth tracks covered for at least 80% of their life.
        partially_tracked: Ground-truth tracks covered for 20-80% of their life.
        mostly_lost: Ground-truth tracks covered for less than 20% of their life.
        num_frames: Frames that hold a ground-truth or a predicted box.
        num_gt_ids: Distinct ground-truth ids (after dropping ignored rows).
        num_pred_ids: Distinct predicted track ids.
        num_gt_dets: Ground-truth boxes (after dropping ignored rows).
        num_pred_dets: Predicted boxes.
        iou_threshold: The IoU needed for a CLEAR/identity match (HOTA sweeps its own).
    """

    mota: float
    motp: float
    idf1: float
    idp: float
    idr: float
    recall: float
    precision: float
    hota: float
    deta: float
    assa: float
    loca: float
    detre: float
    detpr: float
    assre: float
    asspr: float
    num_switches: int
    num_fragmentations: int
    num_false_positives: int
    num_misses: int
    mostly_tracked: int
    partially_tracked: int
    mostly_lost: int
    num_frames: int
    num_gt_ids: int
    num_pred_ids: int
    num_gt_dets: int
    num_pred_dets: int
    iou_threshold: float

    def as_dict(self) -> dict[str, float | int]:
        """Returns the scores as a plain dict, in field order (JSON-friendly)."""
        return dataclasses.asdict(self)


def _iou(
    gt_boxes: npt.NDArray[np.float64], pred_boxes: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """IoU matrix (ground truth x predictions) of ``x, y, w, h`` boxes, by motmetrics."""
    if len(gt_boxes) == 0 or len(pred_boxes) == 0:
        return np.zeros((len(gt_boxes), len(pred_boxes)), dtype=np.float64)
    iou = mm.distances.boxiou(gt_boxes[:, None], pred_boxes[None, :])
    return np.asarray(iou, dtype=np.float64).reshape(len(gt_boxes), len(pred_boxes))


def _dense_ids(ids: npt.NDArray[np.int64]) -> dict[int, int]:
    """Maps each distinct id to 0, 1, ... in ascending order (TrackEval wants dense ids)."""
    return {int(value): index for index, value in enumerate(np.unique(ids))}


def _match_inputs(
    gt: pd.DataFrame, pred: pd.DataFrame, iou_threshold: float
) -> tuple[Any, dict[str, Any]]:
    """Builds the motmetrics accumulator and the TrackEval HOTA input together.

    Both walk the union of the frames of ``gt`` and ``pred`` and use one IoU
    matrix per frame, so the two libraries see exactly the same boxes.
    """
    max_distance = 1.0 - iou_threshold
    gt_index = _dense_ids(gt.index.get_level_values("Id").to_numpy())
    pred_index = _dense_ids(pred.index.get_level_values("Id").to_numpy())
    gt_frames = {int(fid): frame for fid, frame in gt[BOX_COLUMNS].groupby(level="FrameId")}
    pred_frames = {int(fid): frame for fid, frame in pred[BOX_COLUMNS].groupby(level="FrameId")}
    empty = gt[BOX_COLUMNS].iloc[:0]

    accumulator = mm.MOTAccumulator()
    gt_ids: list[npt.NDArray[np.intp]] = []
    pred_ids: list[npt.NDArray[np.intp]] = []
    similarities: list[npt.NDArray[np.float64]] = []
    for fid in sorted(gt_frames.keys() | pred_frames.keys()):
        gt_t = gt_frames.get(fid, empty)
        pred_t = pred_frames.get(fid, empty)
        oids = gt_t.index.get_level_values("Id").to_numpy()
        hids = pred_t.index.get_level_values("Id").to_numpy()
        iou = _iou(gt_t.to_numpy(dtype=np.float64), pred_t.to_numpy(dtype=np.float64))
        # As motmetrics.utils.compare_to_groundtruth(..., "iou", distth=1 - iou_threshold):
        # distance 1 - IoU, pairs beyond the threshold marked NaN ("do not pair").
        distance = 1.0 - iou
        accumulator.update(
            oids, hids, np.where(distance > max_distance, np.nan, distance), frameid=fid
        )
        gt_ids.append(np.asarray([gt_index[int(i)] for i in oids], dtype=np.intp))
        pred_ids.append(np.asarray([pred_index[int(i)] for i in hids], dtype=np.intp))
        similarities.append(iou)

    hota_input: dict[str, Any] = {
        "num_timesteps": len(gt_ids),
        "num_gt_ids": len(gt_index),
        "num_tracker_ids": len(pred_index),
        "num_gt_dets": len(gt),
        "num_tracker_dets": len(pred),
        "gt_ids": gt_ids,
        "tracker_ids": pred_ids,
        "similarity_scores": similarities,
    }
    return accumulator, hota_input


def evaluate_mot(gt: str | Path, result: str | Path, *, iou_threshold: float = 0.5) -> MotScores:
    """Scores a tracker's MOTChallenge output against MOTChallenge ground truth.

    Ground-truth rows with ``conf`` 0 are ignored. Frames are the union of the
    frames in both files: a frame only in the result counts its boxes as false
    positives, one only in the ground truth counts its boxes as misses.

    Args:
        gt: The ground-truth file.
        result: The tracker's output file.
        iou_threshold: The IoU a prediction needs with a ground-truth box to
            match it for the CLEAR-MOT and identity metrics (MOTChallenge uses
            0.5). HOTA does not use it: it averages over thresholds 0.05-0.95.

    Returns:
        The scores.

    Raises:
        ValueError: ``iou_threshold`` is not in (0, 1].
        MotFormatError: Either file is malformed.
        OSError: Either file cannot be read.
    """
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], not {iou_threshold}")
    gt_df = read_mot(gt)
    pred_df = read_mot(result)
    ignored = gt_df["Confidence"] == 0
    if ignored.any():
        logger.info("Ignoring %d ground-truth rows with conf 0 in %s", int(ignored.sum()), gt)
        gt_df = gt_df[~ignored]

    accumulator, hota_input = _match_inputs(gt_df, pred_df, iou_threshold)
    clear = mm.metrics.create().compute(accumulator, metrics=_MM_METRICS, return_dataframe=False)
    hota = HOTA().eval_sequence(hota_input)

    def mean(field: str) -> float:
        return float(np.mean(hota[field]))

    scores = MotScores(
        mota=float(clear["mota"]),
        motp=1.0 - float(clear["motp"]),
        idf1=float(clear["idf1"]),
        idp=float(clear["idp"]),
        idr=float(clear["idr"]),
        recall=float(clear["recall"]),
        precision=float(clear["precision"]),
        hota=mean("HOTA"),
        deta=mean("DetA"),
        assa=mean("AssA"),
        loca=mean("LocA"),
        detre=mean("DetRe"),
        detpr=mean("DetPr"),
        assre=mean("AssRe"),
        asspr=mean("AssPr"),
        num_switches=int(clear["num_switches"]),
        num_fragmentations=int(clear["num_fragmentations"]),
        num_false_positives=int(clear["num_false_positives"]),
        num_misses=int(clear["num_misses"]),
        mostly_tracked=int(clear["mostly_tracked"]),
        partially_tracked=int(clear["partially_tracked"]),
        mostly_lost=int(clear["mostly_lost"]),
        num_frames=int(clear["num_frames"]),
        num_gt_ids=int(hota_input["num_gt_ids"]),
        num_pred_ids=int(hota_input["num_tracker_ids"]),
        num_gt_dets=int(clear["num_objects"]),
        num_pred_dets=int(clear["num_predictions"]),
        iou_threshold=iou_threshold,
    )
    logger.debug(
        "Evaluated %s against %s: MOTA %.4f, IDF1 %.4f, HOTA %.4f",
        result,
        gt,
        scores.mota,
        scores.idf1,
        scores.hota,
    )
    return scores


_TABLE_ROWS: tuple[tuple[str, str], ...] = (
    ("HOTA", "hota"),
    ("DetA", "deta"),
    ("AssA", "assa"),
    ("LocA", "loca"),
    ("MOTA", "mota"),
    ("MOTP", "motp"),
    ("IDF1", "idf1"),
    ("IDP", "idp"),
    ("IDR", "idr"),
    ("Recall", "recall"),
    ("Precision", "precision"),
    ("ID switches", "num_switches"),
    ("Fragmentations", "num_fragmentations"),
    ("False positives", "num_false_positives"),
    ("Misses", "num_misses"),
    ("Mostly tracked", "mostly_tracked"),
    ("Partially tracked", "partially_tracked"),
    ("Mostly lost", "mostly_lost"),
    ("Frames", "num_frames"),
    ("GT ids", "num_gt_ids"),
    ("Predicted ids", "num_pred_ids"),
    ("GT boxes", "num_gt_dets"),
    ("Predicted boxes", "num_pred_dets"),
    ("IoU threshold", "iou_threshold"),
)


def format_scores(scores: MotScores) -> str:
    """Renders scores as a two-column text table, values right-aligned.

    Ratios are shown with 4 decimals, counts as integers, undefined values as
    ``n/a``.

    Args:
        scores: The scores to show.

    Returns:
        The table, one metric a line, without a trailing newline.
    """
    values = scores.as_dict()
    cells: list[tuple[str, str]] = [("metric", "value")]
    for label, field in _TABLE_ROWS:
        value = values[field]
        if isinstance(value, int):
            text = str(value)
        elif math.isnan(value):
            text = "n/a"
        else:
            text = f"{value:.4f}"
        cells.append((label, text))
    label_width = max(len(label) for label, _ in cells)
    value_width = max(len(text) for _, text in cells)
    return "\n".join(f"{label:<{label_width}}  {text:>{value_width}}" for label, text in cells)
