"""mgc.preprocess: pictures, dlib faces and landmarks, landmark files and
MGCNet's 5-point alignment (MGCNET_REFERENCE.md §7; parity/README.md §1)."""
import dataclasses
import os
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from mgc import paths
from mgc import preprocess

ASTRONAUT = "demo_images/astronaut_eileen_collins_public_domain.png"
IMAGE_300W = "demo_images/eos_300W_image_0010_68pts/image_0010.png"
DEEP3D_IMAGE = "demo_images/deep3dfacerecon_examples_5pt/000002.jpg"
JOHN_CHIP = "demo_images/dlib_johns_5ids_x11/John_Simm/000288_00470387.jpg"


@pytest.fixture(scope="module")
def astronaut():
    return preprocess.load_image(paths.data_file(ASTRONAUT))


def nme(points, truth):
    """Mean point error over sqrt(w * h) of the ground-truth box."""
    width, height = np.ptp(truth, axis=0)
    return float(np.mean(np.linalg.norm(points - truth, axis=1)) / np.sqrt(width * height))


# --- Pictures -------------------------------------------------------------

def test_load_image_rgb_uint8(astronaut):
    assert astronaut.shape == (512, 512, 3) and astronaut.dtype == np.uint8


def test_load_image_converts_gray_rgba_and_applies_exif(tmp_path, astronaut):
    Image.fromarray(astronaut[:, :, 0]).save(tmp_path / "gray.png")
    gray = preprocess.load_image(tmp_path / "gray.png")
    assert gray.shape == (512, 512, 3) and np.array_equal(gray[:, :, 2], astronaut[:, :, 0])

    rgba = np.dstack([astronaut, np.full((512, 512), 255, np.uint8)])
    rgba[:10, :10, 3] = 0  # Transparent corner: composited over white.
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    loaded = preprocess.load_image(tmp_path / "rgba.png")
    assert loaded.shape == (512, 512, 3)
    assert np.all(loaded[:10, :10] == 255) and np.array_equal(loaded[20:], astronaut[20:])

    # A landscape picture stored sideways with EXIF orientation 6 (rotate 90 cw to view).
    sideways = np.zeros((40, 60, 3), np.uint8)
    sideways[:, :10] = 255  # White stripe on the stored left edge -> top after rotation.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(sideways).save(tmp_path / "exif.jpg", exif=exif, quality=95)
    upright = preprocess.load_image(tmp_path / "exif.jpg")
    assert upright.shape == (60, 40, 3)
    assert upright[:8].mean() > 200 and upright[20:].mean() < 50


@pytest.mark.parametrize("content", [b"", b"this is text, not a JPEG\n", "truncated", "garbage"])
def test_load_image_errors_name_the_file(tmp_path, content):
    if content == "truncated":
        with open(paths.data_file(DEEP3D_IMAGE), "rb") as stream:
            content = stream.read()[:2000]
    elif content == "garbage":
        content = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8
    path = tmp_path / "picture.jpg"
    path.write_bytes(content)
    with pytest.raises(preprocess.ImageError, match="picture.jpg"):
        preprocess.load_image(path)


def test_load_image_missing_file(tmp_path):
    with pytest.raises(preprocess.ImageError, match="does not exist"):
        preprocess.load_image(tmp_path / "nothing.png")


# --- Detection and dlib landmarks -------------------------------------------

