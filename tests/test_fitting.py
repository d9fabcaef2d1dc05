"""The reconstruction pipeline without a network: detect, align, fit.

1. The 300-W image with landmarks="detect" (its .pts ground truth is read
   only for scoring).
2. A face rendered from known coefficients (ICT model, coloured albedo with
   brows and lips, eyeballs painted into the model's eye holes, SH lighting,
   known pose) over a real photo background, at a fixed seed, run through
   the pipeline with detection; scored in the original image's pixels.
NME = mean landmark distance / sqrt(w * h) of the reference landmarks' box.

The bounds are what the fitter achieves today, as regression guards; issue 4
asks for more (fitted NME <= dlib's 1.79 % on the 300-W image: 1.87 % now;
on the rendered face pose within 3 degrees and NME < 2 %: pitch is 4.6
degrees off and NME 3.5 %, limited by dlib's 3.5 % there).
"""
import numpy as np
import pytest
from scipy import ndimage

from mgc import geometry, paths
from mgc.eval.aflw2000 import nme
from mgc.facemodel import CoefficientLayout, default_face_model
from mgc.fitting import FitSettings, fit_faces
from mgc.preprocess import invert, load_image, prepare_faces, read_landmark_file, transform_points
from mgc.render import render_face


def fitted_image_landmarks(image, silhouette=False):
    """Fits the largest detected face; returns (fitted landmarks in image
    pixels, the PreparedFace, the FitResult). silhouette: jaw points on the
    face's outline (2D annotation convention) instead of fixed vertices."""
    face = prepare_faces(image, landmarks="detect", largest_face_only=True)[0]
    result = fit_faces(face.crop[np.newaxis], face.crop_landmarks68[np.newaxis],
                       default_face_model())
    points = result.silhouette_landmarks_2d if silhouette else result.landmarks_2d
    return transform_points(points[0], invert(face.crop_matrix)), face, result


def test_fit_is_at_least_as_close_to_300w_ground_truth_as_dlib():
    folder = "demo_images/eos_300W_image_0010_68pts"
    image = load_image(paths.data_file(f"{folder}/image_0010.png"))
    # 300-W annotates the jaw on the outline: score the silhouette points.
    fitted, face, _ = fitted_image_landmarks(image, silhouette=True)
    truth = read_landmark_file(paths.data_file(f"{folder}/image_0010.pts"))  # scoring only
    fitted_nme, dlib_nme = nme(fitted, truth), nme(face.landmarks68, truth)
    assert dlib_nme < 0.02  # dlib found the face
    assert fitted_nme < 0.0195, f"fitted {fitted_nme:.4f} vs dlib {dlib_nme:.4f}"


def head_angles(rotation):
    """(yaw, pitch, roll) in degrees of a camera rotation relative to the
    frontal default pose: R R0^T = Ry(yaw) Rx(pitch) Rz(roll)."""
    frontal = geometry.rotation_matrix(np.array(geometry.DEFAULT_POSE[:3], np.float32)).numpy()
    r = rotation @ frontal.T
    pitch = np.arcsin(-r[1, 2])
    yaw = np.arctan2(r[0, 2], r[2, 2])
    roll = np.arctan2(r[1, 0], r[1, 1])
    return np.degrees([yaw, pitch, roll])


def _distance_to_polyline(points, polyline):
    """Distance [N] from points [N, 3] to a polyline [P, 3]."""
    best = np.full(len(points), np.inf)
    for a, b in zip(polyline[:-1], polyline[1:]):
        t = np.clip((points - a) @ (b - a) / max((b - a) @ (b - a), 1e-9), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1))
    return best


def synthetic_albedo(model):
    """[1, N, 3] skin with a smooth variation, dark brows and red lips: a
    face a landmark detector can read."""
    mean = model.mean_shape
    albedo = np.array([0.85, 0.62, 0.52]) + 0.05 * np.sin(mean / 25.0)

    def strip(indices, radius, closed=False):
        line = mean[model.landmarks[list(indices) + ([indices[0]] if closed else [])]]
        return np.clip(1.5 - _distance_to_polyline(mean, line) / radius, 0, 1)[:, None]

    brows = np.maximum(strip(range(17, 22), 4.0), strip(range(22, 27), 4.0))
    lips = strip(range(48, 60), 3.0, closed=True)
    albedo = albedo * (1 - brows) + np.array([0.25, 0.17, 0.12]) * brows
    albedo = albedo * (1 - lips) + np.array([0.70, 0.33, 0.33]) * lips
    return np.clip(albedo, 0, 1)[np.newaxis].astype(np.float32)


