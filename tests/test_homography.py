"""Tests of vision.homography: fitting the image→floor mapping from calibration pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from appliance.config import load_config
from vision.homography import CalibrationError, FloorMapping, fit_homography

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "vtest.yaml"
WIDTH, HEIGHT = 768, 576
CM = 0.01

F64 = npt.NDArray[np.float64]


def ground_truth_floor_to_image() -> F64:
    """Floor metres → image pixels of a plausible oblique pinhole camera.

    A 768x576 camera with a 900 px focal length, 6 m above the floor at
    (12, -2), pitched 40° down and yawed 10°: the floor plane z = 0 maps to the
    image by ``K [r1 r2 t]``.
    """
    f = 900.0
    k = np.array([[f, 0.0, WIDTH / 2], [0.0, f, HEIGHT / 2], [0.0, 0.0, 1.0]])
    pitch, yaw = np.radians(40.0), np.radians(10.0)
    forward = np.array([np.sin(yaw) * np.cos(pitch), np.cos(yaw) * np.cos(pitch), -np.sin(pitch)])
    right = np.array([np.cos(yaw), -np.sin(yaw), 0.0])
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    centre = np.array([12.0, -2.0, 6.0])
    t = -rot @ centre
    h = k @ np.column_stack([rot[:, 0], rot[:, 1], t])
    return np.asarray(h / h[2, 2], np.float64)


def apply_h(h: F64, points: F64) -> F64:
    q = np.column_stack([points, np.ones(len(points))]) @ h.T
    return np.asarray(q[:, :2] / q[:, 2:], np.float64)


def calibration_floor_points() -> F64:
    xs, ys = np.meshgrid([10.0, 12.0, 14.0, 16.0], [4.0, 6.5, 9.0])
    return np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)


def test_ground_truth_camera_is_plausible() -> None:
    # Guard for the fixture itself: every calibration point is in the frame, and
    # farther floor points are higher in the image (an oblique view, not a top-down one).
    img = apply_h(ground_truth_floor_to_image(), calibration_floor_points())
    assert ((img[:, 0] >= 0) & (img[:, 0] <= WIDTH)).all(), img
    assert ((img[:, 1] >= 0) & (img[:, 1] <= HEIGHT)).all(), img
    near = apply_h(ground_truth_floor_to_image(), np.array([[13.0, 4.0]]))
    far = apply_h(ground_truth_floor_to_image(), np.array([[13.0, 9.0]]))
    assert far[0, 1] < near[0, 1] - 100


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_fit_on_noisy_pairs_maps_within_1cm(seed: int) -> None:
    h_true = ground_truth_floor_to_image()
    floor = calibration_floor_points()
    assert len(floor) >= 6
    rng = np.random.default_rng(seed)
    image = apply_h(h_true, floor) + rng.normal(0.0, 0.1, (len(floor), 2))

    mapping = fit_homography(image.tolist(), floor.tolist())
    assert isinstance(mapping, FloorMapping)
    assert mapping.matrix.shape == (3, 3)

    mapped = mapping.to_floor(image.astype(np.float32))
    assert mapped.shape == floor.shape
    err = np.linalg.norm(mapped - floor, axis=1)
    assert err.max() < 1 * CM, err

    # Round trip floor → image → floor.
    back = mapping.to_floor(mapping.to_image(floor.astype(np.float32)))
    assert np.linalg.norm(back - floor, axis=1).max() < 1 * CM
    # And the image side of the round trip lands near the (noisy) calibration pixels.
    assert np.abs(mapping.to_image(floor.astype(np.float32)) - image).max() < 1.0

    # The reported errors match an independent computation and are small but not zero
    # (the image points carry noise, so no homography fits them exactly).
    rms = float(np.sqrt(np.mean(err**2)))
    assert mapping.reprojection_error_m == pytest.approx(rms, abs=1e-4)
    assert mapping.max_error_m == pytest.approx(float(err.max()), abs=1e-4)
    assert 0.0 < mapping.reprojection_error_m <= mapping.max_error_m < 1 * CM

    # The fit generalises: floor points between the calibration marks map back to
    # where the ground-truth camera sees them.
    inside = np.column_stack([rng.uniform(10.0, 16.0, 40), rng.uniform(4.0, 9.0, 40)])
    seen = apply_h(h_true, inside).astype(np.float32)
    assert np.linalg.norm(mapping.to_floor(seen) - inside, axis=1).max() < 1 * CM


def test_exact_four_point_fit_has_no_error() -> None:
    h_true = ground_truth_floor_to_image()
    floor = np.array([[10.0, 4.0], [16.0, 4.0], [16.0, 9.0], [10.0, 9.0]])
    image = apply_h(h_true, floor)
    mapping = fit_homography(image.tolist(), floor.tolist())
    assert mapping.reprojection_error_m < 1e-6
    assert mapping.max_error_m < 1e-6
    # With exact pairs the fitted mapping is the ground truth itself.
    probe = np.array([[12.3, 5.7], [14.9, 8.1], [11.0, 4.5]])
    got = mapping.to_floor(apply_h(h_true, probe).astype(np.float32))
    assert np.abs(got - probe).max() < 1e-3


def test_fewer_than_four_pairs_raise() -> None:
    floor = calibration_floor_points()[:3]
    image = apply_h(ground_truth_floor_to_image(), floor)
    with pytest.raises(CalibrationError, match="at least 4"):
        fit_homography(image.tolist(), floor.tolist())
    with pytest.raises(CalibrationError):
        fit_homography([], [])


def test_mismatched_lengths_raise() -> None:
    floor = calibration_floor_points()
    image = apply_h(ground_truth_floor_to_image(), floor)
    with pytest.raises(CalibrationError):
        fit_homography(image.tolist(), floor[:-1].tolist())
    with pytest.raises(CalibrationError):
        fit_homography(image[:-1].tolist(), floor.tolist())
    # Not [u, v] pairs at all.
    with pytest.raises(CalibrationError):
        fit_homography([[1.0, 2.0, 3.0]] * 4, [[1.0, 2.0, 3.0]] * 4)


@pytest.mark.parametrize(
    ("image", "floor"),
    [
        pytest.param(
            [[100, 200], [200, 250], [300, 300], [400, 350]],
            [[1, 2], [2, 3], [3, 4], [4, 5]],
            id="both-collinear",
        ),
        pytest.param(
            [[280, 220], [360, 220], [440, 220], [600, 220]],
            [[10, 10], [12, 10], [14, 10], [18, 10]],
            id="one-image-row",
        ),
        pytest.param(
            [[100, 200], [200, 250], [300, 300], [400, 350], [500, 400], [600, 450]],
            [[1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7]],
            id="six-collinear",
        ),
        pytest.param(
            [[100, 200], [200, 250], [300, 300], [400, 350]],
            [[0, 0], [1, 0], [1, 1], [0, 1]],
            id="image-collinear-only",
        ),
    ],
)
def test_collinear_points_raise(image: list[list[float]], floor: list[list[float]]) -> None:
    with pytest.raises(CalibrationError, match="degenerate"):
        fit_homography(image, floor)


# Four pairs with only three distinct points, or three of four on one line, do not
# determine a homography either (a one-parameter family fits them exactly), yet
# fit_homography must refuse them rather than return an arbitrary mapping.


def test_three_of_four_collinear_raise() -> None:
    with pytest.raises(CalibrationError):
        fit_homography([[0, 0], [100, 0], [200, 0], [0, 100]], [[0, 0], [1, 0], [2, 0], [0, 1]])


def test_repeated_pair_raises() -> None:
    with pytest.raises(CalibrationError):
        fit_homography([[0, 0], [0, 0], [100, 100], [0, 100]], [[0, 0], [0, 0], [1, 1], [0, 1]])


def test_to_floor_of_no_points_is_empty() -> None:
    floor = calibration_floor_points()
    mapping = fit_homography(apply_h(ground_truth_floor_to_image(), floor).tolist(), floor.tolist())
    assert mapping.to_floor(np.zeros((0, 2), np.float32)).shape == (0, 2)


def test_to_image_of_no_points_is_empty() -> None:
    floor = calibration_floor_points()
    mapping = fit_homography(apply_h(ground_truth_floor_to_image(), floor).tolist(), floor.tolist())
    assert mapping.to_image(np.zeros((0, 2), np.float32)).shape == (0, 2)


def test_example_config_mapping_hits_its_calibration_points() -> None:
    config = load_config(EXAMPLE)
    assert config.cameras
    for cam in config.cameras:
        assert len(cam.calibration) >= 4
        image = np.array([p.image for p in cam.calibration], np.float32)
        floor = np.array([p.floor for p in cam.calibration], np.float64)
        mapping = cam.floor_mapping()
        err = np.linalg.norm(mapping.to_floor(image) - floor, axis=1)
        assert err.max() < 1 * CM, (cam.id, err)
        assert mapping.reprojection_error_m < 1 * CM
        back = mapping.to_image(floor.astype(np.float32))
        assert np.abs(back - image).max() < 0.5, (cam.id, back, image)
