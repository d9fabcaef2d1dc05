"""The face-mesh backend (issue 14): BlazeFace's anchors and boxes, the mesh
model's crops, the model files' set-up, the calibrated correspondences, the
3-D closed-form pose, and the fit on rendered faces turned 60-80 degrees."""
import zipfile

import numpy as np
import pytest

from mgc.eval import synthetic
from mgc.eval.aflw2000 import nme
from mgc.facemodel import CoefficientLayout, default_face_model, load_face_model
from mgc.fitting import FitSettings, fit_faces, initial_pose_delta, keypoints, mesh_targets
from mgc.preprocess import FaceBox, face_mesh, mesh_models, prepare_faces, transform_points


def test_anchor_grids_have_the_models_output_counts():
    full, short = face_mesh.anchors("full"), face_mesh.anchors("short")
    assert full.shape == (2304, 2) and short.shape == (896, 2)  # 48x48; 16x16x2 + 8x8x6
    np.testing.assert_allclose(full[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(short[:2], [[0.5 / 16, 0.5 / 16]] * 2)
    np.testing.assert_allclose(short[512:518], [[0.5 / 8, 0.5 / 8]] * 6)
    assert full.min() > 0 and full.max() < 1


def test_weighted_nms_averages_overlapping_boxes_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float64)
    keypoints = np.zeros((3, 6, 2))
    found = face_mesh.weighted_nms(boxes, keypoints, np.array([0.9, 0.3, 0.6]))
    assert len(found) == 2
    np.testing.assert_allclose(found[0][0], [0.25, 0, 10.25, 10])  # (0.9 * 0 + 0.3 * 1) / 1.2
    assert found[0][2] == 0.9 and found[1][2] == 0.6


def test_crop_matrix_centres_the_box_and_levels_the_eye_line():
    angle = np.radians(20.0)
    matrix = face_mesh.crop_matrix([100.0, 50.0], 96.0, angle)
    centre = transform_points(np.array([[100.0, 50.0]]), matrix)[0]
    np.testing.assert_allclose(centre, [95.5, 95.5])
    eye_line = np.array([[100.0, 50.0], [100.0 + np.cos(angle), 50.0 + np.sin(angle)]])
    ends = transform_points(eye_line, matrix)
    assert abs(ends[1, 1] - ends[0, 1]) < 1e-9 and ends[1, 0] - ends[0, 0] == pytest.approx(2.0)


def test_first_crop_turns_with_the_eyes_unless_they_nearly_meet():
    """BlazeFace's eyes set the first crop's roll; on a profile they nearly
    meet and their line points anywhere, so the crop stays level."""
    apart = FaceBox(0, 0, 100, 100, 0.9, "blazeface", eyes=((30.0, 40.0), (70.0, 50.0)))
    _, side, angle = face_mesh._box_roi(apart)
    assert angle == pytest.approx(np.arctan2(10.0, 40.0)) and side == pytest.approx(150.0)
    close = 0.9 * face_mesh.MIN_EYE_DISTANCE * 100.0  # eyes closer than the limit
    profile = FaceBox(0, 0, 100, 100, 0.9, "blazeface", eyes=((50.0, 40.0), (50.0, 40.0 + close)))
    assert face_mesh._box_roi(profile)[2] == 0.0


def test_mirrored_box_swaps_and_mirrors_its_keypoints():
    box = FaceBox(10, 20, 50, 60, 0.9, "blazeface", eyes=((20.0, 30.0), (40.0, 31.0)),
                  nose_tip=(31.0, 40.0), mouth_centre=(30.0, 50.0))
    mirrored = box.mirrored(100)
    assert (mirrored.left, mirrored.right) == (50, 90)
    assert mirrored.eyes == ((59.0, 31.0), (79.0, 30.0))
    assert (mirrored.nose_tip, mirrored.mouth_centre) == ((68.0, 40.0), (69.0, 50.0))
    scaled = box.scaled(2.0)
    assert scaled.eyes == ((40.0, 60.0), (80.0, 62.0))
    assert (scaled.nose_tip, scaled.mouth_centre) == ((62.0, 80.0), (60.0, 100.0))
    plain = FaceBox(10, 20, 50, 60, 0.9, "hog")
    assert plain.mirrored(100).nose_tip is None and plain.scaled(2.0).mouth_centre is None


# A frontal face 100 pixels wide: BlazeFace's right eye, left eye, nose tip and
# mouth centre, and a mesh answer whose points put them exactly there.
_KEYPOINTS = np.array([[35.0, 40.0], [65.0, 40.0], [50.0, 58.0], [50.0, 75.0]])


def _keypoint_box(shift=(0.0, 0.0)):
    k = _KEYPOINTS + np.asarray(shift)
    return FaceBox(0, 0, 100, 100, 0.9, "blazeface", eyes=(tuple(k[0]), tuple(k[1])),
                   nose_tip=tuple(k[2]), mouth_centre=tuple(k[3]))


def _mesh_answer(score):
    lm = np.full((68, 2), 50.0)
    lm[36:42], lm[42:48], lm[30] = _KEYPOINTS[0], _KEYPOINTS[1], _KEYPOINTS[2]
    lm[62] = lm[66] = _KEYPOINTS[3]
    points = np.zeros((face_mesh.MESH_POINTS, 3), np.float32)
    points[face_mesh.mesh_68(), :2] = lm
    return face_mesh.MeshAnswer(points=points, score=score)


def test_mesh_keypoints_are_read_where_blazeface_marks_them():
    np.testing.assert_allclose(face_mesh.mesh_keypoints(_mesh_answer(0.9).points), _KEYPOINTS)
    assert face_mesh.keypoint_disagreement(_mesh_answer(0.9).points, _keypoint_box()) == 0.0
    moved = face_mesh.keypoint_disagreement(_mesh_answer(0.9).points, _keypoint_box((6, 8)))
    assert moved == pytest.approx(0.1)  # 10 pixels of a 100-pixel box
    assert face_mesh.keypoint_disagreement(_mesh_answer(0.9).points,
                                           FaceBox(0, 0, 100, 100, 0.9, "hog")) is None


def test_a_mesh_answer_fails_only_when_it_disagrees_and_its_flag_is_low():
    far = (0.0, 100.0 * (face_mesh.MAX_KEYPOINT_DISAGREEMENT + 0.02))
    near = (0.0, 100.0 * (face_mesh.MAX_KEYPOINT_DISAGREEMENT - 0.02))
    low, high = face_mesh.MAX_FAILED_FLAG - 0.1, face_mesh.MAX_FAILED_FLAG + 0.1
    reason = face_mesh.mesh_failure(_mesh_answer(low), _keypoint_box(far))
    assert "0.10 box widths" in reason and f"{low:.2f}" in reason
    assert face_mesh.mesh_failure(_mesh_answer(high), _keypoint_box(far)) is None
    assert face_mesh.mesh_failure(_mesh_answer(low), _keypoint_box(near)) is None
    assert face_mesh.mesh_failure(_mesh_answer(low), FaceBox(0, 0, 100, 100, 0.9, "hog")) is None
    # A mirror average fails where either view does, even if their mean would not.
    good, bad = _mesh_answer(high), _mesh_answer(low)
    average = face_mesh.MeshAnswer(points=good.points, score=high, views=(good, bad))
    assert face_mesh.mesh_failure(average, _keypoint_box(far)) is not None
    average = face_mesh.MeshAnswer(points=good.points, score=high, views=(good, good))
    assert face_mesh.mesh_failure(average, _keypoint_box(far)) is None


def test_five_points_from_blazeface_put_the_mouth_corners_across_its_centre():
    five = face_mesh.keypoint_points5(_keypoint_box())
    half = face_mesh.MOUTH_HALF_WIDTH * 30.0
    np.testing.assert_allclose(five, [[35, 40], [65, 40], [50, 58], [50 - half, 75],
                                      [50 + half, 75]])


def test_a_failed_mesh_answer_is_aligned_and_fitted_on_the_keypoints():
    from mgc.export.results import fit_target_landmarks
    from mgc.preprocess import pipeline
    image = np.full((100, 100, 3), 128, np.uint8)
    box = _keypoint_box((0.0, 20.0))
    failed = pipeline._mesh_face(image, box, _mesh_answer(0.1), 224)
    assert failed.mesh_failure is not None and failed.crop_mesh_points is None
    assert failed.landmarks68 is None and failed.raw_landmarks68.shape == (68, 2)
    np.testing.assert_allclose(failed.points5, face_mesh.keypoint_points5(box))
    assert fit_target_landmarks(failed).shape == (5, 2)
    kept = pipeline._mesh_face(image, _keypoint_box(), _mesh_answer(0.1), 224)
    assert kept.mesh_failure is None and kept.crop_mesh_points.shape == (468, 3)
    np.testing.assert_array_equal(kept.landmarks68, kept.raw_landmarks68)


def test_missing_model_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv(mesh_models.ENVIRONMENT_VARIABLE, str(tmp_path))
    with pytest.raises(mesh_models.MeshModelError) as error:
        mesh_models.model_file("face_landmark.tflite")
    message = str(error.value)
    assert str(tmp_path) in message and "mediapipe==0.10.21" in message
    assert "make build" in message and "--landmarks_model=dlib" in message


def test_extraction_refuses_a_file_with_another_hash(tmp_path):
    wheel = tmp_path / "mediapipe-0.10.21-fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, _ in mesh_models.FILES.values():
            archive.writestr(member, b"not the model")
    with pytest.raises(mesh_models.MeshModelError, match="has SHA-256"):
        mesh_models.extract(str(wheel), str(tmp_path / "out"))
    assert mesh_models.main(["--wheel_dir", str(tmp_path / "none")]) == 2


def test_the_installed_files_are_the_pinned_ones():
    for name, (_, digest) in mesh_models.FILES.items():
        with open(mesh_models.model_file(name), "rb") as stream:
            assert mesh_models.sha256(stream.read()) == digest, name


@pytest.mark.parametrize("name", ["ict", "surrey", "bfm_mean"])
def test_every_built_in_model_has_a_mesh_correspondence(name):
    model = load_face_model(name)
    vertices = mesh_targets.correspondence(model)
    assert vertices.shape == (468,) and vertices.max() < model.num_vertices
    assert len(np.unique(vertices)) > 400  # points of one face, not a few vertices


def test_keypoints_file_is_the_bfm_keypoints_carried_onto_each_model():
    """keypoints_68.json holds what compute_keypoints makes now, and for ICT
    its jaw lies where BFM09's keypoints are (within 3 mm after the
    alignment), not at ICT's own jaw landmarks (18.7 mm away on average)."""
    reference = load_face_model("bfm_mean")
    for name in ("ict", "surrey"):
        model = load_face_model(name)
        vertices, report = keypoints.compute_keypoints(model, reference)
        np.testing.assert_array_equal(keypoints.keypoint_vertices(model), vertices)
        assert report["nearest_distance_mm"] < 3.0 and report["anchor_error_mm"] < 3.0
    ict = load_face_model("ict")
    assert keypoints.compute_keypoints(ict, reference)[1]["jaw_moved_mm"] > 15.0
    # A model with BFM's own keypoints keeps them.
    np.testing.assert_array_equal(keypoints.keypoint_vertices(reference), reference.landmarks)


def test_mirror_file_is_what_the_built_in_models_correspondences_give():
    """face_mesh_mirror.json is mesh_targets.mirror_map of the built-in models
    now: a permutation that is its own inverse, with the midline's points
    (the nose tip among them) their own mirrors."""
    from experiments.calibrate_landmarks import MIRROR_MODELS
    mirror = mesh_targets.mirror_map([load_face_model(name) for name in MIRROR_MODELS])
    np.testing.assert_array_equal(face_mesh.mirror_map(), mirror)
    nose = face_mesh.mesh_68()[30]
    assert mirror[nose] == nose and 10 < np.sum(mirror == np.arange(468)) < 60
    # The iBUG eyes read off the mesh swap sides.
    right_eye, left_eye = face_mesh.mesh_68()[36:42], face_mesh.mesh_68()[42:48]
    assert set(mirror[right_eye]) & set(left_eye)


def test_a_mirror_map_needs_a_model_with_a_correspondence():
    class Unknown:
        num_vertices = 1234
    with pytest.raises(ValueError, match="correspondence"):
        mesh_targets.mirror_map([Unknown()])


def test_mirror_averaged_answer_of_a_mirrored_picture_is_the_mirrored_answer(rendered_faces):
    """The mirror average sees the same two crops of a picture and of its
    mirror image (the crop mirrored: centre x -> W - 1 - x, roll negated), so
    their answers are each other's mirrors, re-labelled by the mirror map, to
    rounding; single answers are not."""
    image = rendered_faces[0].image
    width = image.shape[1]
    flipped = np.ascontiguousarray(image[:, ::-1])
    centre, side, angle = face_mesh._box_roi(face_mesh.BlazeFaceDetector().detect(image)[0])
    mirrored_centre = np.array([width - 1 - centre[0], centre[1]])

    def mirrored_gap(mirror):
        points = face_mesh._answer(image, centre, side, angle, mirror).points
        other = face_mesh._answer(flipped, mirrored_centre, side, -angle, mirror).points
        if mirror is None:
            mirror = face_mesh.mirror_map()
        other = other[mirror]
        other[:, 0] = width - 1 - other[:, 0]
        return np.abs(points - other).max()

    assert mirrored_gap(face_mesh.mirror_map()) < 0.05
    assert mirrored_gap(None) > 0.2


def test_a_model_of_unknown_topology_has_no_correspondence():
    class Unknown:  # no built-in model has this topology
        num_vertices = 1234
    assert mesh_targets.correspondence(Unknown()) is None


def test_closed_form_pose_from_depth_recovers_a_profile():
    """With a depth per point the rotation comes from a 3-D similarity: a
    head turned 75 degrees comes back exactly (2-D points alone blur it)."""
    model = default_face_model()
    points = model.mean_shape[::40].astype(np.float64)
    truth = np.zeros(6)
    truth[1] = np.radians(75.0)
    pose = np.asarray(face_mesh_pose(truth))
    from mgc import geometry
    camera = geometry.transform_points(points[None].astype(np.float32), pose[None]).numpy()[0]
    pixels = geometry.project_to_image(camera[None]).numpy()[0]
    scale = geometry.MGCNET_INTRINSICS.focal / camera[:, 2].mean()
    with_depth = np.concatenate([pixels, (camera[:, 2:] - camera[:, 2:].mean()) * scale], 1)
    delta = initial_pose_delta(points, with_depth)
    np.testing.assert_allclose(delta[:3], truth[:3], atol=np.radians(0.5))


def face_mesh_pose(delta):
    from mgc import geometry
    return np.asarray(geometry.DEFAULT_POSE, np.float32) + np.asarray(delta, np.float32)


@pytest.fixture(scope="module")
def rendered_faces():
    """ICT faces turned 20, 65 and -75 degrees (known identity and pose)."""
    model = default_face_model()
    layout = CoefficientLayout.for_model(model)
    rng = np.random.default_rng(5)
    scenes = []
    for angles in ((20.0, 5.0, 3.0), (65.0, -5.0, 0.0), (-75.0, 5.0, -4.0)):
        identity = rng.normal(0, 0.6, layout.identity)
        expression = np.clip(rng.normal(0, 0.1, layout.expression), 0, 1)
        scenes.append(synthetic.render_scene(model, identity, expression, angles,
                                             synthetic.flag_background()))
    return scenes


def test_mesh_points_land_on_a_rendered_face(rendered_faces):
    scene = rendered_faces[0]
    face = prepare_faces(scene.image, landmarks="detect", largest_face_only=True,
                         landmarks_model="mesh")[0]
    assert face.box.detector == "blazeface" and face.mesh_points.shape == (468, 3)
    assert nme(face.landmarks68, scene.landmarks) < 0.05
    np.testing.assert_allclose(face.crop_mesh_points[:, :2],
                               transform_points(face.mesh_points[:, :2], face.crop_matrix),
                               atol=1e-3)
    # Depth: larger is farther; the nose tip (iBUG 30) is the nearest point.
    nose = face_mesh.mesh_68()[30]
    assert face.mesh_points[nose, 2] < np.percentile(face.mesh_points[:, 2], 2)


@pytest.mark.xfail(strict=True, reason=(
    "issue 14's 5 degrees not met at -75: the mesh model's own answer turns these heads less "
    "than they are (closed-form start 57.7 and -59.9 degrees for 65 and -75); with the profile "
    "correspondence the fit reaches 65.2 and -66.7 (60.1 and -61.3 with the front one alone; "
    "the reconstruct defaults 61.7 and -64.0 at 140 steps, 67.1 and -68.3 at 560); fitted to "
    "the true vertices' projections the same fit gives 63.1 and -73.2; docs/RESULTS.md"))
def test_fit_to_the_mesh_recovers_the_yaw_of_faces_turned_60_to_80_degrees(rendered_faces):
    """Issue 14: yaw within 5 degrees for heads turned 60-80 degrees."""
    turned = rendered_faces[1:]
    faces = [prepare_faces(s.image, landmarks="detect", largest_face_only=True,
                           landmarks_model="mesh")[0] for s in turned]
    settings = FitSettings(pose_steps=40, landmark_steps=120, appearance_steps=0, joint_steps=0)
    result = fit_faces(np.stack([f.crop for f in faces]),
                       np.stack([f.crop_landmarks68 for f in faces]), default_face_model(),
                       settings, mesh_points=np.stack([f.crop_mesh_points for f in faces]))
    poses = result.layout.split(result.coefficients)["pose"]
    for scene, face, pose in zip(turned, faces, poses):
        angles = synthetic.head_angles(synthetic.picture_rotation(face.crop_matrix, pose))
        assert abs(angles[0] - scene.angles[0]) <= 5.0, (angles, scene.angles)


def test_a_face_turned_past_the_profile_yaw_follows_the_profile_table():
    """FitSettings.mesh_profile_yaw: faces the current pose turns more than
    55 degrees either way (here 20, 70 and -70) use the correspondence
    calibrated on turned renders, the others the front one."""
    from mgc.fitting import fitter
    model = default_face_model()
    front, profile = fitter._mesh_vertices(model, np.zeros([1, 468, 3]), 1)
    np.testing.assert_array_equal(front, mesh_targets.correspondence(model))
    np.testing.assert_array_equal(profile, mesh_targets.correspondence(model, profile=True))
    assert np.mean(front != profile) > 0.3  # the mesh's points slide on profiles
    settings = FitSettings(pose_steps=0, landmark_steps=0, appearance_steps=0, joint_steps=0)
    problem = fitter._problem(model, 3, 68, settings, (front, profile))
    turn = np.zeros([3, 6], np.float32)
    turn[:, 1] = np.radians([20.0, 70.0, -70.0])
    problem.reset(np.zeros([3, 224, 224, 3], np.float32), np.zeros([3, 68, 2], np.float32),
                  np.ones([3, 224, 224], np.float32), turn,
                  mesh_targets=np.zeros([3, 468, 3], np.float32))
    np.testing.assert_array_equal(problem.mesh_vertices.numpy(), [front] * 3)  # the start
    np.testing.assert_array_equal(problem.chosen_mesh_tables().numpy(), [front, profile, profile])


@pytest.mark.parametrize("name", ["ict", "surrey", "bfm_mean"])
def test_every_built_in_model_has_a_profile_correspondence(name):
    model = load_face_model(name)
    vertices = mesh_targets.correspondence(model, profile=True)
    assert vertices.shape == (468,) and vertices.max() < model.num_vertices
    assert len(np.unique(vertices)) > 300


def test_mesh_points_on_the_far_side_of_a_turned_head_are_left_out():
    """FitSettings.mesh_facing: at 75 degrees of yaw the mesh points whose
    vertices lie farthest from the camera (the hidden cheek) face away and
    are dropped; those nearest it (the near cheek, the nose) are kept."""
    from mgc import geometry
    from mgc.fitting import fitter
    model = default_face_model()
    vertices = mesh_targets.correspondence(model)
    settings = FitSettings(pose_steps=0, landmark_steps=0, appearance_steps=0, joint_steps=0)
    problem = fitter._problem(model, 1, 68, settings, (vertices, vertices))
    turn = np.zeros([1, 6], np.float32)
    turn[0, 1] = np.radians(75.0)
    problem.reset(np.zeros([1, 224, 224, 3], np.float32), np.zeros([1, 68, 2], np.float32),
                  np.ones([1, 224, 224], np.float32), turn,
                  mesh_targets=np.zeros([1, 468, 3], np.float32))
    facing = problem.facing_mesh_points().numpy()[0]
    camera = geometry.transform_points(model.mean_shape[vertices][None].astype(np.float32),
                                       face_mesh_pose(turn[0])[None]).numpy()[0]
    order = np.argsort(camera[:, 2])  # nearest first
    assert facing[order[:100]].mean() > 0.8 and facing[order[-100:]].mean() < 0.2
    assert facing[face_mesh.mesh_68()[30]] == 1.0  # the nose tip
