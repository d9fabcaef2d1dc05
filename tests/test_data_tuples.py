"""mgc.data: the original's training tuples on disk, the tf.data reader and
TFRecord shards (MGCNET_REFERENCE.md §1.2-1.3, shared/parity README §5.1)."""
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import parity_inputs
from mgc.data import layout
from mgc.data.layout import Tuple, TupleError
from mgc.data.reader import index_tuples, tuple_dataset
from mgc.data.tfrecord import shard_name, tfrecord_dataset, write_shards

K_SHARED = np.array([[4700, 0, 112], [0, 4700, 112], [0, 0, 1]], np.float32)
FIELDS = ("images", "skins", "landmarks", "intrinsics", "flag", "name")


def random_tuple(seed, name="seq/x", flag=1, noise=True):
    """A tuple with float32 landmarks that need all 9 digits to round-trip."""
    rng = np.random.RandomState(seed)
    if noise:
        images = rng.randint(0, 256, (3, 224, 224, 3)).astype(np.uint8)
    else:  # quick to encode
        images = np.full((3, 224, 224, 3), rng.randint(256, size=(3, 1, 1, 3)), np.uint8)
    intrinsics = np.tile(K_SHARED, (3, 1, 1)) + rng.uniform(-5, 5, (3, 3, 3)).astype(np.float32)
    return Tuple(images=images, skins=255 - images,
                 landmarks=rng.uniform(0, 224, (3, 68, 2)).astype(np.float32),
                 intrinsics=intrinsics.astype(np.float32), flag=flag, name=name)


def write_dataset(folder, tuples):
    entries = []
    for tuple_ in tuples:
        subfolder, frame_id = tuple_.name.split("/")
        layout.write_tuple(folder, subfolder, frame_id, tuple_)
        entries.append((tuple_.flag, subfolder, frame_id))
    layout.write_list(folder, entries)
    return str(folder)


def batches(dataset):
    return [{k: v.numpy() for k, v in batch.items()} for batch in dataset]


def concatenated(batch_list):
    return {k: np.concatenate([b[k] for b in batch_list]) for k in FIELDS}


def assert_same_tuple(a, b):
    for field in ("images", "skins", "landmarks", "intrinsics"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field), err_msg=field)
    assert (a.flag, a.name) == (b.flag, b.name)


# ------------------------------------------------------------ the shared tuple

def test_reader_gives_the_shared_parity_tuple_exactly(oracle):
    parity_inputs.facenet_checkpoint(oracle)  # regenerates train_shared/ if stale
    folder = os.path.join(parity_inputs.BUILD, "parity_inputs_facenet", "train_shared")
    [batch] = batches(tuple_dataset(folder, shuffle=False, repeat=False))
    row = lambda views: np.concatenate([views[1], views[0], views[2]], axis=1)  # noqa: E731
    np.testing.assert_array_equal(row(batch["images"][0]), oracle["train_input/image_uint8"][0])
    np.testing.assert_array_equal(row(batch["skins"][0]), oracle["train_input/skin_uint8"][0])
    np.testing.assert_array_equal(batch["landmarks"], oracle["train_input/lm68"])
    np.testing.assert_array_equal(batch["flag"], oracle["train_input/flag_sgl_mul"])
    np.testing.assert_array_equal(batch["intrinsics"][0], np.tile(K_SHARED, (3, 1, 1)))
    assert batch["name"].tolist() == [b"seq/t00008_l00499_r00002"]
    assert batch["images"].dtype == np.uint8 and batch["flag"].dtype == np.int32


# ------------------------------------------------------------ round trips

