"""Training tuples as TFRecord shards: fewer, larger files than the original
layout, read with the same element structure as `mgc.data.reader`.

One record per tuple (tf.train.Example):
    image_png   the 224x672 row (source1 | target | source2), PNG: lossless
    skin_png    the skin row, PNG
    landmarks   408 floats: [3, 68, 2], views (target, source1, source2)
    intrinsics  27 floats: [3, 3, 3]
    flag        int64 flag_sgl_mul
    name        bytes "<subfolder>/<frame_id>"
Shards are `<prefix>-00000-of-0000N.tfrecord`.
"""
import glob
import os

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from mgc.data import layout
from mgc.data import reader
from mgc.data.layout import POINTS, VIEWS

DEFAULT_TUPLES_PER_SHARD = 1000
SHUFFLE_BUFFER = 4000  # records, as the original's batch shuffle buffer

_FEATURES = {
    "image_png": tf.io.FixedLenFeature([], tf.string),
    "skin_png": tf.io.FixedLenFeature([], tf.string),
    "landmarks": tf.io.FixedLenFeature([VIEWS * POINTS * 2], tf.float32),
    "intrinsics": tf.io.FixedLenFeature([VIEWS * 9], tf.float32),
    "flag": tf.io.FixedLenFeature([], tf.int64),
    "name": tf.io.FixedLenFeature([], tf.string),
}


def shard_name(output_prefix, shard, count):
    return f"{os.fspath(output_prefix)}-{shard:05d}-of-{count:05d}.tfrecord"


def write_shards(tuples_or_dataset_dir, output_prefix, tuples_per_shard=DEFAULT_TUPLES_PER_SHARD,
                 list_name="train", skip_bad=False, overwrite=False, progress=True):
    """Writes tuples into TFRecord shards.

    Each shard is written under a temporary name (`.partial`) and every shard
    gets its final name only when all are written, so a killed writer leaves
    no shard under a final name; on an error the partial files are removed.

    Args:
      tuples_or_dataset_dir: a dataset folder in the original layout (its
        `<list_name>.txt` is read and checked as `reader.index_tuples` does,
        skip_bad included) or an iterable of `layout.Tuple`.
      output_prefix: path prefix of the shards (parent folders are made).
      tuples_per_shard: records per shard (the last may hold fewer).
      overwrite: remove existing shards of this prefix; False refuses them.
      progress: a tqdm progress bar.

    Returns:
      the shard paths, in order.

    Raises:
      TupleError for a bad tuple (unless skip_bad for a folder), FileExistsError
      for existing shards without overwrite, ValueError for no tuples.
    """
    if tuples_per_shard < 1:
        raise ValueError(f"tuples_per_shard must be at least 1, got {tuples_per_shard}")
    _clear_old_shards(output_prefix, overwrite)
    tuples, total = _tuple_source(tuples_or_dataset_dir, list_name, skip_bad)
    os.makedirs(os.path.dirname(os.path.abspath(output_prefix)), exist_ok=True)
    partial = []
    try:
        _write_partial_shards(tuples, total, output_prefix, tuples_per_shard, partial, progress)
        if not partial:
            raise ValueError(f"no tuples to write into {output_prefix}-*")
        return _finalise(partial, output_prefix)
    finally:
        for path in partial:
            if os.path.exists(path):
                os.remove(path)


def _clear_old_shards(output_prefix, overwrite):
    old = sorted(glob.glob(glob.escape(os.fspath(output_prefix)) + "-[0-9]*-of-[0-9]*.tfrecord"))
    if old and not overwrite:
        raise FileExistsError(f"{old[0]} exists ({len(old)} shards of this prefix): "
                              f"pass overwrite=True to replace them")
    for path in old:
        os.remove(path)


def _tuple_source(tuples_or_dataset_dir, list_name, skip_bad):
    """(iterator of Tuples, count or None)."""
    if isinstance(tuples_or_dataset_dir, (str, os.PathLike)):
        index = reader.index_tuples(tuples_or_dataset_dir, list_name, skip_bad)
        return (_tuple_from_index(index, n) for n in range(len(index))), len(index)
    total = len(tuples_or_dataset_dir) if hasattr(tuples_or_dataset_dir, "__len__") else None
    return iter(tuples_or_dataset_dir), total


