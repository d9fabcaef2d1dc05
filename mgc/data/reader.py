"""tf.data reader of the original's training tuples (MGCNET_REFERENCE.md §1.3).

Everything cheap is checked in Python before the first step: the list file,
the existence of every file, every `_cam.txt` (parsed here, so tf.data only
decodes images) and the image headers (size and channels). tf.data then
reads and decodes the images, batches, and optionally augments each batch as
the original's `_batch_preprocessing` does.

Elements are dicts, views in the order (target, source1, source2):
    images      uint8 [B, 3, 224, 224, 3]
    skins       uint8 [B, 3, 224, 224, 3]
    landmarks   float32 [B, 3, 68, 2]   crop pixels, integer = pixel centre
    intrinsics  float32 [B, 3, 3, 3]
    flag        int32 [B]               flag_sgl_mul
    name        string [B]              "<subfolder>/<frame_id>"
"""
import dataclasses
import os
import random

import numpy as np
import tensorflow as tf
from absl import logging

from mgc.data import layout
from mgc.data.layout import CROP, POINTS, TupleError

MATCH_NUM = POINTS
SCALE_RANGE = (1.0, 1.2)  # the original's random scale s ~ U[1, 1.2)


@dataclasses.dataclass
class TupleReport:
    """What the reader kept of a list file. `skipped` holds one message per
    skipped line or tuple, naming its file (and line)."""
    list_file: str
    listed: int = 0
    skipped: list = dataclasses.field(default_factory=list)

    @property
    def used(self):
        return self.listed - len(self.skipped)

    @property
    def skipped_count(self):
        return len(self.skipped)


@dataclasses.dataclass
class TupleIndex:
    """The checked tuples of a list file: paths, parsed `_cam.txt` arrays,
    flags and names, in list order."""
    image_paths: list
    skin_paths: list
    landmarks: np.ndarray   # float32 [N, 3, 68, 2]
    intrinsics: np.ndarray  # float32 [N, 3, 3, 3]
    flags: np.ndarray       # int32 [N]
    names: list
    report: TupleReport

    def __len__(self):
        return len(self.names)


def index_tuples(dataset_dir, list_name="train", skip_bad=False, check_images=True,
                 full_decode=False):
    """Reads and checks the list file and every tuple it names.

    Args:
      dataset_dir: the dataset folder holding `<list_name>.txt`.
      skip_bad: False: the first bad line or tuple raises TupleError.
        True: bad ones are skipped, logged and counted in `report`.
      check_images: read each image's header (size, channels): cheap.
      full_decode: also decode every image's pixels with Pillow (slow; finds
        truncated data, which otherwise fails only when tf.data decodes it).

    Returns:
      a TupleIndex.

    Raises:
      TupleError naming the file and line; also when no tuple is usable.
    """
    path = layout.list_path(dataset_dir, list_name)
    report = TupleReport(list_file=path)
    kept = []
    for number, line in layout.list_lines(path):
        report.listed += 1
        try:
            kept.append(_checked_entry(dataset_dir, layout.parse_list_line(path, number, line),
                                       check_images, full_decode))
        except TupleError as error:
            if not skip_bad:
                raise
            logging.warning("skipping a bad training tuple: %s", error)
            report.skipped.append(str(error))
    if not kept:
        raise TupleError(f"{path}: no usable tuples ({report.listed} lines, "
                         f"{report.skipped_count} skipped)")
    return _as_index(kept, report)


def _checked_entry(dataset_dir, entry, check_images, full_decode):
    flag, subfolder, frame_id, number = entry
    image_path, skin_path, cam_path = layout.tuple_paths(dataset_dir, subfolder, frame_id)
    for file_path in (image_path, skin_path, cam_path):
        if not os.path.isfile(file_path):
            raise TupleError(f"{file_path}: missing file (listed in line {number})")
    intrinsics, landmarks = layout.read_cam(cam_path)
    if check_images or full_decode:
        layout.check_image_file(image_path, full_decode)
        layout.check_image_file(skin_path, full_decode)
    return image_path, skin_path, landmarks, intrinsics, flag, f"{subfolder}/{frame_id}"


def _as_index(kept, report):
    image_paths, skin_paths, landmarks, intrinsics, flags, names = zip(*kept)
    return TupleIndex(list(image_paths), list(skin_paths), np.stack(landmarks),
                      np.stack(intrinsics), np.asarray(flags, np.int32), list(names), report)


def tuple_dataset(dataset_dir, list_name="train", batch_size=1, shuffle=True, data_aug=False,
                  match_num=MATCH_NUM, seed=None, skip_bad=False, repeat=True,
                  check_images=True):
    """The original loader as a tf.data.Dataset of batches (module docstring).

    Args:
      dataset_dir, list_name: `<dataset_dir>/<list_name>.txt` (the
        original's dataset_dir and dataset_name_list).
      batch_size: B.
      shuffle: a new random order of the tuples every epoch (flag_shuffle).
      data_aug: the original's flag_data_aug augmentation, one random
        transform per batch (see `augment_batch`).
      match_num: must be 68 (the original's graph cannot be built without
        landmarks).
      seed: an int makes the order and augmentation repeatable; None draws.
      skip_bad: see `index_tuples`; the dataset's `report` attribute (a
        TupleReport) counts what was skipped up front. Pixel data damaged
        past an intact header fails only when tf.data decodes it: then an
        InvalidArgumentError by default, and with skip_bad the sample is
        dropped with TensorFlow's warning, not counted in `report`.
      repeat: True: endless, like the original (every epoch has
        len // batch_size full batches); an int: that many such epochs;
        False: one pass, the last batch may be smaller.
      check_images: see `index_tuples`.

    Returns:
      tf.data.Dataset with a `report` attribute (lost by further
      transformations: keep a reference).

    Raises:
      TupleError (naming file and line) for the first bad tuple unless
      skip_bad; ValueError for a match_num other than 68.
    """
    check_match_num(match_num)
    index = index_tuples(dataset_dir, list_name, skip_bad, check_images)
    if repeat is not False and len(index) < batch_size:
        raise TupleError(f"{index.report.list_file}: {len(index)} usable tuples, fewer than "
                         f"batch_size {batch_size}: an epoch would have no full batch")
    samples = tf.data.Dataset.from_tensor_slices(_index_tensors(index))
    if shuffle:
        samples = samples.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)
    samples = samples.map(_decode_sample, num_parallel_calls=tf.data.AUTOTUNE)
    if skip_bad:  # pixel data that is damaged beyond its header
        samples = samples.ignore_errors(log_warning=True)
    dataset = batched(samples, batch_size, data_aug, seed, repeat)
    dataset.report = index.report
    return dataset


