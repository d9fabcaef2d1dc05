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

import parity_inputs
from mgc import export, paths
from mgc.export import results, run_folder

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


def check_ok(process, code=0):
    """The run's stdout after checking its exit code (0: all done, 3: some
    pictures failed)."""
    assert process.returncode == code, process.stdout + process.stderr
    return Output(process)


def check_setup_error(process, message):
    """A run refused before any work: exit code 2 and one `error:` line."""
    assert process.returncode == 2, process.stdout + process.stderr
    assert "Traceback" not in process.stderr, process.stderr
    errors = [line for line in process.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(message, process.stderr), process.stderr


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
    stdout = check_ok(reconstruct(f"--input={inputs}", f"--output={output}", STEPS), code=3)
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


def check_face_files(folder, files, width, height, all_landmarks=True, close_to_target=True):
    """all_landmarks=False: the model lacks some of the 68 (Surrey), whose
    rows are `nan nan`; close_to_target=False: the coefficients are not
    fitted to the landmarks (a network with made-up weights)."""
    vertices, triangles, colors, uvs, _ = export.read_obj(folder / files["obj"])
    assert len(vertices) > 1000 and len(triangles) > 1000 and colors is not None
    assert np.all(np.isfinite(vertices))
    if "texture" in files:
        assert uvs is not None and (folder / files["texture"]).exists()
    ply_vertices, ply_triangles, _ = export.read_ply(folder / files["ply"])
    np.testing.assert_allclose(ply_vertices, vertices, atol=1e-3)
    np.testing.assert_array_equal(ply_triangles, triangles)

    landmarks = results.read_lm68(folder / files["lm68"])
    known = np.all(np.isfinite(landmarks), axis=1)
    assert landmarks.shape == (68, 2) and (known.all() if all_landmarks else known.sum() >= 40)
    if close_to_target:
        assert np.all((landmarks[known] >= 0) & (landmarks[known] < [width, height]))
    saved = np.load(folder / files["npz"])
    np.testing.assert_allclose(saved["landmarks_image"], landmarks, atol=1e-3)
    # lm68 is the crop landmarks mapped back into the photo.
    crop = landmarks @ saved["crop_matrix"][:2, :2].T + saved["crop_matrix"][:2, 2]
    np.testing.assert_allclose(crop, saved["landmarks_crop"], atol=1e-2)
    # Even a rough fit lands near the detected landmarks.
    distance = np.linalg.norm(landmarks - saved["target_landmarks_image"],
                              axis=-1)[known].mean()
    assert distance < 15.0 or not close_to_target
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

    stdout = check_ok(reconstruct(f"--input={inputs}", f"--output={output}", STEPS), code=3)
    assert "0 reconstructed, 2 already done (skipped), 3 failed" in stdout
    assert {stem: mtimes(output / stem) for stem in GOOD} == before
    assert len(read_failures(output)) == 3  # no duplicate rows

    # An interrupted run: the picture's done.json was never written.
    os.remove(output / "good" / "done.json")
    stdout = check_ok(reconstruct(f"--input={inputs}", f"--output={output}", STEPS), code=3)
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
                                  "--overwrite", "--largest_face_only"), code=3)
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


# --- Exit codes, set-up errors, the lock, stale results, odd names -------------

def test_help_documents_the_exit_codes():
    process = reconstruct("--help")  # absl's --help exits with 1
    for line in ("0  every picture is done", "3  some pictures failed",
                 "1  no picture could be done", "2  a usage or set-up error"):
        assert line in process.stdout, process.stdout


def test_a_lone_missing_picture_exits_1(tmp_path):
    process = reconstruct(f"--input={tmp_path / 'missing.jpg'}", f"--output={tmp_path / 'out'}")
    assert process.returncode == 1, process.stdout + process.stderr
    assert read_failures(tmp_path / "out")[0]["reason"].startswith("unreadable:")


@pytest.mark.parametrize("args, message", [
    ([], r"--input is required"),
    (["--input=x.jpg", "--seed=3"], r"--seed does not apply to experiments\.reconstruct"),
    (["--input=x.jpg", "--batch_size=0"], r"--batch_size"),
    (["--input=x.jpg", "stray"], r"unexpected arguments: stray"),
])
def test_usage_errors_exit_2(tmp_path, args, message):
    process = reconstruct(f"--output={tmp_path / 'out'}", *args)
    assert process.returncode == 2, process.stdout + process.stderr
    assert re.search(message, process.stderr), process.stderr
    assert not (tmp_path / "out").exists()