def _tuple_from_index(index, n):
    # Decoded with TensorFlow, as the folder reader decodes them.
    return layout.Tuple(images=layout.row_to_views(layout.decode_row(index.image_paths[n])),
                        skins=layout.row_to_views(layout.decode_row(index.skin_paths[n])),
                        landmarks=index.landmarks[n], intrinsics=index.intrinsics[n],
                        flag=int(index.flags[n]), name=index.names[n])


def _write_partial_shards(tuples, total, output_prefix, tuples_per_shard, partial, progress):
    writer = None
    try:
        for count, tuple_ in enumerate(tqdm(tuples, total=total, unit="tuple",
                                            desc="TFRecord shards", disable=not progress)):
            if count % tuples_per_shard == 0:
                if writer is not None:
                    writer.close()
                partial.append(f"{os.fspath(output_prefix)}-{len(partial):05d}.tfrecord.partial")
                writer = tf.io.TFRecordWriter(partial[-1])
            writer.write(tuple_example(tuple_).SerializeToString())
    finally:
        if writer is not None:
            writer.close()


def _finalise(partial, output_prefix):
    final = [shard_name(output_prefix, shard, len(partial)) for shard in range(len(partial))]
    for source, target in zip(partial, final):
        os.replace(source, target)
    return final


def tuple_example(tuple_):
    """One Tuple as a tf.train.Example (module docstring)."""
    layout.check_tuple(tuple_)

    def floats(array):
        return tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(array)))

    def data(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image_png": data(layout.png_bytes(layout.views_to_row(tuple_.images))),
        "skin_png": data(layout.png_bytes(layout.views_to_row(tuple_.skins))),
        "landmarks": floats(tuple_.landmarks),
        "intrinsics": floats(tuple_.intrinsics),
        "flag": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(tuple_.flag)])),
        "name": data(tuple_.name.encode("utf-8")),
    }))


def tfrecord_dataset(pattern_or_files, batch_size=1, shuffle=True, data_aug=False, seed=None,
                     repeat=True, shuffle_buffer=SHUFFLE_BUFFER):
    """Batches from TFRecord shards, in the element structure of
    `reader.tuple_dataset` (same batching, repeat and augmentation).

    Args:
      pattern_or_files: a glob pattern or a list of shard paths.
      shuffle: shuffle the shard order and records through a buffer of
        `shuffle_buffer` records (the folder reader shuffles the whole list);
        False: records in shard order, as written.
      data_aug, seed, repeat: as for `reader.tuple_dataset`.

    Raises:
      FileNotFoundError when no shard matches.
    """
    files = _shard_files(pattern_or_files)
    if shuffle:
        names = tf.data.Dataset.from_tensor_slices(files).shuffle(
            len(files), seed=seed, reshuffle_each_iteration=True)
        records = names.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 4),
                                   num_parallel_calls=tf.data.AUTOTUNE)
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    else:
        records = tf.data.TFRecordDataset(files)
    samples = records.map(_parse_record, num_parallel_calls=tf.data.AUTOTUNE)
    return reader.batched(samples, batch_size, data_aug, seed, repeat)


def _shard_files(pattern_or_files):
    if isinstance(pattern_or_files, (str, os.PathLike)):
        files = sorted(glob.glob(os.fspath(pattern_or_files)))
    else:
        files = [os.fspath(path) for path in pattern_or_files]
    if not files:
        raise FileNotFoundError(f"no TFRecord shards match {pattern_or_files!r}")
    missing = [path for path in files if not os.path.isfile(path)]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: missing TFRecord shard")
    return files


def _parse_record(record):
    fields = tf.io.parse_single_example(record, _FEATURES)
    return {"images": reader.decode_row_views(fields["image_png"], fields["name"]),
            "skins": reader.decode_row_views(fields["skin_png"], fields["name"]),
            "landmarks": tf.reshape(fields["landmarks"], [VIEWS, POINTS, 2]),
            "intrinsics": tf.reshape(fields["intrinsics"], [VIEWS, 3, 3]),
            "flag": tf.cast(fields["flag"], tf.int32),
            "name": fields["name"]}

