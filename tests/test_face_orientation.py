"""Axis conventions of the face renderer: a flipped or mirrored axis anywhere
(model frame, pose, projection, row order of the images) fails one of these.

Models: the default ICT-FaceKit model and the BFM 2009 mean shape, both at
MGCNet's default pose with zero coefficients. Landmarks are iBUG-68, 0-based
here (iBUG point k is index k - 1).
"""
import numpy as np
import pytest

from mgc.facemodel import CoefficientLayout, default_face_model, load_bfm_mean
from mgc.render import render_face

NOSE_TIP, CHIN = 30, 8
RIGHT_EYE, LEFT_EYE = slice(36, 42), slice(42, 48)  # the subject's, iBUG 37-42 and 43-48
JAW_RIGHT_END, JAW_LEFT_END = 0, 16


@pytest.fixture(scope="module", params=["ict", "bfm_mean"])
def frontal_and_yawed(request):
    model = default_face_model() if request.param == "ict" else load_bfm_mean()
    layout = CoefficientLayout.for_model(model)
    coefficients = np.zeros((2, layout.size), np.float32)
    yaw_index = layout.identity + layout.albedo + layout.expression + 1  # pose [rz, ry, ...]
    coefficients[1, yaw_index] = np.radians(30.0)
    return request.param, render_face(coefficients, model, front_only=True)


def pixel_value(image, point):
    x, y = np.round(point).astype(int)
    return image[y, x]


def test_nose_is_nearer_than_the_cheeks(frontal_and_yawed):
    _, render = frontal_and_yawed
    depth, landmarks = render.depth.numpy()[0, ..., 0], render.landmarks_2d.numpy()[0]
    nose = pixel_value(depth, landmarks[NOSE_TIP])
    for jaw_point in (3, 13):  # cheeks: halfway from the nose tip to the jaw
        cheek = pixel_value(depth, (landmarks[NOSE_TIP] + landmarks[jaw_point]) / 2)
        assert 0 < nose < cheek - 10.0  # millimetres


def test_chin_below_nose_and_right_eye_left_in_the_image(frontal_and_yawed):
    _, render = frontal_and_yawed
    landmarks = render.landmarks_2d.numpy()[0]
    assert landmarks[CHIN, 1] > landmarks[NOSE_TIP, 1] + 30  # y grows downwards
    assert landmarks[RIGHT_EYE, 0].max() < landmarks[LEFT_EYE, 0].min()
    # The images are top-down: the face's top rows hold the forehead, and the
    # row of the eyes is covered while the top image row is not.
    mask = render.mask.numpy()[0, ..., 0]
    assert mask[0].sum() == 0 and mask[int(landmarks[RIGHT_EYE, 1].mean())].sum() > 50


def test_mask_box_agrees_with_landmark_box(frontal_and_yawed):
    name, render = frontal_and_yawed
    mask, landmarks = render.mask.numpy()[0, ..., 0], render.landmarks_2d.numpy()[0]
    rows, cols = np.nonzero(mask)
    assert abs(cols.min() - landmarks[:, 0].min()) <= 5
    assert abs(cols.max() - landmarks[:, 0].max()) <= 5
    # The face area reaches above the brows (forehead); ICT's also reaches
    # below the chin onto the neck, BFM's ends at the chin.
    assert rows.min() < landmarks[:, 1].min()
    if name == "bfm_mean":
        assert abs(rows.max() - landmarks[:, 1].max()) <= 5


def test_positive_yaw_turns_the_nose_to_the_image_right(frontal_and_yawed):
    # R = Rx(rx) Ry(ry) Rz(rz) with rx = pi: a model point (0, 0, z) goes to
    # camera x = sin(ry) z, so the nose (largest z) moves right and the
    # subject's left cheek (image right) turns away from the camera.
    _, render = frontal_and_yawed
    frontal, yawed = render.landmarks_2d.numpy()
    centre = lambda lm: (lm[JAW_RIGHT_END, 0] + lm[JAW_LEFT_END, 0]) / 2  # noqa: E731
    assert abs(frontal[NOSE_TIP, 0] - centre(frontal)) < 3
    assert yawed[NOSE_TIP, 0] - centre(yawed) > 20
    right_half = frontal[JAW_LEFT_END, 0] - frontal[NOSE_TIP, 0]
    assert yawed[JAW_LEFT_END, 0] - yawed[NOSE_TIP, 0] < 0.6 * right_half
