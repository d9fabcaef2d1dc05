"""mgc.data.synthetic (random multi-view tuples with known answers) and
experiments/make_synthetic_tuples.py. The small default face model (ICT)
and two generated background pictures keep it fast."""
import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from experiments import make_synthetic_tuples
from mgc import geometry, paths
from mgc.data import layout, prepare, synthetic
from mgc.eval.synthetic import head_angles
from mgc.facemodel import CoefficientLayout, decode_shape, default_face_model

FLAGS = flags.FLAGS
SEED = 3


@pytest.fixture(scope="module")
def model():
    return default_face_model()


@pytest.fixture(scope="module")
def background_folder(tmp_path_factory):
    """Two pictures in nested folders: noise and a colour ramp."""
    folder = tmp_path_factory.mktemp("backgrounds")
    (folder / "nested").mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(folder / "a.png")
    y, x = np.mgrid[0:256, 0:256]
    ramp = np.stack([x, y, 255 - x], axis=-1).astype(np.uint8)
    Image.fromarray(ramp).save(folder / "nested" / "b.jpg")
    (folder / "notes.txt").write_text("not a picture")
    return folder


@pytest.fixture(scope="module")
def generator(model, background_folder):
    return synthetic.SyntheticTuples(model, backgrounds=str(background_folder), seed=SEED)


@pytest.fixture(scope="module")
def pairs(generator):
    return list(generator.generate(2))