def unwritable_folder(tmp_path):
    """A folder this process cannot create files in: root ignores modes, and
    sysfs refuses new files even to root."""
    if os.geteuid() == 0:
        return "/sys"
    folder = tmp_path / "read_only"
    folder.mkdir(mode=0o555)
    return str(folder)


def truncated_model(tmp_path):
    path = tmp_path / "truncated.npz"
    np.savez(path, mean_shape=np.zeros(300, np.float32), triangles=np.zeros((10, 3), np.int32))
    path.write_bytes(path.read_bytes()[:200])
    return str(path)


@pytest.mark.parametrize("case, message", [
    ("output_is_a_file", r"--output=.* is a file, not a folder"),
    ("output_under_a_file", r"--output=.* cannot be created: .* is a file"),
    ("output_unwritable", r"--output=.* cannot be (written|created)"),
    ("missing_face_model", r"--face_model=.*missing\.npz.* does not exist"),
    ("truncated_face_model", r"--face_model=.*truncated\.npz"),
])
def test_set_up_errors_are_one_line_before_any_work(case, message, tmp_path):
    output, face_model = tmp_path / "out", "ict"
    if case == "output_is_a_file":
        output.write_text("a file\n")
    elif case == "output_under_a_file":
        (tmp_path / "file").write_text("a file\n")
        output = tmp_path / "file" / "out"
    elif case == "output_unwritable":
        output = os.path.join(unwritable_folder(tmp_path), "mgc_out")
    elif case == "missing_face_model":
        face_model = str(tmp_path / "missing.npz")
    else:
        face_model = truncated_model(tmp_path)
    process = reconstruct(f"--input={paths.data_file(ASTRONAUT)}", f"--output={output}",
                          f"--face_model={face_model}", "--steps=0")
    check_setup_error(process, message)
    if case.endswith("face_model"):
        assert not output.exists()  # checked before the folder is made


def test_a_locked_output_folder_is_refused_with_the_holders_pid(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    with run_folder.locked(str(output)):
        process = reconstruct(f"--input={paths.data_file(ASTRONAUT)}", f"--output={output}",
                              "--steps=0")
    check_setup_error(process, rf"is locked by another run \(pid {os.getpid()}, lock file "
                               rf".*reconstruct\.lock\)")
    assert sorted(os.listdir(output)) == ["reconstruct.lock"]


def test_two_runs_at_once_lose_no_record(inputs, tmp_path):
    output = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    command = [sys.executable, "-m", "experiments.reconstruct", f"--input={inputs}",
               f"--output={output}", "--steps=0"]
    runs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(run.wait(timeout=300), run.stderr.read()) for run in runs]
    for run in runs:
        run.stdout.close()
        run.stderr.close()
    codes = sorted(code for code, _ in outcomes)
    assert codes in ([2, 3], [3, 3]), outcomes  # refused by the lock, or both finished
    for code, stderr in outcomes:
        if code == 2:
            assert "is locked by another run (pid" in stderr, stderr
    failed = {os.path.basename(row["image"]) for row in read_failures(output)}
    assert failed == set(FAILED)
    done = {record["folder"] for record in run_folder.done_records(str(output))}
    assert done == set(GOOD)
    for stem in GOOD:
        assert results_record(output, stem)["source"] == str(inputs / f"{stem}{suffix(stem)}")


def suffix(stem):
    return ".jpg" if stem == "good" else ".png"


def test_done_pictures_that_no_longer_match_stop_the_run(tmp_path):
    pictures, output = tmp_path / "pictures", tmp_path / "out"
    pictures.mkdir()
    face = Image.open(paths.data_file(ASTRONAUT)).convert("RGB")
    face.save(pictures / "face.jpg", quality=90)
    check_ok(reconstruct(f"--input={pictures}", f"--output={output}", "--steps=0"))
    before = mtimes(output / "face")

    check_setup_error(reconstruct(f"--input={pictures}", f"--output={output}", "--steps=0",
                                  "--face_model=bfm_mean"),
                      r"face: --face_model=ict when it was done, --face_model=bfm_mean now")
    face.save(pictures / "face.jpg", quality=70)  # the same path, another picture
    check_setup_error(reconstruct(f"--input={pictures}", f"--output={output}", "--steps=0"),
                      rf"the picture {re.escape(str(pictures / 'face.jpg'))} changed")
    assert mtimes(output / "face") == before  # nothing touched

    stdout = check_ok(reconstruct(f"--input={pictures}", f"--output={output}", "--steps=0",
                                  "--overwrite"))
    assert "1 reconstructed" in stdout
    check_ok(reconstruct(f"--input={pictures}", f"--output={output}", "--steps=0"))


