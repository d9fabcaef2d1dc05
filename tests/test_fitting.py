"""The reconstruction pipeline without a network: detect, align, fit.

1. The 300-W image with landmarks="detect" (its .pts ground truth is read
   only for scoring).
2. A face rendered from known coefficients (mgc.eval.synthetic: ICT model,
   painted albedo, SH light from above, known pose) over a real photo
   background, at a fixed seed, run through the pipeline with detection;
   scored in the original image's pixels.
NME = mean landmark distance / sqrt(w * h) of the reference landmarks' box.

Issue 4's goals and where the fitter stands (dlib's landmarks are averaged
with the mirror image's before the fit; "dlib" below is its raw single
answer, the baseline):
  * rendered face: NME < 2 % and yaw, pitch, roll within 3 degrees: met,
    narrowly (NME 1.97 %, dlib 2.34 %; errors 0.3 / 2.9 / 0.0 degrees; with
    10 % more or fewer steps, or a 10 % different learning rate, NME stays
    within 1.93-1.98 % and pitch within 2.7-3.0 degrees). Over 24 random
    faces (experiments/evaluate_synthetic.py, docs/RESULTS.md) the mean
    errors are 1.5 / 2.2 / 1.6 degrees. Pitch is the weak angle: a
    converged fit of this face to its true landmarks leaves 1.2-1.7 degrees,
    and on the render dlib puts the brows ~2 crop pixels below the model's
    brow points and the eyes ~1.3 above.
  * 300-W image: fitted NME <= dlib's: 1.58 % against 1.60 %, level rather
    than better: the same changes to steps and learning rate move the fitted
    NME within 1.58-1.62 %, and so does rounding (1.61 % with TensorFlow on
    one thread), so the test allows the fit 0.05 % more than dlib's 1.60 %
    (docs/RESULTS.md).
"""
import numpy as np
import pytest

from mgc import paths
from mgc.eval import synthetic
from mgc.eval.aflw2000 import nme
from mgc.facemodel import CoefficientLayout, default_face_model, load_face_model
from mgc.fitting import FitSettings, fit_faces
from mgc.preprocess import invert, load_image, prepare_faces, read_landmark_file, transform_points


def fitted_image_landmarks(image, silhouette=False, landmarks_model="dlib"):
    """Fits the largest detected face; returns (fitted landmarks in image
    pixels, the PreparedFace, the FitResult). silhouette: jaw points on the
    face's outline (2D annotation convention) instead of fixed vertices.
    landmarks_model: the backend, as reconstruct's --landmarks_model (mesh:
    the fit follows the face mesh's 468 points)."""
    face = prepare_faces(image, landmarks="detect", largest_face_only=True,
                         landmarks_model=landmarks_model)[0]
    mesh = None if face.crop_mesh_points is None else face.crop_mesh_points[np.newaxis]
    result = fit_faces(face.crop[np.newaxis], face.crop_landmarks68[np.newaxis],
                       default_face_model(), mesh_points=mesh)
    points = result.silhouette_landmarks_2d if silhouette else result.landmarks_2d
    return transform_points(points[0], invert(face.crop_matrix)), face, result


def test_fit_on_the_300w_image_stays_near_dlib():
    folder = "demo_images/eos_300W_image_0010_68pts"
    image = load_image(paths.data_file(f"{folder}/image_0010.png"))
    # 300-W annotates the jaw on the outline: score the silhouette points.
    fitted, face, _ = fitted_image_landmarks(image, silhouette=True)
    truth = read_landmark_file(paths.data_file(f"{folder}/image_0010.pts"))  # scoring only
    fitted_nme, dlib_nme = nme(fitted, truth), nme(face.raw_landmarks68, truth)
    assert dlib_nme < 0.02  # dlib found the face
    # Issue 4: no farther than dlib, within the fit's own variation (the
    # module docstring): 0.05 % of the box, 0.15 pixels per point here.
    tolerance = 0.0005
    assert fitted_nme <= dlib_nme + tolerance, f"fitted {fitted_nme:.4f} vs dlib {dlib_nme:.4f}"


