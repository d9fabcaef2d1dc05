"""fit_faces at zero steps from a network's coefficients takes a path of its
own (one traced graph, no fitting problem): it must give what the fitting
problem gives at zero steps, for 68- and 5-point targets."""
import numpy as np
import pytest

from mgc.facemodel import CoefficientLayout
from mgc.fitting import FitSettings, fit_faces, fitter


def problem_result(crops, targets, model, coefficients):
    """The fitting problem's zero-step result (fit_faces' general path)."""
    settings = FitSettings().with_total_steps(0)
    problem = fitter._problem(model, len(crops), targets.shape[1], settings)
    skin = np.ones(crops.shape[:3], np.float32)
    problem.reset(crops, targets, skin, np.zeros([len(crops), 6], np.float32), coefficients)
    fitter._run(problem, settings, targets)
    return fitter._result(problem, targets)


@pytest.mark.parametrize("points", [68, 5])
def test_the_answer_as_is_is_the_problems_zero_step_result(parity_model, points):
    model = parity_model
    layout = CoefficientLayout.for_model(model)
    rng = np.random.default_rng(points)
    coefficients = np.zeros([3, layout.size], np.float32)
    coefficients[:, :layout.identity] = rng.normal(0, 1.0, [3, layout.identity])
    pose = np.asarray(layout.split(np.arange(layout.size))["pose"], int)
    coefficients[:, pose[:3]] = rng.normal(0, 0.3, [3, 3])  # turned up to ~40 degrees
    crops = np.zeros([3, 224, 224, 3], np.float32)
    # Targets near the face's own landmarks, some missing.
    first = problem_result(crops, np.full([3, points, 2], np.nan, np.float32), model, coefficients)
    if points == 68:
        targets = first.landmarks_2d + rng.normal(0, 3.0, [3, 68, 2])
    else:
        targets = np.stack([first.landmarks_2d[:, group].mean(1) for group in
                            fitter.landmark_lib.FIVE_POINT_GROUPS], axis=1) + rng.normal(0, 3.0,
                                                                                        [3, 5, 2])
    targets[1, 2] = np.nan
    targets = targets.astype(np.float32)
    expected = problem_result(crops, targets, model, coefficients)
    answer = fit_faces(crops, targets, model, FitSettings().with_total_steps(0),
                       initial_coefficients=coefficients)
    np.testing.assert_allclose(answer.coefficients, expected.coefficients, rtol=1e-5, atol=1e-5)
    for name in ("landmarks_2d", "silhouette_landmarks_2d", "keypoints_2d"):
        np.testing.assert_allclose(getattr(answer, name), getattr(expected, name), atol=2e-3,
                                   err_msg=name)
    np.testing.assert_allclose(answer.landmark_error, expected.landmark_error, atol=2e-3)
    np.testing.assert_allclose(answer.vertex_albedo, expected.vertex_albedo, atol=1e-5)
    for name in ("vertices", "image", "mask", "depth"):
        ours, theirs = np.asarray(getattr(answer.render, name)), np.asarray(getattr(expected.render,
                                                                                     name))
        # Pixels on a triangle edge may go either way between two float roundings.
        close = np.isclose(ours, theirs, rtol=1e-4, atol=1e-3)
        assert close.mean() > 0.999, name
    if points == 68:  # the slider moved some jaw points off their own vertices
        assert not np.allclose(answer.silhouette_landmarks_2d, answer.landmarks_2d,
                               equal_nan=True)


def test_bad_initial_coefficients_are_refused(parity_model):
    with pytest.raises(ValueError, match=r"initial_coefficients must have shape \[1, 257\]"):
        fit_faces(np.zeros([1, 224, 224, 3]), np.zeros([1, 5, 2]), parity_model,
                  FitSettings().with_total_steps(0), initial_coefficients=np.zeros([1, 250]))