def test_foreign_index_page_is_not_replaced(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "index.html").write_text("<html>my notes</html>\n")
    check_setup_error(reconstruct(f"--input={paths.data_file(ASTRONAUT)}", f"--output={output}",
                                  "--steps=0"), r"index\.html exists and was not written by mgc")
    assert (output / "index.html").read_text() == "<html>my notes</html>\n"
    assert sorted(os.listdir(output)) == ["index.html", "reconstruct.lock"]


def test_odd_names_and_a_failed_redo(tmp_path):
    pictures, output = tmp_path / "pictures", tmp_path / "out"
    weird = pictures / "weird"
    weird.mkdir(parents=True)
    face = Image.open(paths.data_file(ASTRONAUT)).convert("RGB")
    face.save(pictures / "face,1.jpg", quality=90)
    face.save(pictures / "face[1].jpg", quality=90)
    face.save(pictures / "face1.jpg", quality=90)  # what the glob face[1].jpg matches
    os.symlink(weird / "loop.jpg", weird / "loop.jpg")
    os.mkfifo(weird / "pipe.png")
    (pictures / "list.txt").write_text("face,1.jpg\nface[1].jpg\nweird\n")
    # A run killed while writing its first marker left this behind.
    (output / "face[1]").mkdir(parents=True)
    (output / "face[1]" / "started.json.tmp").write_text('{"sour')

    stdout = check_ok(reconstruct(f"--input=@{pictures / 'list.txt'}", f"--output={output}",
                                  "--steps=0"), code=3)
    assert "4 picture(s): 2 reconstructed, 0 already done (skipped), 2 failed" in stdout
    assert results_record(output, "face,1")["source"] == str(pictures / "face,1.jpg")
    assert results_record(output, "face[1]")["source"] == str(pictures / "face[1].jpg")
    reasons = {os.path.basename(row["image"]): row["reason"] for row in read_failures(output)}
    assert "loop of symbolic links" in reasons["loop.jpg"]
    assert "FIFO" in reasons["pipe.png"]

    # A redo that fails leaves the picture failed, not also done.
    process = reconstruct(f"--input={pictures / 'face,1.jpg'}", f"--output={output}",
                          "--steps=0", "--overwrite", "--landmarks=files")
    assert process.returncode == 1, process.stdout + process.stderr
    assert not (output / "face,1" / "done.json").exists()
    assert (output / "face,1" / "face,1.obj").exists()  # its files stay until a redo succeeds
    reasons = {os.path.basename(row["image"]): row["reason"] for row in read_failures(output)}
    assert reasons["face,1.jpg"].startswith("landmarks:")
    done = {record["folder"] for record in run_folder.done_records(str(output))}
    assert done == {"face[1]"}


@pytest.mark.parametrize("face_model", ["surrey", "bfm_mean"])
def test_every_built_in_model_reconstructs(face_model, tmp_path):
    output = tmp_path / "out"
    stdout = check_ok(reconstruct(f"--input={paths.data_file(ASTRONAUT)}", f"--output={output}",
                                  STEPS, f"--face_model={face_model}"))
    assert "1 reconstructed" in stdout
    stem = os.path.splitext(os.path.basename(ASTRONAUT))[0]
    record = results_record(output, stem)
    assert record["settings"]["face_model"] == face_model
    check_face_files(output / stem, record["faces"][0]["files"], *record["image_size"],
                     all_landmarks=face_model != "surrey")


# --- The network path (--checkpoint) ---------------------------------------------

@pytest.fixture(scope="module")
def network_inputs():
    """(seeded checkpoint prefix, synthetic h5) of shared/parity: the
    original's variables and face-model layout, with made-up values."""
    oracle = parity_inputs.load_oracle()
    return parity_inputs.encoder_checkpoint(oracle)[0], parity_inputs.synthetic_h5(oracle)