def test_fit_to_the_mesh_on_the_300w_image_is_nearer_than_the_mesh_points():
    """The mesh backend on the 300-W image: the fit's silhouette points 2.82 %
    NME against the mesh's own 68 points' 3.07 % (those are calibrated to
    BFM09's 3-D jaw, while 300-W marks the outline; dlib's are 1.60 %). It
    must be nearer by at least 0.1 %, twice the fit's own variation measured
    with dlib's points (the module docstring)."""
    folder = "demo_images/eos_300W_image_0010_68pts"
    image = load_image(paths.data_file(f"{folder}/image_0010.png"))
    fitted, face, _ = fitted_image_landmarks(image, silhouette=True, landmarks_model="mesh")
    truth = read_landmark_file(paths.data_file(f"{folder}/image_0010.pts"))  # scoring only
    fitted_nme, mesh_nme = nme(fitted, truth), nme(face.raw_landmarks68, truth)
    assert face.box.detector == "blazeface" and mesh_nme < 0.04  # the mesh found the face
    assert fitted_nme <= mesh_nme - 0.001, f"fitted {fitted_nme:.4f} vs mesh {mesh_nme:.4f}"


@pytest.fixture(scope="module")
def synthetic_scene():
    """A 448x448 photo: a rendered ICT face (known identity, expression and
    pose; painted albedo; light from above) over the astronaut picture's
    background (the flag in its top-left corner, which holds no face)."""
    model = default_face_model()
    layout = CoefficientLayout.for_model(model)
    rng = np.random.default_rng(11)
    identity = rng.normal(0, 0.6, layout.identity)
    expression = np.clip(rng.normal(0, 0.1, layout.expression), 0, 1)
    return synthetic.render_scene(model, identity, expression, (20.0, 10.0, 5.0),
                                  synthetic.flag_background())


# The fit to the face mesh's points does not meet issue 4's 3 degrees on
# this face yet: yaw, pitch, roll errors 1.5 / 7.6 / 1.2 degrees (NME 1.50 %,
# the mesh's own 68 points 3.84 %). Its 3-D closed-form start is 1.6 degrees
# off in pitch and the 2-D mesh points pull it to 5 within 40 pose steps:
# the points and their calibrated vertices disagree, not the optimiser.
MESH_MISSES_PITCH = pytest.mark.xfail(strict=True, reason="mesh fit pitch 7.6 degrees off")


@pytest.mark.parametrize("landmarks_model",
                         [pytest.param("mesh", marks=MESH_MISSES_PITCH), "dlib"])
def test_pipeline_recovers_pose_and_landmarks_of_a_rendered_face(synthetic_scene,
                                                                 landmarks_model):
    true_landmarks, true_angles = synthetic_scene.landmarks, synthetic_scene.angles
    fitted, face, result = fitted_image_landmarks(synthetic_scene.image,
                                                  landmarks_model=landmarks_model)
    # "dlib": the backend's own 68 points (the mesh's for the mesh backend).
    fitted_nme, dlib_nme = nme(fitted, true_landmarks), nme(face.raw_landmarks68, true_landmarks)
    assert fitted_nme <= dlib_nme and fitted_nme < 0.02
    pose = result.layout.split(result.coefficients)["pose"][0]
    rotation = synthetic.picture_rotation(face.crop_matrix, pose)
    errors = np.abs(synthetic.head_angles(rotation) - true_angles)  # yaw, pitch, roll
    assert np.all(errors <= 3.0), errors


def test_landmark_weights_follow_mgcnet_detail_points():
    from mgc.fitting import landmarks
    weights = landmarks.landmark_weights(landmarks.selection_matrix(68), 0.5, 5.0)
    assert np.all(weights[:17] == 0.5) and np.all(weights[27:36] == 5.0)
    assert np.all(weights[60:68] == 5.0) and np.all(weights[17:27] == 1.0)
    five = landmarks.landmark_weights(landmarks.selection_matrix(5), 0.5, 5.0)
    np.testing.assert_allclose(five, [1.0, 1.0, 5.0, 1.0, 1.0])  # eyes, nose tip, mouth corners


