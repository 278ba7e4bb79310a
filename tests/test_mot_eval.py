"""lab.mot_eval and vision.mot_format on the MOTChallenge sequences that py-motmetrics ships."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import motmetrics as mm
import numpy as np
import pandas as pd
import pytest

from lab.mot_eval import MotScores, evaluate_mot, format_scores
from vision.mot_format import MotFormatError, MotRow, read_mot, write_mot

DATA_DIR = Path(mm.__file__).parent / "data"
SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")

# CLEAR-MOT and identity references: py-motmetrics 1.4.0,
# motmetrics/tests/test_metrics.py::test_motchallenge_files (cheind/py-motmetrics), which
# asserts these (atol 1e-3) for data/<seq>/test.txt against data/<seq>/gt.txt at IoU 0.5.
# Its motp is the mean distance 1 - IoU; ours is the mean IoU, hence "1 - ...".
MOTMETRICS_REFERENCE: dict[str, dict[str, float]] = {
    "TUD-Campus": {
        "idf1": 0.557659,
        "idp": 0.729730,
        "idr": 0.451253,
        "recall": 0.582173,
        "precision": 0.941441,
        "num_gt_ids": 8,
        "mostly_tracked": 1,
        "partially_tracked": 6,
        "mostly_lost": 1,
        "num_false_positives": 13,
        "num_misses": 150,
        "num_switches": 7,
        "num_fragmentations": 7,
        "mota": 0.526462,
        "motp": 1 - 0.277201,
    },
    "TUD-Stadtmitte": {
        "idf1": 0.644619,
        "idp": 0.819760,
        "idr": 0.531142,
        "recall": 0.608997,
        "precision": 0.939920,
        "num_gt_ids": 10,
        "mostly_tracked": 5,
        "partially_tracked": 4,
        "mostly_lost": 1,
        "num_false_positives": 45,
        "num_misses": 452,
        "num_switches": 7,
        "num_fragmentations": 6,
        "mota": 0.564014,
        "motp": 1 - 0.345904,
    },
}

# HOTA references: TrackEval 1.3.0's full MOTChallenge pipeline on the same two files
# (trackeval.Evaluator with datasets.MotChallenge2DBox, BENCHMARK "MOT15", metrics HOTA,
# CLEAR, Identity and Count; seqinfo.ini seqLength = last frame). Its table printed
# HOTA/DetA/AssA/LocA 39.14/41.805/36.912/77.005 (Campus) and 39.785/39.227/40.884/73.752
# (Stadtmitte); below are its per-alpha means rounded to 6 places. The same run's CLEAR
# and Identity tables agree with MOTMETRICS_REFERENCE (MOTP 72.28 and 65.41 there).
TRACKEVAL_REFERENCE: dict[str, dict[str, float]] = {
    "TUD-Campus": {
        "hota": 0.391397,
        "deta": 0.418047,
        "assa": 0.369121,
        "loca": 0.770052,
        "detre": 0.441577,
        "detpr": 0.714083,
        "assre": 0.383225,
        "asspr": 0.754050,
    },
    "TUD-Stadtmitte": {
        "hota": 0.397849,
        "deta": 0.392268,
        "assa": 0.408841,
        "loca": 0.737521,
        "detre": 0.413131,
        "detpr": 0.637622,
        "assre": 0.449219,
        "asspr": 0.631203,
    },
}

# An independent, published check: EvalDeT (tadejsv/EvalDeT),
# tests/integration/test_integration_mot.py, quotes these as "results obtained with
# TrackEval" for its copies of the same TUD files (asserted there to 2 decimals).
EVALDET_TRACKEVAL_REFERENCE: dict[str, dict[str, float]] = {
    "TUD-Campus": {"hota": 0.3914, "deta": 0.4181, "assa": 0.3691, "loca": 0.7701},
    "TUD-Stadtmitte": {"hota": 0.3979, "deta": 0.3923, "assa": 0.4085, "loca": 0.7375},
}

# Box, frame and id counts of the two sequences (TrackEval's Count metric agrees).
COUNTS: dict[str, dict[str, int]] = {
    "TUD-Campus": {"num_frames": 71, "num_gt_dets": 359, "num_pred_dets": 222, "num_pred_ids": 13},
    "TUD-Stadtmitte": {
        "num_frames": 179,
        "num_gt_dets": 1156,
        "num_pred_dets": 749,
        "num_pred_ids": 12,
    },
}


def _gt(sequence: str) -> Path:
    return DATA_DIR / sequence / "gt.txt"


def _test(sequence: str) -> Path:
    return DATA_DIR / sequence / "test.txt"


def _rows(frame: pd.DataFrame) -> list[MotRow]:
    return [
        MotRow(int(fid), int(tid), r.X, r.Y, r.Width, r.Height, r.Confidence)
        for (fid, tid), r in zip(frame.index, frame.itertuples(index=False), strict=True)
    ]


@pytest.fixture(scope="module")
def tud_scores() -> dict[str, MotScores]:
    return {sequence: evaluate_mot(_gt(sequence), _test(sequence)) for sequence in SEQUENCES}


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_clear_and_identity_match_motmetrics_reference(
    tud_scores: dict[str, MotScores], sequence: str
) -> None:
    scores = tud_scores[sequence].as_dict()
    for name, expected in MOTMETRICS_REFERENCE[sequence].items():
        if isinstance(expected, int):
            assert scores[name] == expected, name
        else:
            assert scores[name] == pytest.approx(expected, abs=1e-6), name


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_hota_matches_trackeval_reference(tud_scores: dict[str, MotScores], sequence: str) -> None:
    scores = tud_scores[sequence].as_dict()
    for name, expected in TRACKEVAL_REFERENCE[sequence].items():
        assert scores[name] == pytest.approx(expected, abs=1e-6), name
    for name, expected in EVALDET_TRACKEVAL_REFERENCE[sequence].items():
        assert scores[name] == pytest.approx(expected, abs=1e-3), name


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_counts(tud_scores: dict[str, MotScores], sequence: str) -> None:
    scores = tud_scores[sequence]
    assert {name: getattr(scores, name) for name in COUNTS[sequence]} == COUNTS[sequence]
    assert scores.iou_threshold == 0.5
    # Every ground-truth box is either matched or missed.
    assert scores.num_gt_dets == pytest.approx(
        scores.recall * scores.num_gt_dets + scores.num_misses
    )


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_hota_is_the_alpha_mean_of_sqrt_deta_assa(
    tud_scores: dict[str, MotScores], sequence: str
) -> None:
    scores = tud_scores[sequence]
    assert 0 < scores.hota < 1
    geometric = math.sqrt(scores.deta * scores.assa)
    # HOTA is mean_a sqrt(DetA_a * AssA_a): by Cauchy-Schwarz at most sqrt(DetA * AssA) of
    # the means, and close to it when the per-alpha curves are smooth.
    assert scores.hota <= geometric + 1e-12
    assert scores.hota == pytest.approx(geometric, abs=0.02)


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_ground_truth_against_itself_is_perfect(sequence: str) -> None:
    scores = evaluate_mot(_gt(sequence), _gt(sequence))
    for name in ("hota", "deta", "assa", "loca", "mota", "motp", "idf1", "recall", "precision"):
        assert getattr(scores, name) == pytest.approx(1.0, abs=1e-12), name
    assert scores.num_switches == scores.num_false_positives == scores.num_misses == 0
    assert scores.num_pred_ids == scores.num_gt_ids


@pytest.mark.parametrize("sequence", SEQUENCES)
def test_ids_permuted_mid_sequence_hurt_association_not_detection(
    tmp_path: Path, sequence: str
) -> None:
    gt = read_mot(_gt(sequence))
    frames = gt.index.get_level_values("FrameId")
    ids = sorted(set(gt.index.get_level_values("Id")))
    rotate = dict(zip(ids, ids[1:] + ids[:1], strict=True))
    middle = int(np.median(frames))
    rows = [
        row._replace(track_id=rotate[row.track_id]) if row.frame > middle else row
        for row in _rows(gt)
    ]
    permuted = tmp_path / "permuted.txt"
    write_mot(rows, permuted)

    scores = evaluate_mot(_gt(sequence), permuted)
    assert scores.deta == pytest.approx(1.0, abs=1e-12)
    assert scores.loca == pytest.approx(1.0, abs=1e-12)
    assert scores.assa < 0.9
    assert scores.idf1 < 0.9
    assert scores.hota < 0.95
    assert scores.num_switches > 0
    assert scores.num_false_positives == scores.num_misses == 0
    assert scores.mota == pytest.approx(1 - scores.num_switches / scores.num_gt_dets)


def test_ids_permuted_in_a_real_tracker_output(tmp_path: Path) -> None:
    sequence = "TUD-Campus"
    result = read_mot(_test(sequence))
    ids = sorted(set(result.index.get_level_values("Id")))
    rotate = dict(zip(ids, ids[1:] + ids[:1], strict=True))
    middle = int(np.median(result.index.get_level_values("FrameId")))
    rows = [
        row._replace(track_id=rotate[row.track_id]) if row.frame > middle else row
        for row in _rows(result)
    ]
    permuted = tmp_path / "permuted.txt"
    write_mot(rows, permuted)

    before = evaluate_mot(_gt(sequence), _test(sequence))
    after = evaluate_mot(_gt(sequence), permuted)
    assert after.idf1 < before.idf1
    assert after.assa < before.assa
    assert after.hota < before.hota
    # Same boxes: MOTA's FP/FN do not move, only its switches.
    assert (after.num_false_positives, after.num_misses) == (
        before.num_false_positives,
        before.num_misses,
    )
    assert after.num_switches > before.num_switches
    # HOTA's matching weighs in association, so DetA may move slightly but not much.
    assert after.deta == pytest.approx(before.deta, abs=0.01)


def test_ground_truth_rows_flagged_zero_are_ignored(tmp_path: Path) -> None:
    sequence = "TUD-Campus"
    gt_rows = _rows(read_mot(_gt(sequence)))
    extra = MotRow(frame=1, track_id=999, x=1.0, y=1.0, w=5.0, h=5.0, conf=0.0)
    flagged = tmp_path / "gt_flagged.txt"
    write_mot([*gt_rows, extra], flagged)
    counted = tmp_path / "gt_counted.txt"
    write_mot([*gt_rows, extra._replace(conf=1.0)], counted)

    base = evaluate_mot(_gt(sequence), _test(sequence))
    assert evaluate_mot(flagged, _test(sequence)) == base
    with_extra = evaluate_mot(counted, _test(sequence))
    assert with_extra.num_misses == base.num_misses + 1
    assert with_extra.num_gt_ids == base.num_gt_ids + 1


def test_iou_threshold(tud_scores: dict[str, MotScores]) -> None:
    base = tud_scores["TUD-Campus"]
    strict = evaluate_mot(_gt("TUD-Campus"), _test("TUD-Campus"), iou_threshold=0.7)
    assert strict.iou_threshold == 0.7
    assert strict.num_misses > base.num_misses
    assert strict.mota < base.mota
    assert strict.hota == base.hota  # HOTA sweeps its own thresholds
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="iou_threshold"):
            evaluate_mot(_gt("TUD-Campus"), _test("TUD-Campus"), iou_threshold=bad)


def test_empty_result_misses_everything(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    write_mot([], empty)
    assert read_mot(empty).empty
    scores = evaluate_mot(_gt("TUD-Campus"), empty)
    assert scores.num_misses == scores.num_gt_dets == 359
    assert scores.num_false_positives == scores.num_pred_ids == 0
    assert scores.mota == 0.0
    assert scores.hota == scores.deta == 0.0


def test_read_mot_layout_matches_motmetrics_loader() -> None:
    ours = read_mot(_test("TUD-Campus"))
    assert list(ours.index.names) == ["FrameId", "Id"]
    assert list(ours.columns) == [
        "X",
        "Y",
        "Width",
        "Height",
        "Confidence",
        "ClassId",
        "Visibility",
    ]
    assert ours.index.is_monotonic_increasing
    # motmetrics's loader reads the same boxes but shifts x and y by one pixel (MATLAB).
    theirs = pd.read_csv(
        _test("TUD-Campus"),
        header=None,
        names=["FrameId", "Id", "X", "Y", "Width", "Height", "Confidence"],
        usecols=range(7),
    ).set_index(["FrameId", "Id"])
    theirs = theirs.sort_index()
    np.testing.assert_array_equal(ours.index.to_numpy(), theirs.index.to_numpy())
    np.testing.assert_allclose(
        ours[["X", "Y", "Width", "Height", "Confidence"]].to_numpy(), theirs.to_numpy()
    )


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    rows = [
        MotRow(1, 7, 10.0, 20.5, 30.25, 40.0, 0.9),
        MotRow(1, 3, 0.1, 0.2, 1e-3, 123456.789, 1.0),
        MotRow(2, 7, -5.5, -1.0, 0.0, 0.0, -1.0),
    ]
    path = tmp_path / "out.txt"
    write_mot(rows, path)
    assert path.read_text().splitlines()[0] == "1,7,10,20.5,30.25,40,0.9,-1,-1,-1"
    back = _rows(read_mot(path))
    assert back == sorted(rows, key=lambda row: (row.frame, row.track_id))
    assert not list(tmp_path.glob(".*.tmp"))


def test_round_trip_of_a_shipped_file_keeps_its_scores(tmp_path: Path) -> None:
    original = read_mot(_test("TUD-Stadtmitte"))
    copy = tmp_path / "copy.txt"
    write_mot(_rows(original), copy)
    pd.testing.assert_frame_equal(read_mot(copy), original)
    assert evaluate_mot(_gt("TUD-Stadtmitte"), copy) == evaluate_mot(
        _gt("TUD-Stadtmitte"), _test("TUD-Stadtmitte")
    )


def test_write_mot_rejects_impossible_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    for row in (
        MotRow(0, 1, 0.0, 0.0, 1.0, 1.0, 1.0),
        MotRow(1, 1, 0.0, 0.0, -1.0, 1.0, 1.0),
        MotRow(1, 1, math.nan, 0.0, 1.0, 1.0, 1.0),
    ):
        with pytest.raises(ValueError):
            write_mot([row], path)
    assert not path.exists()


GOOD = "1,1,10,20,30,40,1,-1,-1,-1\n2,1,11,21,30,40,1,-1,-1,-1\n"


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("3,1,12,abc,30,40,1,-1,-1,-1", "y is not a number: 'abc'"),
        ("3,1,12,22,30", "expected 7 to 10 fields, found 5"),
        ("3,1,12,22,30,40,1,-1,-1,-1,9", "expected 7 to 10 fields, found 11"),
        ("3,,12,22,30,40,1,-1,-1,-1", "id is not a number: ''"),
        ("3.5,1,12,22,30,40,1,-1,-1,-1", "frame is not an integer"),
        ("0,1,12,22,30,40,1,-1,-1,-1", "frame must be 1 or more"),
        ("3,1,12,22,-30,40,1,-1,-1,-1", "must not be negative"),
        ("3,1,12,nan,30,40,1,-1,-1,-1", "y is not finite"),
        ("2,1,12,22,30,40,1,-1,-1,-1", "id 1 occurs twice in frame 2 (first on line 2)"),
    ],
)
def test_malformed_file_names_file_and_line(tmp_path: Path, bad_line: str, reason: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(GOOD + bad_line + "\n")
    with pytest.raises(MotFormatError) as caught:
        read_mot(path)
    error = caught.value
    assert (error.path, error.line) == (path, 3)
    assert reason in error.reason
    assert str(error).startswith(f"{path}:3: ")
    # The evaluation surfaces the same error, for either file.
    with pytest.raises(MotFormatError, match=r"bad\.txt:3: "):
        evaluate_mot(_gt("TUD-Campus"), path)
    with pytest.raises(MotFormatError, match=r"bad\.txt:3: "):
        evaluate_mot(path, _test("TUD-Campus"))


def test_read_mot_accepts_whitespace_short_rows_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "loose.txt"
    path.write_text("\n2 5 1.5 2.5 3 4 0.5\n\n1, 5, 1, 2, 3, 4, 1, 1, 0.25\n")
    frame = read_mot(path)
    assert list(frame.index) == [(1, 5), (2, 5)]
    assert frame.loc[(1, 5)].tolist() == [1.0, 2.0, 3.0, 4.0, 1.0, 1.0, 0.25]
    assert frame.loc[(2, 5)].tolist() == [1.5, 2.5, 3.0, 4.0, 0.5, -1.0, -1.0]


def test_format_scores_is_an_aligned_table(tud_scores: dict[str, MotScores]) -> None:
    table = format_scores(tud_scores["TUD-Campus"])
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "value"]
    assert len({len(line) for line in lines}) == 1  # right-aligned values, one width
    by_label = {line[: line.rindex("  ")].strip(): line.split()[-1] for line in lines[1:]}
    assert by_label["HOTA"] == "0.3914"
    assert by_label["MOTA"] == "0.5265"
    assert by_label["IDF1"] == "0.5577"
    assert by_label["ID switches"] == "7"
    assert by_label["GT boxes"] == "359"
    nan_scores = dataclasses.replace(tud_scores["TUD-Campus"], mota=math.nan)
    assert "n/a" in format_scores(nan_scores)


def test_scores_are_frozen(tud_scores: dict[str, MotScores]) -> None:
    scores = tud_scores["TUD-Campus"]
    with pytest.raises(AttributeError):
        scores.hota = 1.0  # type: ignore[misc]
    assert list(scores.as_dict())[:3] == ["mota", "motp", "idf1"]