def test_network_reconstruction_writes_every_output(network_inputs, inputs, tmp_path):
    checkpoint, h5 = network_inputs
    output = tmp_path / "out"
    stdout = check_ok(reconstruct(f"--input={inputs}", f"--output={output}",
                                  f"--checkpoint={checkpoint}", f"--face_model={h5}"), code=3)
    assert "5 picture(s): 2 reconstructed, 0 already done (skipped), 3 failed" in stdout
    assert "network, 0 refinement steps" in stdout
    reasons = {os.path.basename(row["image"]): row["reason"] for row in read_failures(output)}
    assert {name: reason.split(":")[0] for name, reason in reasons.items()} == FAILED
    for stem in GOOD:
        record = results_record(output, stem)
        assert record["settings"]["checkpoint"] == checkpoint
        for face in record["faces"]:
            files = face["files"]
            check_face_files(output / stem, files, *record["image_size"], close_to_target=False)
            depth = results.read_depth_png(str(output / stem / files["depth"]))
            assert depth.shape == (224, 224) and 4000 < np.median(depth[depth > 0]) < 6000
    saved = np.load(output / "good" / "good_coeffs.npz")
    assert saved["coefficients"].shape == (257,)

    # Refining from the network's answer brings the model to the landmarks.
    refined = tmp_path / "refined"
    check_ok(reconstruct(f"--input={inputs / 'good.jpg'}", f"--output={refined}",
                         f"--checkpoint={checkpoint}", f"--face_model={h5}", "--refine_steps=40"))
    errors = [results_record(folder, "good")["faces"][0]["landmark_error"]
              for folder in (output, refined)]
    assert errors[1] < 0.5 * errors[0], errors


def broken_checkpoint(network_inputs, tmp_path, case):
    """The seeded checkpoint without resnet_v1_50/logits/weights, or with it
    mis-shaped."""
    import tensorflow as tf  # noqa: PLC0415 (only these cases write checkpoints)
    reader = tf.train.load_checkpoint(network_inputs[0])
    arrays = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
              if name.startswith("resnet_v1_50/")}
    if case == "missing":
        del arrays["resnet_v1_50/logits/weights"]
    else:
        arrays["resnet_v1_50/logits/weights"] = np.zeros((1, 1, 2048, 99), np.float32)
    return parity_inputs.save_checkpoint(tmp_path / "ckpt" / "model-1", arrays)


@pytest.mark.parametrize("case, message", [
    ("nonexistent", r"--checkpoint: .*nowhere/model-1"),
    ("missing", r"--checkpoint: .*model-1.*resnet_v1_50/logits/weights"),
    ("misshaped", r"--checkpoint: .*model-1.*resnet_v1_50/logits/weights.*99"),
    ("fit_model", r"--face_model=ict has .* coefficients .* the network predicts MGCNet's 257"),
    ("steps", r"with --checkpoint use --refine_steps"),
])
def test_unusable_checkpoints_are_one_line(network_inputs, tmp_path, case, message):
    checkpoint, face_model, extra = str(tmp_path / "nowhere" / "model-1"), network_inputs[1], []
    if case in ("missing", "misshaped"):
        checkpoint = broken_checkpoint(network_inputs, tmp_path, case)
    elif case == "fit_model":
        checkpoint, face_model = network_inputs[0], "ict"
    elif case == "steps":
        checkpoint, extra = network_inputs[0], ["--steps=10"]
    process = reconstruct(f"--input={paths.data_file(ASTRONAUT)}", f"--output={tmp_path / 'out'}",
                          f"--checkpoint={checkpoint}", f"--face_model={face_model}", *extra)
    check_setup_error(process, message)
    assert not (tmp_path / "out").exists()


def test_the_mesh_backend_is_the_default_and_is_recorded(tmp_path):
    """No flags: the mesh backend (BlazeFace's box, the mesh's points fitted)
    at its 140 default steps, both in done.json (a run with the other
    backend would stop)."""
    output = tmp_path / "out"
    stdout = check_ok(reconstruct(f"--input={paths.data_file(ASTRONAUT)}", f"--output={output}"))
    assert "1 reconstructed" in stdout
    stem = os.path.splitext(os.path.basename(ASTRONAUT))[0]
    record = results_record(output, stem)
    assert record["settings"]["landmarks_model"] == "mesh"
    assert record["settings"]["steps"] == 140
    assert record["faces"][0]["mesh_points"] is True
    assert record["faces"][0]["mesh_failure"] is None  # a frontal face: its mesh is followed
    check_face_files(output / stem, record["faces"][0]["files"], *record["image_size"])
    check_setup_error(reconstruct(f"--input={paths.data_file(ASTRONAUT)}", f"--output={output}",
                                  "--landmarks_model=dlib"), "--landmarks_model=mesh when")
