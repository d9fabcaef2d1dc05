"""experiments/reconstruct.py end to end, through subprocesses (absl flags
stay out of pytest's process): a folder with a corrupt JPEG, a text file
named .png, a picture without a face, one with two faces and a good one;
the files written, the index page, resuming and --overwrite. Few fitting
steps, so the fits are rough: only the plumbing is checked here."""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from mgc import export, paths
from mgc.export import results

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASTRONAUT = "demo_images/astronaut_eileen_collins_public_domain.png"
STEPS = "--steps=8"
FAILED = {"corrupt.jpg": "unreadable", "text.png": "unreadable", "gradient.png": "no face"}
GOOD = ("good", "two_faces")


def reconstruct(*args):
    """Runs the script; returns the CompletedProcess (stdout, stderr text)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "experiments.reconstruct", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


class Output(str):
    """A run's stdout whose `in` failures show stdout and the end of stderr."""

    def __new__(cls, process):
        text = super().__new__(cls, process.stdout)
        text.log = process.stdout + process.stderr[-3000:]
        return text

    def __contains__(self, part):
        assert super().__contains__(part), f"{part!r} not in the output:\n{self.log}"
        return True


def check_ok(process):
    assert process.returncode == 0, process.stdout + process.stderr
    return Output(process)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    face = np.asarray(Image.open(paths.data_file(ASTRONAUT)).convert("RGB"))
    Image.fromarray(face).save(folder / "good.jpg", quality=95)
    Image.fromarray(np.concatenate([face, face[:, ::-1]], axis=1)).save(folder / "two_faces.png")
    ramp = np.linspace(0, 255, 320).astype(np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (240, 1))] * 3, axis=-1)).save(folder / "gradient.png")
    jpeg = (folder / "good.jpg").read_bytes()
    # A JPEG cut short and followed by noise: a header that lies.
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (folder / "corrupt.jpg").write_bytes(jpeg[:len(jpeg) // 3] + noise)
    (folder / "text.png").write_text("not a picture\n")
    (folder / "notes.txt").write_text("not a picture extension: not an input\n")
    return folder


@pytest.fixture(scope="module")
def first_run(inputs, tmp_path_factory):
    output = tmp_path_factory.mktemp("first") / "out"
    stdout = check_ok(reconstruct(f"--input={inputs}", f"--output={output}", STEPS))
    return output, stdout


def read_failures(output):
    with open(output / "failures.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def mtimes(folder):
    return {name: os.stat(folder / name).st_mtime_ns for name in os.listdir(folder)}


def test_failures_are_reported_and_the_rest_reconstructed(first_run):
    output, stdout = first_run
    rows = read_failures(output)
    assert sorted(os.path.basename(row["image"]) for row in rows) == sorted(FAILED)
    for row in rows:
        assert row["reason"].startswith(FAILED[os.path.basename(row["image"])] + ":"), row
        assert os.path.basename(row["image"]) in row["reason"]  # the message names the file
    assert "5 picture(s): 2 reconstructed, 0 already done (skipped), 3 failed" in stdout
    assert "3 face(s) reconstructed" in stdout
    assert re.search(r"Seconds per face on \d+ CPU core\(s\): [\d.]+", stdout)
    assert str(output / "index.html") in stdout
    for stem in GOOD:
        assert results_record(output, stem)["settings"]["steps"] == 8  # --steps is the total
    assert not any((output / name).exists() for name in ("gradient", "corrupt", "text", "notes"))


def test_every_face_gets_files_that_parse(first_run):
    output, _ = first_run
    expected_faces = {"good": 1, "two_faces": 2}
    for stem, count in expected_faces.items():
        record = results_record(output, stem)
        assert len(record["faces"]) == count
        width, height = record["image_size"]
        for face in record["faces"]:
            check_face_files(output / stem, face["files"], width, height)
    # The two faces are different faces (the picture and its mirror image).
    first, second = (np.load(output / "two_faces" / name)["landmarks_image"]
                     for name in ("two_faces_coeffs.npz", "two_faces_face1_coeffs.npz"))
    assert abs(first[:, 0].mean() - second[:, 0].mean()) > 200


def results_record(output, stem):
    with open(output / stem / "done.json") as stream:
        return json.load(stream)


def check_face_files(folder, files, width, height):
    vertices, triangles, colors, uvs, _ = export.read_obj(folder / files["obj"])
    assert len(vertices) > 1000 and len(triangles) > 1000 and colors is not None
    assert np.all(np.isfinite(vertices))
    if "texture" in files:
        assert uvs is not None and (folder / files["texture"]).exists()
    ply_vertices, ply_triangles, _ = export.read_ply(folder / files["ply"])
    np.testing.assert_allclose(ply_vertices, vertices, atol=1e-3)
    np.testing.assert_array_equal(ply_triangles, triangles)

    landmarks = results.read_lm68(folder / files["lm68"])
    assert landmarks.shape == (68, 2) and np.all(np.isfinite(landmarks))
    assert np.all((landmarks >= 0) & (landmarks < [width, height]))
    saved = np.load(folder / files["npz"])
    np.testing.assert_allclose(saved["landmarks_image"], landmarks, atol=1e-3)
    # lm68 is the crop landmarks mapped back into the photo.
    crop = landmarks @ saved["crop_matrix"][:2, :2].T + saved["crop_matrix"][:2, 2]
    np.testing.assert_allclose(crop, saved["landmarks_crop"], atol=1e-2)
    # Even a rough fit lands near the detected landmarks.
    distance = np.linalg.norm(landmarks - saved["target_landmarks_image"], axis=-1).mean()
    assert distance < 15.0
    assert saved["coefficients"].shape == (saved["layout_sizes"].sum(),)

    camera = export.read_camera(folder / files["cam"])
    np.testing.assert_allclose(camera.pose, saved["pose"], atol=1e-5)
    assert export.read_landmarks(folder / files["lm2d"]).shape == (68, 2)
    assert export.read_landmarks(folder / files["lm3d"]).shape == (68, 3)
    for kind in ("overlay", "overlay_geo"):
        assert Image.open(folder / files[kind]).size == (224, 224)
    assert Image.open(folder / files["multi_pose"]).size == (6 * 224, 224)


def test_index_page_links_to_files_that_exist(first_run):
    output, _ = first_run
    page = (output / "index.html").read_text()
    links = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert len(links) > 20
    for link in links:
        assert not link.startswith(("/", "http")), link
        assert (output / urllib.parse.unquote(link)).exists(), link
    for name in FAILED:
        assert name in page


def test_resume_skips_finished_pictures_and_redoes_interrupted_ones(first_run, inputs,
                                                                    tmp_path):
    output = tmp_path / "out"
    shutil.copytree(first_run[0], output)
    before = {stem: mtimes(output / stem) for stem in GOOD}

    stdout = check_ok(reconstruct(f"--input={inputs}", f"--output={output}", STEPS))
    assert "0 reconstructed, 2 already done (skipped), 3 failed" in stdout
    assert {stem: mtimes(output / stem) for stem in GOOD} == before
    assert len(read_failures(output)) == 3  # no duplicate rows

    # An interrupted run: the picture's done.json was never written.
    os.remove(output / "good" / "done.json")
    stdout = check_ok(reconstruct(f"--input={inputs}", f"--output={output}", STEPS))
    assert "1 reconstructed, 1 already done (skipped), 3 failed" in stdout
    assert mtimes(output / "two_faces") == before["two_faces"]
    after = mtimes(output / "good")
    assert set(after) == set(before["good"])
    assert all(after[name] != before["good"][name] for name in after)


def test_overwrite_redoes_everything_and_drops_stale_files(first_run, inputs, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(first_run[0], output)
    before = mtimes(output / "two_faces")
    stdout = check_ok(reconstruct(f"--input={inputs}", f"--output={output}", STEPS,
                                  "--overwrite", "--largest_face_only"))
    assert "2 reconstructed, 0 already done (skipped), 3 failed" in stdout
    assert "; 2 face(s) reconstructed" in stdout
    record = results_record(output, "two_faces")
    assert len(record["faces"]) == 1
    after = mtimes(output / "two_faces")
    assert not any(name.startswith("two_faces_face1") for name in after)
    assert all(after[name] != before[name] for name in after)


def test_same_stem_in_two_folders_gets_two_result_folders(inputs, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(inputs / "good.jpg", other / "good.jpg")
    output = tmp_path / "out"
    (output / "good").mkdir(parents=True)
    (output / "good" / "mine.txt").write_text("a folder the script did not write\n")
    stdout = check_ok(reconstruct(f"--input={inputs / 'good.jpg'},{other}", f"--output={output}",
                                  "--steps=0"))
    assert "2 reconstructed" in stdout
    assert (output / "good" / "mine.txt").read_text().startswith("a folder")
    assert sorted(os.listdir(output / "good")) == ["mine.txt"]
    assert (output / "good_2" / "good_2.obj").exists()
    assert (output / "good_3" / "good_3.obj").exists()


def test_checkpoint_is_refused_clearly(tmp_path):
    process = reconstruct(f"--input={tmp_path}", f"--output={tmp_path / 'out'}",
                          "--checkpoint=model.ckpt")
    assert process.returncode == 2
    assert "network is not available" in process.stderr
