"""mgc.eval.aflw2000: the NME protocol on synthetic numbers, the real yaw
bins, and a two-image smoke run of experiments/evaluate_aflw2000.py."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from mgc import paths
from mgc.eval import aflw2000


def square_face(width=40.0, height=90.0):
    """68 points spread over a width x height extent starting at (10, 20)."""
    rng = np.random.default_rng(0)
    points = rng.uniform([10, 20], [10 + width, 20 + height], size=(68, 2))
    points[0], points[1] = [10, 20], [10 + width, 20 + height]
    return points


def record(name, yaw, fitted=None, dlib=None):
    nme = {}
    if fitted is not None:
        nme[aflw2000.METHOD_FITTED] = fitted
    if dlib is not None:
        nme[aflw2000.METHOD_DLIB] = dlib
    return aflw2000.ImageRecord(name, yaw, {"dlib": "hog"} if nme else {}, nme, 1.0)


# --- Protocol functions -------------------------------------------------------

def test_nme_of_a_shifted_copy_is_the_shift_over_the_box_size():
    gt = square_face(40.0, 90.0)
    assert aflw2000.nme(gt + [3.0, 4.0], gt) == pytest.approx(5.0 / 60.0)
    assert aflw2000.nme(gt, gt) == 0.0


def test_nme_rejects_other_shapes():
    with pytest.raises(ValueError):
        aflw2000.nme(np.zeros((5, 2)), square_face())


@pytest.mark.parametrize("yaw, expected", [
    (0.0, 0), (29.9, 0), (30.0, 1), (-45.0, 1), (59.9, 1), (60.0, 2), (75.0, 2), (-120.0, 2)])
def test_yaw_bins_close_below(yaw, expected):
    assert aflw2000.yaw_bin(yaw) == expected


def test_summary_means_bins_and_counts_faces_not_found_without_averaging_them():
    records = [record("a", 10, 0.01, 0.02), record("b", 20, 0.03, 0.04),
               record("c", 40, 0.05, 0.06), record("d", -70, 0.08, None),
               record("e", 80), record("f", 5)]
    fitted, dlib = aflw2000.summarise(records, (aflw2000.METHOD_FITTED, aflw2000.METHOD_DLIB))
    assert fitted.method == aflw2000.METHOD_FITTED
    np.testing.assert_allclose(fitted.nme, [0.02, 0.05, 0.08])
    assert fitted.mean == pytest.approx(0.05)
    assert fitted.overall == pytest.approx((0.01 + 0.03 + 0.05 + 0.08) / 4)
    assert fitted.scored == [2, 1, 1] and fitted.not_found == [1, 0, 1]
    np.testing.assert_allclose(dlib.nme[:2], [0.03, 0.06])
    assert math.isnan(dlib.nme[2]) and math.isnan(dlib.mean)
    assert dlib.scored == [2, 1, 0] and dlib.not_found == [1, 0, 2]


def test_tables_are_written_and_parse(tmp_path):
    records = [record("a.jpg", 10, 0.0312, 0.0281), record("b.jpg", 45, 0.05, 0.07),
               record("c.jpg", 70, None, None)]
    methods = (aflw2000.METHOD_FITTED, aflw2000.METHOD_DLIB, aflw2000.METHOD_DLIB_MIRRORED)
    table = aflw2000.summarise(records, methods)  # the mirrored method: no numbers, not found
    aflw2000.write_table_csv(table, tmp_path / "results.csv")
    aflw2000.write_table_markdown(table, tmp_path / "results.md", "header line")
    aflw2000.write_per_image_csv(records, tmp_path / "per_image.csv")

    rows = aflw2000.read_csv(tmp_path / "results.csv")
    assert [r["method"] for r in rows] == [aflw2000.METHOD_FITTED, aflw2000.METHOD_DLIB]
    assert float(rows[0]["nme_0-30"]) == pytest.approx(3.12)
    assert rows[0]["nme_60-90"] == "" and rows[0]["not_found_60-90"] == "1"
    assert float(rows[1]["nme_all"]) == pytest.approx(4.905)

    markdown = (tmp_path / "results.md").read_text().splitlines()
    assert markdown[0] == "header line"
    table_lines = [line for line in markdown if line.startswith("|")]
    assert len(table_lines) == 2 + 2  # methods no record has are left out
    assert all(line.count("|") == 9 for line in table_lines)
    assert "| fitted to dlib (ours) | 3.12 | 5.00 | - | **-** | 4.06 |" in table_lines[2]

    per_image = aflw2000.read_csv(tmp_path / "per_image.csv")
    assert [r["bin"] for r in per_image] == ["0-30", "30-60", "60-90"]
    assert per_image[2]["found_fitted"] == "0" and per_image[2]["nme_dlib"] == ""
    assert float(per_image[0]["nme_dlib"]) == pytest.approx(2.81)
    assert [r["box_dlib"] for r in per_image] == ["hog", "hog", ""]
    assert per_image[0]["box_mesh"] == ""


def test_breakdown_groups_faces_by_bin_and_box_source():
    records = [record("a", 10, 0.02, 0.03), record("b", 12, 0.04, 0.05),
               aflw2000.ImageRecord("c", 50, {"dlib": "cnn"}, {aflw2000.METHOD_FITTED: 0.1}),
               record("d", 70)]
    lines = aflw2000.breakdown_markdown(records, "dlib").splitlines()
    assert lines[0].startswith("| yaw | box (dlib) | faces | fitted to dlib (ours) |")
    assert "| 0-30 | HOG | 2 | 3.00 (3.00) | 4.00 (4.00) |" in lines
    assert "| 30-60 | CNN (no HOG box on the face) | 1 | 10.00 (10.00) | - |" in lines
    assert len(lines) == 4  # d found no face: no row


def test_gt_box_is_a_square_on_the_inner_points():
    gt = square_face(40.0, 90.0)
    box = aflw2000.gt_face_box(gt)
    assert box.width == pytest.approx(box.height) == pytest.approx(1.04 * 90.0)
    centre = gt[17:].mean(0)
    assert (box.left + box.right) / 2 == pytest.approx(centre[0])
    assert (box.top + box.bottom) / 2 == pytest.approx(centre[1])
    assert box.detector == "gt"


# --- The real ground truth ----------------------------------------------------

def test_full_set_bins_hold_1312_383_305_images():
    truth = aflw2000.load_ground_truth()
    assert len(truth.names) == 2000 and truth.pts68.shape == (2000, 68, 2)
    counts = np.bincount([aflw2000.yaw_bin(y) for y in truth.yaw], minlength=3)
    assert counts.tolist() == [1312, 383, 305]
    assert truth.index("image00002") == truth.names.index("image00002.jpg")


def test_subset_is_present_and_binned_133_39_28():
    truth = aflw2000.load_ground_truth()
    names = aflw2000.present_images(truth.names, aflw2000.default_image_dir())
    assert len(names) == 200
    bins = np.bincount([aflw2000.yaw_bin(truth.yaw[truth.index(n)]) for n in names])
    assert bins.tolist() == [133, 39, 28]


# --- The script (CI smoke test) -----------------------------------------------

def test_script_smoke_run_on_two_images(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MGC_DATA=paths.data_root())
    command = [sys.executable, "-m", "experiments.evaluate_aflw2000", "--limit=2",
               "--steps=12", f"--output={tmp_path}"]  # 1/8/1/2 steps per stage, both backends
    done = subprocess.run(command, cwd=paths.REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mesh: 2 of 2 faces found" in done.stdout
    assert "dlib: 2 of 2 faces found" in done.stdout
    rows = aflw2000.read_csv(tmp_path / "results.csv")
    assert [r["method"] for r in rows] == list(aflw2000.METHODS)
    per_image = aflw2000.read_csv(tmp_path / "per_image.csv")
    assert [r["name"] for r in per_image] == ["image00002.jpg", "image00022.jpg"]
    for row in per_image:
        assert row["box_mesh"] == "blazeface" and row["box_dlib"] == "hog"
        for method in aflw2000.METHOD_KEYS.values():
            assert 0.0 < float(row[f"nme_{method}"]) < 50.0
    markdown = (tmp_path / "results.md").read_text()
    assert markdown.count("| fitted to mesh (ours) |") == 2  # the table and the breakdown header
    # One image at 0-30 degrees, one at 60-90: one breakdown row each per backend.
    assert markdown.count("| BlazeFace | 1 |") == 2 and markdown.count("| HOG | 1 |") == 2


def test_a_failed_mesh_is_fitted_to_blazefaces_keypoints_beside_a_good_one(tmp_path):
    """image02612: the face mesh lies beside this profile (its own 68 points
    at 42 % NME), its keypoints far from BlazeFace's and its flag low, so that
    face is fitted to BlazeFace's five points, in the same run (a batch of
    its own) as a frontal face fitted to its mesh."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", MGC_DATA=paths.data_root())
    command = [sys.executable, "-m", "experiments.evaluate_aflw2000", "--landmarks_model=mesh",
               "--images=image00002.jpg,image02612.jpg", "--steps=12", f"--output={tmp_path}"]
    done = subprocess.run(command, cwd=paths.REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {r["name"]: r for r in aflw2000.read_csv(tmp_path / "per_image.csv")}
    assert rows["image00002.jpg"]["box_mesh"] == "blazeface"
    failed = rows["image02612.jpg"]
    assert failed["box_mesh"] == "blazeface+keypoints"
    assert float(failed["nme_mesh"]) > 30.0 and float(failed["nme_fitted_mesh"]) < 30.0
    assert "fitted to its keypoints (mesh failed) | 1 |" in (tmp_path / "results.md").read_text()


def test_scored_box_is_blazefaces_most_confident_or_dlibs_largest():
    """Each AFLW2000-3D picture is cut around the annotated face: among
    BlazeFace boxes the most confident one is scored (on one subset picture
    the largest box is another person); dlib's come largest first."""
    from experiments.evaluate_aflw2000 import scored_box
    from mgc.preprocess import FaceBox
    large = FaceBox(0, 0, 200, 200, 0.70, "blazeface")
    confident = FaceBox(150, 150, 300, 300, 0.84, "blazeface")
    assert scored_box([large, confident]) is confident
    hog, cnn = FaceBox(0, 0, 200, 200, 0.5, "hog"), FaceBox(0, 0, 100, 100, 2.0, "cnn")
    assert scored_box([hog, cnn]) is hog
