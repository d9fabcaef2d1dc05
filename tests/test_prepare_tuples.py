"""The skin-colour model (mgc.preprocess.skin_color) and the real-data
preparation tool (mgc.data.prepare, experiments/prepare_tuples.py), on
copies of the HRN photos of one person (shared/data/demo_images)."""
import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mgc import paths
from mgc.data import layout, prepare
from mgc.preprocess import STD_224_BFM09, five_points, load_image, prepare_faces, skin_color


# --- Skin-colour model --------------------------------------------------------

def _patch(rgb, size=8):
    return np.full((size, size, 3), rgb, np.uint8)


@pytest.mark.parametrize("rgb", [(224, 172, 150), (198, 134, 108), (141, 85, 62), (240, 200, 180)])
def test_skin_coloured_patches_score_high(rgb):
    probability = skin_color.skin_probability_map(_patch(rgb))
    assert probability.shape == (8, 8) and probability.dtype == np.float32
    assert probability.min() > 0.85


@pytest.mark.parametrize("rgb", [(30, 60, 200), (0, 0, 255), (40, 170, 60), (0, 255, 0),
                                 (110, 160, 230)])
def test_blue_and_green_patches_score_low(rgb):
    assert skin_color.skin_probability_map(_patch(rgb)).max() < 0.05


def test_stored_map_has_three_equal_channels_of_255_p():
    image = np.concatenate([_patch((224, 172, 150)), _patch((0, 0, 255))], axis=1)
    stored = skin_color.skin_map_uint8(image)
    assert stored.shape == (8, 16, 3) and stored.dtype == np.uint8
    assert np.array_equal(stored[..., 0], stored[..., 1])
    assert np.array_equal(stored[..., 0], stored[..., 2])
    expected = np.round(skin_color.skin_probability_map(image) * 255)
    np.testing.assert_array_equal(stored[..., 0], expected)


def test_log_space_posterior_equals_bayes_rule_on_ordinary_colours():
    """The posterior prior L_s / (prior L_s + (1 - prior) L_n) written out
    with plain densities, where they do not underflow."""
    rng = np.random.default_rng(0)
    colours = rng.integers(60, 230, (64, 1, 3)).astype(np.uint8)
    ycbcr = skin_color.rgb_to_ycbcr(colours.reshape(-1, 3))

    def density(mixture):
        total = 0.0
        for w, mu, det, inv in zip(mixture.weights, mixture.means,
                                   mixture.covariance_determinants, mixture.inverse_covariances):
            d = ycbcr - mu
            total = total + w * np.exp(-0.5 * np.sum(d @ inv * d, axis=1)) / (
                (2 * np.pi) ** 1.5 * np.sqrt(det))
        return total

    skin = 0.8 * density(skin_color.SKIN_MIXTURE)
    expected = skin / (skin + 0.2 * density(skin_color.NONSKIN_MIXTURE))
    np.testing.assert_allclose(skin_color.skin_probability_map(colours)[:, 0], expected,
                               rtol=1e-5, atol=1e-6)


def test_extreme_colours_give_a_probability_not_nan():
    probability = skin_color.skin_probability_map(np.array([[[0, 0, 0], [255, 255, 255],
                                                             [255, 0, 255]]], np.uint8))
    assert np.all(np.isfinite(probability))


def test_ycbcr_is_bt601_studio_range():
    ycbcr = skin_color.rgb_to_ycbcr(np.array([[0, 0, 0], [255, 255, 255]]))
    np.testing.assert_allclose(ycbcr, [[16, 128, 128], [235, 128, 128]], atol=1e-9)


# The published numbers: Deep3DFaceRecon_pytorch (sicxu, MIT licence),
# util/skin_mask.py, gmm_skin_* / gmm_nonskin_* / prior_skin, the parameters of
# Deng et al.'s skin model (CVPR-W 2019), copied here by hand as the check.
PUBLISHED = {
    "skin": dict(
        weights=[0.24063933, 0.16365987, 0.26034665, 0.33535415],
        means=[[113.71862, 103.39613, 164.08226], [150.19858, 105.18467, 155.51428],
               [183.92976, 107.62468, 152.71820], [114.90524, 113.59782, 151.38217]],
        determinants=[5692842.5, 5851930.5, 2329131., 1585971.],
        inverse_diagonals=[[0.0019472069, 0.017700525, 0.0081308950],
                           [0.0027110141, 0.010707724, 0.017481629],
                           [0.0048026871, 0.011729696, 0.025374353],
                           [0.0011989699, 0.047758564, 0.024502251]]),
    "nonskin": dict(
        weights=[0.12791070, 0.31130761, 0.34245777, 0.21832393],
        means=[[99.200851, 112.07533, 140.20602], [110.91392, 125.52969, 130.19237],
               [129.75864, 129.96107, 126.96808], [112.29587, 128.85121, 129.05431]],
        determinants=[458703648., 6466488., 90611376., 133097.63],
        inverse_diagonals=[[0.00085371657, 0.0025935620, 0.0015042332],
                           [0.00024650150, 0.026412144, 0.037497383],
                           [0.00037054974, 0.0085505722, 0.010982352],
                           [0.00013709733, 0.28237113, 0.23468947]]),
}