@pytest.fixture(scope="module")
def synthetic_scene():
    """A 448x448 photo: a rendered ICT face over the astronaut picture's
    background (the flag in its top-left corner, which holds no face)."""
    model = default_face_model()
    layout = CoefficientLayout.for_model(model)
    rng = np.random.default_rng(11)
    parts = dict(identity=rng.normal(0, 0.6, layout.identity), albedo=np.zeros(0),
                 expression=np.clip(rng.normal(0, 0.1, layout.expression), 0, 1),
                 pose=np.zeros(6), lighting=np.tile([0.1, 0.1, 0.25, 0.15, 0, 0, 0, 0, 0], 3))
    coefficients = layout.join(*[np.asarray(parts[k], np.float32)[np.newaxis] for k in
                                 ("identity", "albedo", "expression", "pose", "lighting")])
    # A pose given directly as rotation (yaw 20, pitch 10, roll 5 degrees) and
    # a translation that keeps the face in the picture.
    rotation_angles = np.radians([20.0, 10.0, 5.0])
    yaw, pitch, roll = rotation_angles
    c, s = np.cos, np.sin
    ry = np.array([[c(yaw), 0, s(yaw)], [0, 1, 0], [-s(yaw), 0, c(yaw)]])
    rx = np.array([[1, 0, 0], [0, c(pitch), -s(pitch)], [0, s(pitch), c(pitch)]])
    rz = np.array([[c(roll), -s(roll), 0], [s(roll), c(roll), 0], [0, 0, 1]])
    frontal = geometry.rotation_matrix(np.array(geometry.DEFAULT_POSE[:3], np.float32)).numpy()
    rotation = ry @ rx @ rz @ frontal
    extrinsic = np.concatenate([rotation, np.array([[0.0], [0.0], [geometry.DEFAULT_POSE[5]]])], 1)
    pose = geometry.pose_from_extrinsic(extrinsic).astype(np.float32)
    # Translate so the face's landmark centre sits at the image centre.
    lm = model.mean_shape[model.landmarks].mean(0)
    pose[3:] -= (rotation @ lm) * [1, 1, 0]
    delta = pose - np.asarray(geometry.DEFAULT_POSE, np.float32)
    delta[:3] = (delta[:3] + np.pi) % (2 * np.pi) - np.pi
    layout_parts = layout.split(coefficients)
    coefficients = layout.join(layout_parts["identity"], layout_parts["albedo"],
                               layout_parts["expression"], delta[np.newaxis],
                               layout_parts["lighting"])
    intrinsics = geometry.MGCNET_INTRINSICS.scaled(448, 448)
    albedo = synthetic_albedo(model)
    render = render_face(coefficients, model, intrinsics=intrinsics, albedo=albedo)
    photo = load_image(paths.data_file("demo_images/astronaut_eileen_collins_public_domain.png"))
    background = np.repeat(np.repeat(photo[:150, :150], 3, 0), 3, 1)[:448, :448] / 255.0
    mask = render.mask.numpy()[0]
    image = np.clip(mask * render.image.numpy()[0] + (1 - mask) * background, 0, 1)
    # The model has holes for the eyes: paint eyeballs into them.
    holes = ndimage.binary_fill_holes(mask[..., 0] > 0) & (mask[..., 0] == 0)
    labels, count = ndimage.label(holes)
    for label in range(1, count + 1):
        rows, cols = np.nonzero(labels == label)
        centre = np.array([rows.mean(), cols.mean()])
        radius = 0.45 * (rows.max() - rows.min() + 1)
        iris = np.hypot(rows - centre[0], cols - centre[1]) < radius
        image[rows, cols] = np.where(iris[:, None], [0.25, 0.17, 0.1], [0.9, 0.88, 0.85])
    return ((image * 255).round().astype(np.uint8), render.landmarks_2d.numpy()[0],
            np.degrees(rotation_angles))


def test_pipeline_recovers_pose_and_landmarks_of_a_rendered_face(synthetic_scene):
    image, true_landmarks, true_angles = synthetic_scene
    fitted, face, result = fitted_image_landmarks(image)
    fitted_nme, dlib_nme = nme(fitted, true_landmarks), nme(face.landmarks68, true_landmarks)
    assert fitted_nme <= dlib_nme and fitted_nme < 0.036
    # The crop is a similarity of the photo: undo its in-plane rotation to
    # get the fitted rotation in the photo's camera.
    theta = np.arctan2(face.crop_matrix[1, 0], face.crop_matrix[0, 0])
    in_plane = np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0],
                         [0, 0, 1]])
    pose = geometry.absolute_pose(result.coefficients[:, -33:-27]).numpy()[0]
    rotation = in_plane.T @ geometry.rotation_matrix(pose[np.newaxis, :3]).numpy()[0]
    errors = np.abs(head_angles(rotation) - true_angles)  # yaw, pitch, roll
    assert np.all(errors <= [3.0, 6.0, 3.0]), errors


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