def test_astronaut_one_face_plausible_landmarks(astronaut):
    faces = preprocess.prepare_faces(astronaut, landmarks="detect")
    assert len(faces) == 1
    face = faces[0]
    assert face.landmark_source == "detected" and face.box.detector == "hog"
    box, lm = face.box, face.landmarks68
    assert lm.shape == (68, 2) and lm.dtype == np.float32
    left_eye, right_eye, nose, mouth_left, mouth_right = face.points5
    assert left_eye[0] < nose[0] < right_eye[0] and mouth_left[0] < nose[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    # Inner face points lie in the box; the jaw may reach a little beyond it.
    inner = lm[17:]
    assert np.all((inner[:, 0] > box.left) & (inner[:, 0] < box.right))
    assert np.all((inner[:, 1] > box.top) & (inner[:, 1] < box.bottom))
    margin = 0.2 * box.width
    assert np.all((lm[:, 0] > box.left - margin) & (lm[:, 0] < box.right + margin))
    assert np.all((lm[:, 1] > box.top - margin) & (lm[:, 1] < box.bottom + margin))
    # The crop puts the 5 points near the template.
    crop_points = preprocess.transform_points(face.points5, face.crop_matrix)
    assert np.abs(crop_points - preprocess.STD_224_BFM09).max() < 8.0
    assert face.crop.shape == (224, 224, 3) and face.crop.dtype == np.uint8


def test_hog_minimum_score_drops_the_mission_patch(astronaut):
    kept = preprocess.FaceDetector("hog", upsample=1).detect(astronaut)
    everything = preprocess.FaceDetector("hog", upsample=1, min_score=0.0).detect(astronaut)
    assert len(kept) == 1 and kept[0].score > 1.0
    assert len(everything) == 2 and min(b.score for b in everything) < 0.3


def test_missing_model_package_names_it(monkeypatch):
    monkeypatch.setattr(preprocess.detection.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install face-recognition-models"):
        preprocess.detection.model_path("mmod_human_face_detector.dat")


def test_cnn_detector_agrees_with_hog(astronaut):
    hog, = preprocess.FaceDetector("hog").detect(astronaut)
    cnn, = preprocess.FaceDetector("cnn").detect(astronaut)
    assert cnn.detector == "cnn"
    assert hog.overlap(cnn) > 0.5


def test_box_overlap_and_mirror():
    box = preprocess.FaceBox(0, 0, 10, 10, 1.0, "hog")
    assert box.mirrored(100) == dataclasses.replace(box, left=90, right=100)
    assert box.mirrored(100).mirrored(100) == box
    assert box.overlap(box) == 1.0
    assert box.overlap(dataclasses.replace(box, left=5, right=15)) == pytest.approx(50 / 150)
    assert box.overlap(dataclasses.replace(box, left=20, right=30)) == 0.0


def test_cnn_box_is_replaced_by_the_best_weak_hog_box_on_the_same_face():
    cnn = preprocess.FaceBox(100, 100, 200, 200, 0.9, "cnn")
    weak = [preprocess.FaceBox(110, 110, 190, 190, -0.2, "hog"),   # same face
            preprocess.FaceBox(105, 115, 185, 195, -0.6, "hog"),   # same face, weaker
            preprocess.FaceBox(150, 150, 190, 190, 0.1, "hog"),    # a part of it
            preprocess.FaceBox(400, 100, 480, 180, 0.2, "hog")]    # elsewhere
    assert preprocess.detection._weak_match(cnn, weak) is weak[0]
    assert preprocess.detection._weak_match(cnn, weak[2:]) is None


def test_fallback_gives_each_cnn_face_its_own_weak_hog_box(monkeypatch):
    boxes = {"hog": [preprocess.FaceBox(110, 110, 190, 190, -0.2, "hog")],
             "cnn": [preprocess.FaceBox(100, 100, 200, 200, 0.9, "cnn"),
                     preprocess.FaceBox(105, 100, 205, 200, 0.5, "cnn")]}
    monkeypatch.setattr(preprocess.FaceDetector, "detect", lambda self, image: list(boxes[self.kind]))
    found = preprocess.detect_with_fallback(np.zeros((300, 400, 3), np.uint8))
    # The weak box overlaps both (its mirror-image copy, at x 210-290,
    # neither); the first CNN face takes it, the second keeps its own box.
    assert found == [boxes["cnn"][1], dataclasses.replace(boxes["hog"][0], detector="hog+cnn")]
    strong = preprocess.FaceBox(0, 0, 50, 50, 0.8, "hog")
    boxes["hog"].append(strong)
    assert preprocess.detect_with_fallback(np.zeros((300, 400, 3), np.uint8)) == [strong]


@pytest.mark.parametrize("name", ["image00330.jpg", "image00176.jpg"])
def test_fallback_prefers_a_confirmed_weak_hog_box_on_a_turned_face(name):
    """AFLW2000-3D faces turned 45 and 33 degrees: HOG finds nothing above
    its threshold; on the CNN detector's box dlib's landmarks are far off
    (NME 0.40, 0.16), on the confirmed weak HOG box (found in the picture,
    in the mirror image) much nearer (0.09, 0.06)."""
    names = open(paths.data_file("aflw2000_3d/AFLW2000-3D_file_list.txt")).read().split()
    pts68 = np.load(paths.data_file("aflw2000_3d/gt_arrays_3ddfa/AFLW2000-3D.pts68.npy"))
    truth = pts68[names.index(name)][:2].T  # scoring only
    image = preprocess.load_image(paths.data_file(f"aflw2000_3d/subset_every10th/{name}"))
    assert not preprocess.FaceDetector("hog").detect(image)
    box, = preprocess.detect_with_fallback(image)
    cnn, = preprocess.FaceDetector("cnn").detect(image)
    assert box.detector == "hog+cnn" and box.overlap(cnn) >= 0.4
    predictor = preprocess.LandmarkPredictor()
    assert nme(predictor.predict(image, box), truth) < 0.5 * nme(predictor.predict(image, cnn), truth)


def test_detector_names_on_a_face_hog_misses():
    """auto is HOG with the CNN fallback (the default), hog and cnn one
    detector each."""
    image = preprocess.load_image(paths.data_file("aflw2000_3d/subset_every10th/image00330.jpg"))
    auto, = preprocess.prepare_faces(image, landmarks="detect")
    assert auto.box.detector == "hog+cnn"
    cnn, = preprocess.prepare_faces(image, landmarks="detect", detector="cnn")
    assert cnn.box.detector == "cnn"
    with pytest.raises(preprocess.NoFaceError, match="by the HOG detector in"):
        preprocess.prepare_faces(image, landmarks="detect", detector="hog")
    with pytest.raises(ValueError, match="detector must be one of"):
        preprocess.prepare_faces(image, landmarks="detect", detector="hog+cnn")


def test_large_picture_is_detected_at_reduced_size_and_boxes_scaled_back():
    image = preprocess.load_image(paths.data_file(IMAGE_300W))
    assert max(image.shape) > preprocess.detection.DETECTION_MAX_SIDE
    box = preprocess.FaceDetector().detect(image)[0]
    truth = preprocess.read_pts(paths.data_file(IMAGE_300W[:-4] + ".pts"))
    centre = np.array([(box.left + box.right) / 2, (box.top + box.bottom) / 2])
    assert np.linalg.norm(centre - truth.mean(axis=0)) < 0.15 * box.width
    assert 0.7 < box.width / np.ptp(truth[:, 0]) < 1.5


def test_300w_detected_landmarks_close_to_ground_truth():
    path = paths.data_file(IMAGE_300W)
    truth = preprocess.read_pts(path[:-4] + ".pts")
    face, = preprocess.prepare_faces(path, landmarks="detect")
    assert face.landmark_source == "detected" and face.landmark_file is None
    assert nme(face.landmarks68, truth) < 0.05


def test_mirror_permutation_swaps_sides_and_is_its_own_inverse():
    mirrored = preprocess.detection.MIRRORED_68
    assert sorted(mirrored) == list(range(68))
    np.testing.assert_array_equal(mirrored[mirrored], np.arange(68))
    # Midline points stay; named pairs swap: jaw ends, eye corners, mouth corners.
    assert all(mirrored[i] == i for i in (8, 27, 28, 29, 30, 33, 51, 57, 62, 66))
    assert mirrored[0] == 16 and mirrored[36] == 45 and mirrored[39] == 42
    assert mirrored[48] == 54 and mirrored[60] == 64


def test_mirror_average_is_the_same_for_the_picture_and_its_mirror_image(astronaut):
    """Averaging with the mirror image's answer makes the predictor symmetric:
    the mirror picture gives the mirrored landmarks (up to float rounding)."""
    predictor = preprocess.LandmarkPredictor()
    box = preprocess.FaceDetector("hog").detect(astronaut)[0]
    points, raw = predictor.predict_and_raw(astronaut, box)
    width = astronaut.shape[1]
    flipped_box = dataclasses.replace(box, left=width - box.right, right=width - box.left)
    flipped = predictor.predict(np.ascontiguousarray(astronaut[:, ::-1]), flipped_box)
    flipped[:, 0] = width - 1 - flipped[:, 0]
    np.testing.assert_allclose(flipped[preprocess.detection.MIRRORED_68], points, atol=1e-4)
    # dlib alone is not symmetric: the average differs from its single answer,
    # by at most a few pixels on a frontal face.
    difference = np.linalg.norm(points - raw, axis=1)
    assert 0 < difference.max() < 0.03 * box.width
    np.testing.assert_array_equal(preprocess.LandmarkPredictor(False).predict(astronaut, box), raw)


def test_300w_mirror_average_is_closer_to_ground_truth():
    path = paths.data_file(IMAGE_300W)
    truth = preprocess.read_pts(path[:-4] + ".pts")
    face, = preprocess.prepare_faces(path, landmarks="detect")
    raw_face, = preprocess.prepare_faces(path, landmarks="detect", mirror_average=False)
    np.testing.assert_array_equal(raw_face.landmarks68, face.raw_landmarks68)
    assert nme(face.landmarks68, truth) < nme(face.raw_landmarks68, truth)


def test_no_face_raises():
    gradient = np.zeros((200, 300, 3), np.uint8)
    gradient[..., 0] = np.linspace(0, 255, 300, dtype=np.uint8)[None]
    gradient[..., 1] = np.linspace(0, 255, 200, dtype=np.uint8)[:, None]
    with pytest.raises(preprocess.NoFaceError, match="HOG or CNN"):
        preprocess.prepare_faces(gradient)


def test_two_faces_largest_first(astronaut):
    chip = cv2.resize(preprocess.load_image(paths.data_file(JOHN_CHIP)), (300, 300),
                      interpolation=cv2.INTER_CUBIC)
    right = np.full((512, 300, 3), 128, np.uint8)
    right[100:400] = chip
    picture = np.concatenate([astronaut, right], axis=1)  # 812 x 512: no downscaling.
    faces = preprocess.prepare_faces(picture)
    assert len(faces) == 2
    assert faces[0].box.area > faces[1].box.area
    assert faces[0].box.left > 512 and faces[1].box.right < 512  # The chip face is larger.
    largest = preprocess.prepare_faces(picture, largest_face_only=True)
    assert len(largest) == 1 and largest[0].box == faces[0].box
    np.testing.assert_array_equal(largest[0].crop, faces[0].crop)


# --- Landmark files -------------------------------------------------------------

def test_300w_auto_reads_the_pts_file():
    path = paths.data_file(IMAGE_300W)
    face, = preprocess.prepare_faces(path)  # landmarks="auto"
    truth = preprocess.read_pts(path[:-4] + ".pts")
    assert face.landmark_source == "file" and face.box is None
    assert face.landmark_file.endswith("image_0010.pts")
    np.testing.assert_array_equal(face.landmarks68, truth)
    np.testing.assert_allclose(truth[0], [610.284152, 271.773913], rtol=1e-7)  # 1-based file
    np.testing.assert_allclose(face.crop_landmarks68,
                               preprocess.transform_points(truth, face.crop_matrix), atol=1e-4)


def test_deep3d_five_point_file():
    path = paths.data_file(DEEP3D_IMAGE)
    expected = [[142.84, 207.18], [222.02, 203.9], [159.24, 253.57], [146.59, 290.93],
                [227.52, 284.74]]
    assert preprocess.find_landmark_file(path).endswith(os.path.join("detections", "000002.txt"))
    face, = preprocess.prepare_faces(path, landmarks="files")
    assert face.landmark_source == "file" and face.landmarks68 is None
    assert face.crop_landmarks68 is None and face.box is None
    np.testing.assert_allclose(face.points5, expected, rtol=1e-6)
    # A turned head: the nose tip lands ~15 px from the frontal template's.
    crop_points = preprocess.transform_points(face.points5, face.crop_matrix)
    assert np.abs(crop_points - preprocess.STD_224_BFM09).max() < 20.0


def test_files_mode_requires_a_file(tmp_path):
    image_path = tmp_path / "face.png"
    shutil.copyfile(paths.data_file(ASTRONAUT), image_path)
    with pytest.raises(FileNotFoundError) as error:
        preprocess.prepare_faces(str(image_path), landmarks="files")
    for candidate in ("face.pts", "face.txt", os.path.join("detections", "face.txt")):
        assert candidate in str(error.value)


def test_txt_formats_and_search_order(tmp_path):
    points = np.random.RandomState(0).uniform(0, 500, (68, 2)).round(3)
    lines = [f"{x},{y}" for x, y in points]
    (tmp_path / "a.txt").write_text("68\n" + "\n".join(lines) + "\n")
    np.testing.assert_allclose(preprocess.read_landmark_file(str(tmp_path / "a.txt")), points,
                               rtol=1e-6)
    (tmp_path / "b.txt").write_text("\n".join(f"{x} \t {y}" for x, y in points[:5]))
    np.testing.assert_allclose(preprocess.read_txt(str(tmp_path / "b.txt")), points[:5], rtol=1e-6)

    image = tmp_path / "c.jpg"
    assert preprocess.find_landmark_file(str(image)) is None
    (tmp_path / "detections").mkdir()
    shutil.copyfile(tmp_path / "b.txt", tmp_path / "detections" / "c.txt")
    assert preprocess.find_landmark_file(str(image)).endswith(os.path.join("detections", "c.txt"))
    shutil.copyfile(tmp_path / "b.txt", tmp_path / "c.txt")
    assert preprocess.find_landmark_file(str(image)) == str(tmp_path / "c.txt")


@pytest.mark.parametrize("text, message", [
    ("1 2\n3 4\n5 x\n7 8\n9 10\n", r"bad\.txt, line 3"),
    ("1 2\n3 4 5\n", r"bad\.txt, line 2"),
    ("1 2\n3 4\n5 6\n", r"bad\.txt: holds 3 points"),
    ("5\n1 2\n3 4\n", r"bad\.txt, line 1: the first line says 5"),
])
def test_txt_errors_name_file_and_line(tmp_path, text, message):
    (tmp_path / "bad.txt").write_text(text)
    with pytest.raises(preprocess.LandmarkFileError, match=message):
        preprocess.read_landmark_file(str(tmp_path / "bad.txt"))


def test_pts_errors(tmp_path):
    body = "\n".join(["1 2"] * 68)
    (tmp_path / "n.pts").write_text(f"version: 1\nn_points: 5\n{{\n{body}\n}}\n")
    with pytest.raises(preprocess.LandmarkFileError, match=r"n\.pts.*n_points is 5 but 68"):
        preprocess.read_pts(str(tmp_path / "n.pts"))
    (tmp_path / "open.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n")
    with pytest.raises(preprocess.LandmarkFileError, match=r"open\.pts"):
        preprocess.read_pts(str(tmp_path / "open.pts"))


# --- Alignment -------------------------------------------------------------

def test_five_points_indices():
    lm = np.arange(136, dtype=np.float64).reshape(68, 2)
    points = preprocess.five_points(lm)
    np.testing.assert_array_equal(points[0], lm[36:42].mean(axis=0))
    np.testing.assert_array_equal(points[1], lm[42:48].mean(axis=0))
    np.testing.assert_array_equal(points[2:], lm[[33, 48, 54]])


def test_similarity_recovers_a_known_transform_and_never_reflects():
    rs = np.random.RandomState(1)
    source = rs.uniform(0, 400, (5, 2))
    angle, scale, shift = 0.4, 0.7, np.array([12.0, -30.0])
    linear = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = preprocess.similarity_transform(source, source @ linear.T + shift)
    np.testing.assert_allclose(matrix[:2, :2], linear, atol=1e-12)
    np.testing.assert_allclose(matrix[:2, 2], shift, atol=1e-10)
    np.testing.assert_array_equal(matrix[2], [0, 0, 1])
    mirrored = source * [-1.0, 1.0]
    assert np.linalg.det(preprocess.similarity_transform(source, mirrored)[:2, :2]) > 0


def test_invert_round_trips(astronaut):
    face, = preprocess.prepare_faces(astronaut, landmarks="detect")
    matrix = face.crop_matrix
    back = preprocess.transform_points(face.crop_landmarks68, preprocess.invert(matrix))
    np.testing.assert_allclose(back, face.landmarks68, atol=1e-3)
    np.testing.assert_allclose(preprocess.invert(matrix) @ matrix, np.eye(3), atol=1e-12)


def test_template_scales_with_crop_size(astronaut):
    points5 = preprocess.STD_224_BFM09 * 2.0 + 10.0
    crop, matrix = preprocess.align(astronaut, points5, size=112)
    assert crop.shape == (112, 112, 3)
    np.testing.assert_allclose(preprocess.transform_points(points5, matrix),
                               preprocess.STD_224_BFM09 / 2, atol=1e-9)


@pytest.fixture(scope="module")
def parity():
    """The oracle's crops and the AFLW2000-3D ground truth they were made from."""
    root = os.environ.get("MGC_PARITY") or os.path.join(paths.data_root(), "..", "parity")
    path = os.path.join(root, "expected_outputs_images01.npz")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: the parity oracle lives in shared/parity (or $MGC_PARITY)")
    oracle = np.load(path)
    names = open(paths.data_file("aflw2000_3d/AFLW2000-3D_file_list.txt")).read().split()
    pts68 = np.load(paths.data_file("aflw2000_3d/gt_arrays_3ddfa/AFLW2000-3D.pts68.npy"))
    cases = []
    for k, name in enumerate(oracle["input_names"]):
        truth = pts68[names.index(f"{name}.jpg")][:2].T  # [68, 2] x, y
        image = preprocess.load_image(paths.data_file(f"mgcnet_reference/test/{name}.jpg"))
        cases.append((name, truth, image, oracle["input_crop_M"][k],
                      oracle["input_lm68_crop"][k], oracle["input_uint8"][k]))
    return cases


def test_alignment_parity_with_the_oracle(parity):
    assert len(parity) == 2
    for name, truth, image, matrix, lm_crop, crop_expected in parity:
        points5 = preprocess.five_points(truth)
        ours = preprocess.similarity_transform(points5, preprocess.STD_224_BFM09)
        np.testing.assert_allclose(ours, matrix, rtol=1e-6, atol=1e-6 * np.abs(matrix).max(),
                                   err_msg=name)
        np.testing.assert_allclose(preprocess.transform_points(truth, ours), lm_crop, atol=1e-3,
                                   err_msg=name)
        crop, aligned_matrix = preprocess.align(image, points5)
        np.testing.assert_array_equal(aligned_matrix, ours)
        difference = np.abs(crop.astype(np.int16) - crop_expected.astype(np.int16))
        assert np.mean(np.all(difference <= 2, axis=-1)) >= 0.99, name