@pytest.mark.parametrize("name", ["skin", "nonskin"])
def test_parameters_are_the_published_numbers(name):
    mixture = {"skin": skin_color.SKIN_MIXTURE, "nonskin": skin_color.NONSKIN_MIXTURE}[name]
    published = PUBLISHED[name]
    np.testing.assert_array_equal(mixture.weights, published["weights"])
    np.testing.assert_array_equal(mixture.means, published["means"])
    np.testing.assert_array_equal(mixture.covariance_determinants, published["determinants"])
    diagonals = np.diagonal(mixture.inverse_covariances, axis1=1, axis2=2)
    np.testing.assert_array_equal(diagonals, published["inverse_diagonals"])
    assert skin_color.SKIN_PRIOR == 0.8
    assert np.isclose(mixture.weights.sum(), 1.0, atol=1e-6)


@pytest.mark.parametrize("mixture", [skin_color.SKIN_MIXTURE, skin_color.NONSKIN_MIXTURE])
def test_published_determinants_and_inverses_agree(mixture):
    """A typing slip in the long inverse matrices would show here: the
    published determinants are those of their inverses' inverses."""
    for determinant, inverse in zip(mixture.covariance_determinants,
                                    mixture.inverse_covariances):
        np.testing.assert_array_equal(inverse, inverse.T)
        assert np.isclose(1.0 / np.linalg.det(inverse), determinant, rtol=1e-5)
        assert np.all(np.linalg.eigvalsh(inverse) > 0)


# --- Preparing real photos ----------------------------------------------------

HRN = "demo_images/hrn_same_person_3views"
HRN_PICTURES = ("10078.jpg", "21650.jpg", "5932.jpg")
SIDE = 400  # the 1024-pixel photos shrunk: the detector is fast and still sure