def test_write_tuple_then_read_tuple_is_exact(tmp_path):
    written = random_tuple(0, "seq/t1", flag=2)
    paths = layout.write_tuple(tmp_path, "seq", "t1", written)
    assert [os.path.basename(p) for p in paths] == ["t1.jpg", "t1_skin.jpg", "t1_cam.txt"]
    with open(paths[0], "rb") as stream:
        assert stream.read(8) == b"\x89PNG\r\n\x1a\n"  # lossless bytes under the .jpg name
    assert Image.open(paths[0]).size == (672, 224)
    assert_same_tuple(layout.read_tuple(tmp_path, "seq", "t1", 2), written)
    assert not [n for n in os.listdir(tmp_path / "seq") if ".tmp" in n]


def test_write_list_then_read_list(tmp_path):
    layout.write_list(tmp_path, [(0, "a", "f1"), (2, "b", "f2")])
    assert (tmp_path / "train.txt").read_text() == "0 a f1\n2 b f2\n"
    assert layout.read_list(tmp_path) == [(0, "a", "f1", 1), (2, "b", "f2", 2)]
    layout.write_list(tmp_path, [(1, "c", "f3")], name="val")
    assert layout.read_list(tmp_path, "val") == [(1, "c", "f3", 1)]


def test_reader_and_tfrecords_give_the_same_batches(tmp_path):
    tuples = [random_tuple(n, f"s{n % 2}/f{n}", flag=n % 3) for n in range(5)]
    folder = write_dataset(tmp_path / "ds", tuples)
    from_folder = batches(tuple_dataset(folder, batch_size=2, shuffle=False, repeat=False))
    assert [len(b["name"]) for b in from_folder] == [2, 2, 1]
    all_rows = concatenated(from_folder)
    for n, tuple_ in enumerate(tuples):
        for field in ("images", "skins", "landmarks", "intrinsics"):
            np.testing.assert_array_equal(all_rows[field][n], getattr(tuple_, field))
    assert all_rows["flag"].tolist() == [t.flag for t in tuples]

    shards = write_shards(folder, tmp_path / "rec" / "train", tuples_per_shard=2, progress=False)
    assert shards == [shard_name(tmp_path / "rec" / "train", s, 3) for s in range(3)]
    assert sorted(os.listdir(tmp_path / "rec")) == [os.path.basename(s) for s in shards]
    from_records = batches(tfrecord_dataset(str(tmp_path / "rec" / "train-*"), batch_size=2,
                                            shuffle=False, repeat=False))
    for folder_batch, record_batch in zip(from_folder, from_records, strict=True):
        for field in FIELDS:
            np.testing.assert_array_equal(record_batch[field], folder_batch[field], err_msg=field)

    # Tuples in memory give the same records as their folder.
    again = write_shards(tuples, tmp_path / "mem" / "train", tuples_per_shard=10, progress=False)
    from_memory = batches(tfrecord_dataset(again, batch_size=5, shuffle=False, repeat=False))
    for field in FIELDS:
        np.testing.assert_array_equal(from_memory[0][field], all_rows[field], err_msg=field)


def test_write_shards_is_atomic_and_refuses_old_shards(tmp_path):
    def failing_source():
        for n in range(3):
            yield random_tuple(n, f"s/f{n}", noise=False)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        write_shards(failing_source(), tmp_path / "train", tuples_per_shard=1, progress=False)
    assert os.listdir(tmp_path) == []  # neither final nor partial shards
    tuples = [random_tuple(n, f"s/f{n}", noise=False) for n in range(2)]
    write_shards(tuples, tmp_path / "train", progress=False)
    with pytest.raises(FileExistsError, match="train-00000-of-00001"):
        write_shards(tuples, tmp_path / "train", progress=False)
    shards = write_shards(tuples, tmp_path / "train", tuples_per_shard=1, overwrite=True,
                          progress=False)
    assert sorted(os.listdir(tmp_path)) == [os.path.basename(s) for s in shards]


# ------------------------------------------------------------ bad tuples