def _assert_same_tuple(a, b):
    for field in ("images", "skins", "landmarks", "intrinsics"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert (a.flag, a.name) == (b.flag, b.name)


def test_tuples_have_the_layout_shapes(pairs):
    tuple_, truth = pairs[0]
    layout.check_tuple(tuple_)
    assert tuple_.flag == 2 and tuple_.name == "synthetic/000000"
    np.testing.assert_array_equal(tuple_.intrinsics[1], geometry.MGCNET_INTRINSICS.matrix())
    assert truth.depths.shape == truth.masks.shape == (3, 224, 224)
    assert truth.background_file.endswith(("a.png", "b.jpg"))


def test_prepare_writes_the_same_k_as_the_geometry():
    """mgc.data.prepare spells K out to stay free of TensorFlow."""
    np.testing.assert_array_equal(prepare.MGCNET_K, geometry.MGCNET_INTRINSICS.matrix())


def test_same_seed_same_tuples(model, background_folder, pairs):
    again = synthetic.SyntheticTuples(model, backgrounds=str(background_folder), seed=SEED)
    tuple_, truth = again.make(1)
    _assert_same_tuple(tuple_, pairs[1][0])
    np.testing.assert_array_equal(truth.coefficients, pairs[1][1].coefficients)
    other = synthetic.SyntheticTuples(model, backgrounds=again.backgrounds, seed=SEED + 1).make(1)
    assert not np.array_equal(other[1].coefficients, truth.coefficients)


def test_truth_landmarks_are_the_projected_model_landmarks(model, pairs):
    tuple_, truth = pairs[0]
    parts = CoefficientLayout.for_model(model).split(truth.coefficients)
    vertices = decode_shape(model, parts["identity"], parts["expression"])
    points = geometry.transform_points(np.asarray(vertices)[:, model.landmarks], truth.poses)
    projected = geometry.project_to_image(points).numpy()
    np.testing.assert_allclose(tuple_.landmarks, projected, atol=1e-3)
    np.testing.assert_array_equal(truth.landmarks, tuple_.landmarks)
    assert np.all((tuple_.landmarks > 0) & (tuple_.landmarks < 224))


def test_views_share_the_face_and_turn_as_documented(model, pairs):
    sizes = CoefficientLayout.for_model(model)
    for _, truth in pairs:
        not_pose = np.ones(sizes.size, bool)
        not_pose[sizes.identity + sizes.albedo + sizes.expression:][:6] = False
        np.testing.assert_array_equal(truth.coefficients[1:, not_pose],
                                      np.broadcast_to(truth.coefficients[0, not_pose],
                                                      (2, not_pose.sum())))
        np.testing.assert_allclose(truth.poses,
                                   geometry.absolute_pose(truth.coefficients[:, -33:-27]),
                                   atol=1e-4)
        rotations = geometry.rotation_matrix(truth.poses[:, :3]).numpy().astype(np.float64)
        angles = np.stack([head_angles(r) for r in rotations])
        np.testing.assert_allclose(angles, truth.angles, atol=1e-3)
        yaw = angles[:, 0]
        assert abs(yaw[0]) <= 5
        assert 10 <= yaw[1] - yaw[0] <= 35 and 10 <= yaw[0] - yaw[2] <= 35
        assert truth.poses[1, 1] < 0  # source 1 turned as MGCNet's LEFT_POSE (ry < 0)


def test_images_differ_from_the_background_only_where_the_face_is_drawn(pairs):
    for tuple_, truth in pairs:
        for view in range(3):
            outside = ~truth.masks[view]
            np.testing.assert_array_equal(tuple_.images[view][outside],
                                          truth.backgrounds[view][outside])
            changed = np.any(tuple_.images[view] != truth.backgrounds[view], axis=-1)
            assert changed[truth.masks[view]].mean() > 0.9
            assert 0.15 < truth.masks[view].mean() < 0.8


def test_skin_maps_cover_the_face(model, pairs):
    for tuple_, truth in pairs:
        skin = tuple_.skins
        assert np.array_equal(skin[..., 0], skin[..., 1]) and np.array_equal(skin[..., 0],
                                                                             skin[..., 2])
        assert set(np.unique(skin)) <= {0, 255}
        on_skin = skin[..., 0] == 255
        assert not np.any(on_skin & ~truth.masks)
        for view in range(3):
            assert on_skin[view].sum() > 0.5 * truth.masks[view].sum()
            # Cheeks (between jaw point 3 and nose point 32) and the nose bridge are skin.
            lm = tuple_.landmarks[view]
            for point in ((lm[2] + lm[31]) / 2, (lm[14] + lm[35]) / 2, lm[28]):
                x, y = np.round(point).astype(int)
                assert on_skin[view, y, x], (view, point)


def test_depth_maps_are_the_fore_mesh_in_mm(pairs):
    for _, truth in pairs:
        face = truth.depths > 0
        assert not np.any(face & ~truth.masks)
        assert face.mean(axis=(1, 2)).min() > 0.1
        assert 4000 < truth.depths[face].min() and truth.depths[face].max() < 6000


def test_written_layout_reads_back_the_same_arrays(generator, pairs, tmp_path):
    (tmp_path / "dataset").mkdir()  # an existing empty folder is fine
    list_path = generator.write(tmp_path / "dataset", 2)
    assert list_path == os.path.join(tmp_path / "dataset", "train.txt")
    entries = layout.read_list(tmp_path / "dataset")
    assert [entry[:3] for entry in entries] == [(2, "synthetic", "000000"),
                                                (2, "synthetic", "000001")]
    for (flag, subfolder, frame_id, _), (tuple_, truth) in zip(entries, pairs):
        _assert_same_tuple(layout.read_tuple(tmp_path / "dataset", subfolder, frame_id, flag),
                           tuple_)
        stored = np.load(tmp_path / "dataset" / subfolder / (frame_id + synthetic.TRUTH_SUFFIX))
        np.testing.assert_array_equal(stored["depths"], truth.depths)


def test_write_refuses_a_non_empty_folder(generator, tmp_path):
    (tmp_path / "keep.txt").write_text("someone's file")
    with pytest.raises(synthetic.SyntheticSetupError, match="not empty.*--overwrite"):
        generator.write(tmp_path, 1)
    with pytest.raises(synthetic.SyntheticSetupError, match="not a folder"):
        generator.write(tmp_path / "keep.txt", 1)
    assert os.listdir(tmp_path) == ["keep.txt"]


def test_dataset_has_the_reader_element_structure(generator, pairs):
    import tensorflow as tf
    batches = list(generator.dataset(2, batch_size=2))
    assert len(batches) == 1
    batch = batches[0]
    expected = dict(images=(tf.uint8, [2, 3, 224, 224, 3]), skins=(tf.uint8, [2, 3, 224, 224, 3]),
                    landmarks=(tf.float32, [2, 3, 68, 2]), intrinsics=(tf.float32, [2, 3, 3, 3]),
                    flag=(tf.int32, [2]), name=(tf.string, [2]))
    assert set(batch) == set(expected)
    for key, (dtype, shape) in expected.items():
        assert batch[key].dtype == dtype and batch[key].shape.as_list() == shape, key
    # The same pictures, up to float32 rounding: tf.data runs the renders on
    # its own threads, where a matmul may sum in another order.
    difference = np.abs(batch["images"][1].numpy().astype(int) - pairs[1][0].images)
    assert difference.max() <= 1 and np.mean(difference > 0) < 1e-4
    np.testing.assert_allclose(batch["landmarks"][1].numpy(), pairs[1][0].landmarks, atol=1e-3)
    assert [n.decode() for n in batch["name"].numpy()] == ["synthetic/000000", "synthetic/000001"]


def test_a_model_without_some_landmarks_is_refused(model, background_folder):
    import dataclasses
    landmarks = model.landmarks.copy()
    landmarks[[0, 16]] = -1
    partial = dataclasses.replace(model, landmarks=landmarks)
    with pytest.raises(synthetic.SyntheticSetupError, match="lacks landmarks 0, 16"):
        synthetic.SyntheticTuples(partial, backgrounds=str(background_folder))


def test_background_folders_without_readable_pictures_are_refused(tmp_path):
    with pytest.raises(synthetic.BackgroundError, match="does not exist"):
        synthetic.load_backgrounds(str(tmp_path / "missing"))
    (tmp_path / "readme.txt").write_text("no pictures here")
    with pytest.raises(synthetic.BackgroundError, match="no pictures in"):
        synthetic.load_backgrounds(str(tmp_path))
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(synthetic.BackgroundError, match="broken.jpg cannot be read"):
        synthetic.load_backgrounds(str(tmp_path))


def test_default_backgrounds_are_the_data_root_demo_images():
    folder = synthetic.default_background_folder()
    assert folder == os.path.join(paths.data_root(), "demo_images")
    files = synthetic.background_files(folder)
    assert any(name.endswith("astronaut_eileen_collins_public_domain.png") for name in files)


# --- The command line ---------------------------------------------------------

def test_cli_writes_the_tuples(background_folder, tmp_path):
    output = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "experiments.make_synthetic_tuples", f"--output={output}",
         "--num_tuples=2", f"--backgrounds={background_folder}", "--seed=5"],
        cwd=paths.REPO_ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 tuple(s)" in done.stdout and "tuple/s" in done.stderr  # the progress bar
    entries = layout.read_list(output)
    assert len(entries) == 2
    layout.read_tuple(output, *entries[1][1:3], entries[1][0])