def _copy_pictures(folder, names=HRN_PICTURES):
    """The HRN photos of one person, shrunk, into folder (made)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        picture = Image.open(paths.data_file(os.path.join(HRN, name))).convert("RGB")
        picture.resize((SIDE, SIDE), Image.BILINEAR).save(folder / name, quality=95)


@pytest.fixture(scope="module")
def input_folder(tmp_path_factory):
    """person/ (three pictures), two/ (two), broken/ (one not a picture),
    a picture directly in the folder (not a tuple) and a hidden folder."""
    root = tmp_path_factory.mktemp("people")
    _copy_pictures(root / "person")
    _copy_pictures(root / "two", HRN_PICTURES[:2])
    _copy_pictures(root / "broken", HRN_PICTURES[:2])
    (root / "broken" / "c.jpg").write_bytes(b"not a jpeg at all")
    _copy_pictures(root, HRN_PICTURES[:1])
    (root / ".cache").mkdir()
    return root


@pytest.fixture(scope="module")
def prepared(input_folder, tmp_path_factory):
    """(output folder, Summary) of one run over input_folder."""
    output = tmp_path_factory.mktemp("prepared") / "dataset"
    return output, prepare.prepare_dataset(str(input_folder), str(output))


def _failures(output):
    with open(output / prepare.FAILURES, newline="") as stream:
        return {row["source"]: row["reason"] for row in csv.DictReader(stream)}


def test_a_three_view_folder_becomes_a_tuple_the_layout_reads(prepared, input_folder):
    output, summary = prepared
    assert summary.done == [str(input_folder / "person")]
    assert layout.read_list(output) == [(2, "person", "10078", 1)]
    tuple_ = layout.read_tuple(output, "person", "10078", 2)
    np.testing.assert_array_equal(tuple_.intrinsics, np.repeat(prepare.MGCNET_K[None], 3, 0))
    np.testing.assert_array_equal(tuple_.skins, np.stack([skin_color.skin_map_uint8(crop)
                                                          for crop in tuple_.images]))
    for view in range(3):
        # Aligned as MGCNet: the landmarks' 5 points lie near the template.
        points5 = five_points(tuple_.landmarks[view])
        assert np.abs(points5 - STD_224_BFM09).max() < 12, view
        # The faces are skin to the colour model, the crop corners mostly not.
        lm = tuple_.landmarks[view]
        cheek = np.round((lm[2] + lm[31]) / 2).astype(int)
        assert tuple_.skins[view][cheek[1], cheek[0], 0] > 200
    record = json.loads((output / "person" / "10078_source.json").read_text())
    assert record["status"] == "done" and record["flag"] == 2
    assert record["landmarks"] == ["detected"] * 3
    assert [os.path.basename(p) for p in record["pictures"]] == list(HRN_PICTURES)


def test_the_target_is_the_middle_crop_on_disk(prepared, input_folder):
    output, _ = prepared
    row = np.asarray(Image.open(output / "person" / "10078.jpg"))
    target = prepare.prepare_view(load_image(str(input_folder / "person" / "10078.jpg")),
                                  str(input_folder / "person" / "10078.jpg"))[0]
    np.testing.assert_array_equal(row[:, 224:448], target)


def test_failing_folders_are_recorded_and_the_rest_is_done(prepared, input_folder):
    output, summary = prepared
    assert sorted(summary.failed) == [str(input_folder / "broken"), str(input_folder / "two")]
    reasons = _failures(output)
    assert reasons[str(input_folder / "two")].startswith("pictures: the folder holds 2 picture")
    assert reasons[str(input_folder / "broken")].startswith("unreadable: ")
    assert "c.jpg" in reasons[str(input_folder / "broken")]
    assert sorted(os.listdir(output)) == ["failures.csv", "person", "train.txt"]


def test_a_rerun_skips_done_tuples_and_exits_3(prepared, input_folder):
    output, _ = prepared
    stamp = os.stat(output / "person" / "10078.jpg").st_mtime_ns
    done = _run_cli(f"--input={input_folder}", f"--output={output}")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "0 prepared, 1 already done (skipped), 2 failed" in done.stdout
    assert os.stat(output / "person" / "10078.jpg").st_mtime_ns == stamp
    assert layout.read_list(output) == [(2, "person", "10078", 1)]
    assert len(_failures(output)) == 2


def test_a_run_where_every_source_fails_exits_1(input_folder, tmp_path):
    (tmp_path / "in").mkdir()
    shutil.copytree(input_folder / "two", tmp_path / "in" / "two")
    done = _run_cli(f"--input={tmp_path / 'in'}", f"--output={tmp_path / 'out'}")
    assert done.returncode == 1, done.stderr[-2000:]
    assert layout.read_list(tmp_path / "out") == []


@pytest.mark.parametrize("problem", ["no input", "foreign list"])
def test_set_up_errors_exit_2_with_one_line(problem, input_folder, tmp_path):
    output = tmp_path / "out"
    given = input_folder
    if problem == "no input":
        given = tmp_path / "missing"
    else:
        output.mkdir()
        (output / "train.txt").write_text("2 someone 000001\n")
    done = _run_cli(f"--input={given}", f"--output={output}")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    expected = "does not exist" if problem == "no input" else "did not prepare"
    assert expected in lines[0]


def test_a_list_file_names_the_views_and_foreign_files_are_not_replaced(input_folder, tmp_path):
    lines = ["# target,source1,source2",
             "person/5932.jpg, person/10078.jpg,person/21650.jpg",
             "person/10078.jpg,person/21650.jpg",
             "",
             "person/21650.jpg,person/5932.jpg,person/10078.jpg"]
    (tmp_path / "tuples.txt").write_text("\n".join(lines) + "\n")
    output = tmp_path / "out"
    (output / "person").mkdir(parents=True)
    (output / "person" / "21650.jpg").write_bytes(b"someone else's")
    summary = prepare.prepare_dataset(str(input_folder), str(output),
                                      list_file=str(tmp_path / "tuples.txt"))
    assert layout.read_list(output) == [(2, "person", "5932", 1)]
    record = json.loads((output / "person" / "5932_source.json").read_text())
    assert [os.path.basename(p) for p in record["pictures"]] == ["5932.jpg", "10078.jpg",
                                                                 "21650.jpg"]
    reasons = _failures(output)
    assert reasons[f"{tmp_path / 'tuples.txt'}:3"].startswith("list: 2 comma-separated")
    assert reasons[f"{tmp_path / 'tuples.txt'}:5"].startswith("exists: person/21650")
    assert (output / "person" / "21650.jpg").read_bytes() == b"someone else's"
    assert len(summary.failed) == 2


def test_a_five_point_landmark_file_crops_the_view_and_flags_the_tuple_1(input_folder,
                                                                        tmp_path):
    shutil.copytree(input_folder / "person", tmp_path / "in" / "person")
    picture = str(tmp_path / "in" / "person" / "21650.jpg")
    found = prepare_faces(load_image(picture), landmarks="detect", largest_face_only=True)[0]
    (tmp_path / "in" / "person" / "detections").mkdir()
    np.savetxt(tmp_path / "in" / "person" / "detections" / "21650.txt", found.points5)
    summary = prepare.prepare_dataset(str(tmp_path / "in"), str(tmp_path / "out"))
    assert len(summary.done) == 1
    assert layout.read_list(tmp_path / "out") == [(1, "person", "10078", 1)]
    record = json.loads((tmp_path / "out" / "person" / "10078_source.json").read_text())
    assert record["flag"] == 1 and record["landmarks"] == ["detected", "crop", "detected"]
    tuple_ = layout.read_tuple(tmp_path / "out", "person", "10078", 1)
    np.testing.assert_allclose(five_points(tuple_.landmarks[1]), STD_224_BFM09, atol=12)


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.prepare_tuples", *args],
                          cwd=paths.REPO_ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
