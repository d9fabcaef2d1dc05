"""mgc.eval.synthetic (the known-answer faces) and the landmark calibration
experiment built on it."""
import numpy as np
import pytest

from experiments import calibrate_landmarks
from mgc import geometry
from mgc.eval import synthetic
from mgc.facemodel import CoefficientLayout, default_face_model
from mgc.facemodel.ict import DLIB_CALIBRATED_LANDMARKS, load_ict_facekit


@pytest.fixture(scope="module")
def model():
    return default_face_model()


@pytest.mark.parametrize("angles", [(0, 0, 0), (20, 10, 5), (-35, -15, 10), (60, 5, -20)])
def test_head_angles_invert_head_rotation(angles):
    rotation = synthetic.head_rotation(*angles)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(synthetic.head_angles(rotation), angles, atol=1e-9)


def test_painted_features_lie_where_the_landmarks_say(model):
    albedo = synthetic.synthetic_albedo(model)[0]
    mean, lm = model.mean_shape, model.mean_shape[model.landmarks]

    def nearest(point):
        return albedo[np.argmin(np.linalg.norm(mean - point, axis=1))]

    lip_centre = (lm[51] + lm[62]) / 2      # between outer and inner upper lip
    np.testing.assert_allclose(nearest(lip_centre), synthetic.LIPS)
    below_brow = lm[19] - [0, 4.5, 0]       # brow hair lies under the brow points
    assert nearest(below_brow).sum() < 0.7 * synthetic.SKIN.sum()
    cheek = (lm[2] + lm[31]) / 2
    assert np.abs(nearest(cheek) - synthetic.SKIN).max() < 0.06


def test_render_scene_reports_its_own_geometry(model):
    layout = CoefficientLayout.for_model(model)
    rng = np.random.default_rng(0)
    face = synthetic.render_scene(model, rng.normal(0, 0.5, layout.identity),
                                  np.zeros(layout.expression), (15.0, -5.0, 3.0),
                                  synthetic.flag_background())
    assert face.image.shape == (448, 448, 3) and face.image.dtype == np.uint8
    np.testing.assert_allclose(face.landmarks, face.vertices_2d[model.landmarks], atol=1e-3)
    # The landmarks' centre is near the picture's centre, the face inside it.
    assert np.all(np.abs(face.landmarks.mean(0) - 224) < 30)
    assert np.all((face.landmarks > 0) & (face.landmarks < 448))
    # The face is drawn: skin-coloured pixels at the nose tip.
    x, y = face.landmarks[30].round().astype(int)
    assert face.image[y, x, 0] > face.image[y, x, 2]


def test_calibrated_landmarks_replace_only_the_points_they_name():
    calibrated = load_ict_facekit()
    original = load_ict_facekit(calibrated_landmarks=False)
    changed = np.nonzero(calibrated.landmarks != original.landmarks)[0]
    assert set(changed) <= set(DLIB_CALIBRATED_LANDMARKS)
    np.testing.assert_array_equal(calibrated.landmarks[list(DLIB_CALIBRATED_LANDMARKS)],
                                  list(DLIB_CALIBRATED_LANDMARKS.values()))
    # Moved within the nose, a few mm: the same anatomical points, refined.
    shift = np.linalg.norm(calibrated.mean_shape[calibrated.landmarks]
                           - original.mean_shape[original.landmarks], axis=1)
    assert shift.max() < 12.0


def test_calibration_picks_the_vertex_the_detector_points_at(model):
    """A detector that always marks vertex v for landmark 30: calibration
    must choose v among the candidates near the current vertex."""
    rng = np.random.default_rng(1)
    renders, n = 6, model.num_vertices
    vertices_2d = rng.uniform(0, 448, (renders, n, 2))
    near = np.linalg.norm(model.mean_shape - model.mean_shape[model.landmarks[30]], axis=1)
    target = int(np.nonzero((near > 2) & (near < 8) & (model.skin_mask > 0))[0][0])
    dlib68 = np.zeros((renders, 68, 2))
    dlib68[:, 30] = vertices_2d[:, target]
    rows = calibrate_landmarks.calibrate(model, vertices_2d, dlib68, np.full(renders, 200.0),
                                         [30], radius=12.0)
    assert rows[0]["chosen_vertex"] == target
    assert rows[0]["held_out_nme_chosen"] == 0.0


def test_parse_landmarks():
    assert calibrate_landmarks.parse_landmarks("27-29,8") == [8, 27, 28, 29]
    with pytest.raises(ValueError, match="0..67"):
        calibrate_landmarks.parse_landmarks("60-70")


def test_picture_rotation_of_an_unrotated_crop_is_the_fitted_rotation():
    rotation = synthetic.head_rotation(20.0, 10.0, 5.0)
    delta = geometry.pose_from_extrinsic(
        np.concatenate([rotation, [[0.0], [0.0], [geometry.DEFAULT_POSE[5]]]], 1))
    delta = delta - np.asarray(geometry.DEFAULT_POSE)
    scaled_shift = np.array([[0.5, 0.0, 10.0], [0.0, 0.5, -4.0]])  # no in-plane rotation
    np.testing.assert_allclose(synthetic.picture_rotation(scaled_shift, delta), rotation,
                               atol=1e-5)


def test_detected_scenes_yield_one_pair_per_render_and_repeat_with_the_seed(model):
    first = list(synthetic.detected_scenes(model, 2, seed=5))
    again = list(synthetic.detected_scenes(model, 2, seed=5))
    assert len(first) == 2
    for (face, found), (face_again, found_again) in zip(first, again):
        np.testing.assert_array_equal(face.image, face_again.image)
        assert found is not None and found.landmarks68.shape == (68, 2)
        np.testing.assert_array_equal(found.landmarks68, found_again.landmarks68)