@contextlib.contextmanager
def _command_line(*args):
    """The script's flags parsed from args in this process, restored after."""
    was_parsed = FLAGS.is_parsed()
    with flagsaver.flagsaver():
        FLAGS(["make_synthetic_tuples", *args])
        try:
            yield
        finally:
            if not was_parsed:
                FLAGS.unparse_flags()


def _main_error(capsys, *args):
    with _command_line(*args):
        code = make_synthetic_tuples.main(["make_synthetic_tuples"])
    lines = capsys.readouterr().err.strip().splitlines()
    return code, lines


def test_cli_refuses_a_non_empty_output(background_folder, tmp_path, capsys):
    (tmp_path / "old.jpg").write_bytes(b"x")
    code, lines = _main_error(capsys, f"--output={tmp_path}", "--num_tuples=1",
                              f"--backgrounds={background_folder}")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: ") and "is not empty" in lines[0]
    assert os.listdir(tmp_path) == ["old.jpg"]


def test_cli_refuses_a_background_folder_without_pictures(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, lines = _main_error(capsys, f"--output={tmp_path / 'out'}", "--num_tuples=1",
                              f"--backgrounds={tmp_path / 'empty'}")
    assert code == 2 and lines == [f"error: --backgrounds: no pictures in the background folder "
                                   f"{tmp_path / 'empty'} (looked for " + lines[0].split(
                                       "(looked for ")[1]]
    assert not (tmp_path / "out").exists()


def test_cli_refuses_an_unknown_face_model(background_folder, tmp_path, capsys):
    code, lines = _main_error(capsys, f"--output={tmp_path / 'out'}", "--num_tuples=1",
                              f"--backgrounds={background_folder}", "--face_model=no_such_model")
    assert code == 2 and len(lines) == 1
    assert lines[0].startswith("error: --face_model=no_such_model: ")