def test_repeated_fits_reuse_compiled_steps_and_agree():
    """The second batch of the same shape reuses the traced steps: its inputs
    and unknowns (and the optimizers' moments) must be reset completely."""
    model = default_face_model()
    settings = FitSettings(pose_steps=5, landmark_steps=20, appearance_steps=5, joint_steps=5)
    image = load_image(paths.data_file("demo_images/astronaut_eileen_collins_public_domain.png"))
    face = prepare_faces(image, landmarks="detect")[0]
    first = fit_faces(face.crop[np.newaxis], face.crop_landmarks68[np.newaxis], model, settings)
    shifted = face.crop_landmarks68 + [3.0, 0.0]  # a different batch in between
    fit_faces(face.crop[np.newaxis], shifted[np.newaxis], model, settings)
    again = fit_faces(face.crop[np.newaxis], face.crop_landmarks68[np.newaxis], model, settings)
    np.testing.assert_allclose(again.coefficients, first.coefficients, rtol=0, atol=1e-5)
    assert first.landmark_error[0] < 3.0


def test_outline_landmarks_move_only_jaw_points_and_only_closer_to_targets():
    """silhouette_landmarks_2d: jaw points (chin included) on the fitted
    face's outline where that is nearer the detected point; the rest are the
    fixed landmark vertices."""
    model = default_face_model()
    settings = FitSettings(pose_steps=10, landmark_steps=60, appearance_steps=0, joint_steps=0)
    image = load_image(paths.data_file("demo_images/eos_300W_image_0010_68pts/image_0010.png"))
    face = prepare_faces(image, landmarks="detect")[0]
    result = fit_faces(face.crop[np.newaxis], face.crop_landmarks68[np.newaxis], model, settings)
    fixed, outline = result.landmarks_2d[0], result.silhouette_landmarks_2d[0]
    np.testing.assert_allclose(outline[17:], fixed[17:], atol=1e-4)
    moved = np.linalg.norm(outline[:17] - fixed[:17], axis=1) > 1e-3
    assert moved[6:11].any(), "no chin point reached the outline"
    targets = face.crop_landmarks68[:17]
    outline_error = np.linalg.norm(outline[:17] - targets, axis=1)
    fixed_error = np.linalg.norm(fixed[:17] - targets, axis=1)
    assert np.all(outline_error[moved] < fixed_error[moved])


def test_surrey_model_fits_without_its_missing_landmarks():
    """The Surrey model lacks 18 of the 68 landmarks (-1): they are left out
    of the fit (never gathered as vertex -1) and come back as NaN rows."""
    model = load_face_model("surrey")
    missing = model.landmarks < 0
    assert missing.sum() == 18
    settings = FitSettings(pose_steps=5, landmark_steps=20, appearance_steps=2, joint_steps=2)
    image = load_image(paths.data_file("demo_images/astronaut_eileen_collins_public_domain.png"))
    face = prepare_faces(image, landmarks="detect")[0]
    result = fit_faces(face.crop[np.newaxis], face.crop_landmarks68[np.newaxis], model, settings)
    for points in (result.landmarks_2d[0], result.silhouette_landmarks_2d[0]):
        assert np.all(np.isnan(points[missing])) and np.all(np.isfinite(points[~missing]))
    assert np.all(np.isfinite(result.coefficients)) and result.landmark_error[0] < 3.0


def test_five_point_targets_average_only_the_landmarks_a_model_has():
    from mgc.fitting import landmarks
    present = np.ones(68, bool)
    present[36:39] = False  # half of the right eye
    selection = landmarks.selection_matrix(5, present)
    np.testing.assert_allclose(selection[0, 39:42], 1.0 / 3)
    assert np.all(selection[0, 36:39] == 0)
    present[30] = False  # no nose tip: that target has no model point
    selection = landmarks.selection_matrix(5, present)
    assert landmarks.has_model_points(selection).tolist() == [True, True, False, True, True]
    assert np.all(np.isfinite(landmarks.landmark_weights(selection, 1.0, 5.0)))


def test_a_model_with_too_few_landmarks_is_refused_before_fitting():
    """Fewer than 4 usable landmarks cannot give a pose: FaceModelError names
    the model (a caller can check before any work) instead of a failed fit."""
    from mgc.facemodel import FaceModelError
    from mgc.fitting import check_model_landmarks
    model = load_face_model("bfm_mean")
    assert check_model_landmarks(model).all() and check_model_landmarks(model, 5).all()
    model.landmarks[3:] = -1
    with pytest.raises(FaceModelError, match="has a point for 3 of the 68 landmark targets"):
        check_model_landmarks(model)
    crops = np.zeros((1, 224, 224, 3), np.uint8)
    with pytest.raises(FaceModelError, match="fitting needs at least 4"):
        fit_faces(crops, np.zeros((1, 68, 2), np.float32), model)