@pytest.fixture(scope="module")
def good_dataset(tmp_path_factory):
    """Two good tuples, seq/good and seq/bad (the one each case breaks)."""
    folder = tmp_path_factory.mktemp("good")
    return write_dataset(folder, [random_tuple(1, "seq/good", noise=False),
                                  random_tuple(2, "seq/bad", flag=2, noise=False)])


def _replace_line(path, number, text):
    """Line `number` becomes `text`; None deletes it."""
    lines = open(path).read().splitlines()
    lines[number - 1:number] = [] if text is None else [text]
    open(path, "w").write("\n".join(lines) + "\n")


def _save(path, array):
    Image.fromarray(array).save(path, "PNG")


BAD_CASES = {  # name: (break the folder, expected words in the message)
    "missing_skin": (lambda d: os.remove(f"{d}/seq/bad_skin.jpg"),
                     r"seq/bad_skin\.jpg: missing file \(listed in line 2\)"),
    "missing_cam": (lambda d: os.remove(f"{d}/seq/bad_cam.txt"), r"seq/bad_cam\.txt: missing"),
    "undecodable_image": (lambda d: open(f"{d}/seq/bad.jpg", "w").write("not an image"),
                          r"seq/bad\.jpg: cannot be decoded"),
    "wrong_size": (lambda d: _save(f"{d}/seq/bad.jpg", np.zeros((224, 448, 3), np.uint8)),
                   r"seq/bad\.jpg: image is 448x224 with 3 channels"),
    "gray_skin": (lambda d: _save(f"{d}/seq/bad_skin.jpg", np.zeros((224, 672), np.uint8)),
                  r"seq/bad_skin\.jpg: image is 672x224 with 1 channels"),
    "eight_intrinsics": (lambda d: _replace_line(f"{d}/seq/bad_cam.txt", 2, "1,2,3,4,5,6,7,8"),
                         r"seq/bad_cam\.txt:2: 8 comma-separated values, needs 9"),
    "unparsable_number": (lambda d: _replace_line(f"{d}/seq/bad_cam.txt", 10, "12.5,abc"),
                          r"seq/bad_cam\.txt:10: unparsable number"),
    "wrong_point_count": (lambda d: _replace_line(f"{d}/seq/bad_cam.txt", 73, "67"),
                          r"seq/bad_cam\.txt:73: expected the point count line '68' of view 1"),
    "too_few_points": (lambda d: _replace_line(f"{d}/seq/bad_cam.txt", 72, None),
                       r"seq/bad_cam\.txt:72: 1 comma-separated values, needs 2"),
    "extra_point": (lambda d: open(f"{d}/seq/bad_cam.txt", "a").write("1,2\n"),
                    r"seq/bad_cam\.txt:211: unexpected extra line"),
    "short_list_line": (lambda d: _replace_line(f"{d}/train.txt", 2, "2 seq"),
                        r"train\.txt:2: '2 seq' is not '<flag> <subfolder> <frame_id>'"),
    "flag_three": (lambda d: _replace_line(f"{d}/train.txt", 2, "3 seq bad"),
                   r"train\.txt:2: flag_sgl_mul 3 is not 0, 1 or 2"),
    "flag_text": (lambda d: _replace_line(f"{d}/train.txt", 2, "x seq bad"),
                  r"train\.txt:2: flag 'x' is not an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_tuple_raises_naming_file_and_line_or_is_skipped(case, good_dataset, tmp_path):
    folder = shutil.copytree(good_dataset, tmp_path / "ds")
    breaks, message = BAD_CASES[case]
    breaks(folder)
    with pytest.raises(TupleError, match=message):
        tuple_dataset(folder, shuffle=False, repeat=False)

    dataset = tuple_dataset(folder, shuffle=False, repeat=False, skip_bad=True)
    assert (dataset.report.listed, dataset.report.used, dataset.report.skipped_count) == (2, 1, 1)
    assert re.search(message, dataset.report.skipped[0])
    assert [b["name"].tolist() for b in batches(dataset)] == [[b"seq/good"]]


def test_read_tuple_names_the_bad_file(good_dataset, tmp_path):
    folder = shutil.copytree(good_dataset, tmp_path / "ds")
    open(f"{folder}/seq/bad_skin.jpg", "wb").write(b"\xff\xd8 not really a jpeg")
    with pytest.raises(TupleError, match=r"seq/bad_skin\.jpg: cannot be decoded"):
        layout.read_tuple(folder, "seq", "bad", 2)
    with pytest.raises(TupleError, match=r"flag_sgl_mul 5"):
        layout.read_tuple(folder, "seq", "good", 5)
    with pytest.raises(TupleError, match=r"missing file"):
        layout.read_tuple(folder, "seq", "absent", 1)


def test_truncated_pixels_are_found_by_full_decode_or_skipped_at_decode_time(good_dataset,
                                                                             tmp_path):
    folder = shutil.copytree(good_dataset, tmp_path / "ds")
    noisy = np.random.RandomState(0).randint(0, 256, (224, 672, 3)).astype(np.uint8)
    data = layout.png_bytes(noisy)
    open(f"{folder}/seq/bad.jpg", "wb").write(data[:len(data) // 2])  # the header is intact
    with pytest.raises(TupleError, match=r"seq/bad\.jpg: cannot be decoded"):
        index_tuples(folder, full_decode=True)
    with pytest.raises(tf.errors.InvalidArgumentError):
        batches(tuple_dataset(folder, shuffle=False, repeat=False))
    skipped = tuple_dataset(folder, shuffle=False, repeat=False, skip_bad=True)
    assert [b["name"].tolist() for b in batches(skipped)] == [[b"seq/good"]]


def test_missing_list_and_empty_list_and_match_num(tmp_path):
    with pytest.raises(TupleError, match=r"train\.txt: missing file"):
        tuple_dataset(tmp_path, skip_bad=True)
    (tmp_path / "train.txt").write_text("")
    with pytest.raises(TupleError, match=r"no usable tuples"):
        tuple_dataset(tmp_path)
    with pytest.raises(ValueError, match="match_num must be 68"):
        tuple_dataset(tmp_path, match_num=0)


def test_write_tuple_refuses_wrong_arrays(tmp_path):
    bad = random_tuple(0, noise=False)
    bad.landmarks = bad.landmarks[:, :5]
    with pytest.raises(TupleError, match=r"landmarks is float32 \[3, 5, 2\], needs float32"):
        layout.write_tuple(tmp_path, "seq", "x", bad)
    with pytest.raises(TupleError, match="without spaces"):
        layout.write_tuple(tmp_path, "seq", "x y", random_tuple(0, noise=False))


# ------------------------------------------------------------ augmentation

DOTS = np.array([[60, 70], [165, 80], [110, 112], [75, 160], [150, 168]])


def dotted_tuple(name):
    """Black crops with bright 3x3 dots under landmarks 0-4 (different per view)."""
    images = np.zeros((3, 224, 224, 3), np.uint8)
    landmarks = np.full((3, 68, 2), 112, np.float32)
    for view in range(3):
        dots = DOTS + 7 * view
        for x, y in dots:
            images[view, y - 1:y + 2, x - 1:x + 2] = 250
        landmarks[view, :len(dots)] = dots
    return Tuple(images=images, skins=images.copy(), landmarks=landmarks,
                 intrinsics=np.tile(K_SHARED, (3, 1, 1)), flag=2, name=name)


def centroid(image, x, y, radius=5):
    x0, y0 = int(round(x)) - radius, int(round(y)) - radius
    window = image[y0:y0 + 2 * radius + 1, x0:x0 + 2 * radius + 1].astype(np.float64).sum(-1)
    rows, cols = np.mgrid[:window.shape[0], :window.shape[1]]
    return x0 + (cols * window).sum() / window.sum(), y0 + (rows * window).sum() / window.sum()


def test_augmentation_keeps_landmarks_on_their_dots(tmp_path):
    folder = write_dataset(tmp_path, [dotted_tuple("seq/a"), dotted_tuple("seq/b")])
    dataset = tuple_dataset(folder, batch_size=2, shuffle=False, data_aug=True, seed=5)
    scales = []
    for batch in batches(dataset.take(8)):
        np.testing.assert_array_equal(batch["skins"], batch["images"])  # one transform for both
        for field in ("images", "landmarks", "intrinsics"):  # one transform per batch
            np.testing.assert_array_equal(batch[field][0], batch[field][1])
        for view in range(3):
            for x, y in batch["landmarks"][0, view, :len(DOTS)]:
                found = centroid(batch["images"][0, view], x, y)
                assert np.hypot(found[0] - x, found[1] - y) < 1.0
        # The intrinsics follow the pixels: K' K^-1 maps old landmarks to new.
        pixel_map = batch["intrinsics"][0, 0] @ np.linalg.inv(K_SHARED)
        old = dotted_tuple("").landmarks[0, :len(DOTS)]
        moved = old @ pixel_map[:2, :2].T + pixel_map[:2, 2]
        np.testing.assert_allclose(moved, batch["landmarks"][0, 0, :len(DOTS)], atol=1e-3)
        scales.append(pixel_map[0, 0])
    assert 1.0 <= min(scales) and max(scales) < 1.2 and len(set(scales)) > 4


def test_without_augmentation_pixels_are_untouched(tmp_path):
    folder = write_dataset(tmp_path, [dotted_tuple("seq/a")])
    [batch] = batches(tuple_dataset(folder, shuffle=False, repeat=False))
    np.testing.assert_array_equal(batch["images"][0], dotted_tuple("").images)


# ------------------------------------------------------------ order and seeds

@pytest.fixture(scope="module")
def six_tuples(tmp_path_factory):
    folder = tmp_path_factory.mktemp("six")
    return write_dataset(folder, [random_tuple(n, f"seq/f{n}", noise=False) for n in range(6)])


def names_in_order(dataset):
    return [name.decode() for batch in batches(dataset) for name in batch["name"]]


def test_shuffle_and_seeds(six_tuples):
    listed = [f"seq/f{n}" for n in range(6)]
    assert names_in_order(tuple_dataset(six_tuples, shuffle=False, repeat=False)) == listed
    assert names_in_order(tuple_dataset(six_tuples, shuffle=False, repeat=2)) == listed * 2

    two_epochs = names_in_order(tuple_dataset(six_tuples, shuffle=True, seed=1, repeat=2))
    assert two_epochs == names_in_order(tuple_dataset(six_tuples, shuffle=True, seed=1, repeat=2))
    first, second = two_epochs[:6], two_epochs[6:]
    assert sorted(first) == sorted(second) == listed  # each epoch is a permutation
    assert first != second  # a new order every epoch
    other = names_in_order(tuple_dataset(six_tuples, shuffle=True, seed=2, repeat=2))
    assert other != two_epochs


def test_augmentation_seed_repeats(six_tuples):
    def pixels(seed):
        dataset = tuple_dataset(six_tuples, batch_size=2, data_aug=True, seed=seed, repeat=1)
        return [b["landmarks"] for b in batches(dataset)]

    np.testing.assert_array_equal(pixels(3), pixels(3))
    assert not np.array_equal(pixels(3), pixels(4))


def test_repeating_gives_full_batches(six_tuples):
    shapes = [b["images"].shape[0] for b in batches(
        tuple_dataset(six_tuples, batch_size=4, shuffle=False).take(3))]
    assert shapes == [4, 4, 4]  # each epoch drops its partial batch, like steps_per_epoch
    with pytest.raises(TupleError, match="fewer than batch_size 7"):
        tuple_dataset(six_tuples, batch_size=7)