def check_match_num(match_num):
    if match_num != MATCH_NUM:
        raise ValueError(f"match_num must be {MATCH_NUM}, got {match_num}: the original's "
                         f"training graph cannot be built without the 68 landmarks per view")


def _index_tensors(index):
    return {"image_path": index.image_paths, "skin_path": index.skin_paths,
            "landmarks": index.landmarks, "intrinsics": index.intrinsics,
            "flag": index.flags, "name": index.names}


def _decode_sample(sample):
    return {"images": decode_row_views(tf.io.read_file(sample["image_path"]), sample["image_path"]),
            "skins": decode_row_views(tf.io.read_file(sample["skin_path"]), sample["skin_path"]),
            "landmarks": sample["landmarks"], "intrinsics": sample["intrinsics"],
            "flag": sample["flag"], "name": sample["name"]}


def decode_row_views(data, source):
    """Encoded 224x672 row (JPEG or PNG) -> uint8 [3, 224, 224, 3] views
    (target, source1, source2). `source` (a string tensor) names the data in
    the error when the size is wrong."""
    row = tf.io.decode_image(data, channels=3, expand_animations=False)
    shape = tf.shape(row)
    right_size = tf.debugging.Assert(tf.reduce_all(tf.equal(shape, layout.ROW_SHAPE)),
                                     ["image is not 224x672:", source, "shape", shape])
    with tf.control_dependencies([right_size]):
        row = tf.ensure_shape(tf.identity(row), layout.ROW_SHAPE)
    return tf.stack([row[:, block * CROP:(block + 1) * CROP] for block in layout.ROW_BLOCK])


def batched(samples, batch_size, data_aug, seed, repeat):
    """Per-sample dicts -> batches, repeated, each optionally augmented,
    prefetched (shared by the folder and TFRecord readers)."""
    dataset = samples.batch(batch_size, drop_remainder=repeat is not False)
    if repeat is True:
        dataset = dataset.repeat()
    elif repeat is not False:
        dataset = dataset.repeat(int(repeat))
    if data_aug:
        base_seed = tf.constant(
            random.SystemRandom().randrange(2**31) if seed is None else int(seed), tf.int64)
        dataset = dataset.enumerate().map(
            lambda step, batch: augment_batch(batch, tf.stack([base_seed, step])),
            num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def augment_batch(batch, seed):
    """The original's flag_data_aug on one batch: one scale s ~ U[1, 1.2)
    for both axes (area resize to int(224 s)), then one random crop back to
    224 with the same offset for x and y, applied to every view and skin map
    of every sample of the batch; landmarks and intrinsics follow the pixels.

    Args:
      batch: a dict of the reader's element structure.
      seed: int64 [2], the stateless seed of this batch.
    """
    scale_seed, offset_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    scale = tf.random.stateless_uniform([], scale_seed, *SCALE_RANGE)
    size = tf.cast(CROP * scale, tf.int32)  # as the original: tf.cast(224 * s, int32)
    offset = tf.random.stateless_uniform([], offset_seed, 0, size - CROP + 1, dtype=tf.int32)
    ratio = tf.cast(size, tf.float32) / CROP  # the scale the pixels really get
    shift = 0.5 * ratio - 0.5 - tf.cast(offset, tf.float32)
    out = dict(batch)
    out["images"] = _scaled_crop(batch["images"], size, offset)
    out["skins"] = _scaled_crop(batch["skins"], size, offset)
    out["landmarks"] = batch["landmarks"] * ratio + shift
    out["intrinsics"] = tf.linalg.matmul(_pixel_map(ratio, shift), batch["intrinsics"])
    return out


def _scaled_crop(views, size, offset):
    # Area resizing works per channel, so the views can be resized as one
    # batch of images: the same as the original's 18-channel stack.
    flat = tf.reshape(views, [-1, CROP, CROP, 3])
    resized = tf.image.resize(flat, [size, size], method="area")
    cropped = resized[:, offset:offset + CROP, offset:offset + CROP]
    # The reader gives uint8: the nearest value (the original keeps floats).
    pixels = tf.cast(tf.clip_by_value(tf.round(cropped), 0, 255), tf.uint8)
    return tf.reshape(pixels, tf.shape(views))


def _pixel_map(ratio, shift):
    """3x3 map of pixel coordinates (integer = pixel centre) from the input
    crop to the augmented one: x' = ratio * x + shift, y' likewise."""
    zero, one = tf.zeros([]), tf.ones([])
    return tf.stack([tf.stack([ratio, zero, shift]), tf.stack([zero, ratio, shift]),
                     tf.stack([zero, zero, one])])

