"""Writes synthetic multi-view training tuples in the original MGCNet layout
(mgc.data.synthetic): a random face of --face_model seen near frontal and
turned left and right, over windows of real photos, with its landmarks,
skin maps, intrinsics and the ground truth.

    python -m experiments.make_synthetic_tuples --output=data/synthetic --num_tuples=1000
    python -m experiments.make_synthetic_tuples --output=data/synthetic_bfm --num_tuples=1000 \\
        --face_model=bfm09_trim_exp_uv_presplit.h5 --seed=1 --backgrounds=photos/

--output (required): the dataset folder; new or empty unless --overwrite
(which replaces files of the same names and removes nothing). It receives
train.txt (written last: a run that stops early leaves none) and
synthetic/<index>.jpg, _skin.jpg, _cam.txt, _truth.npz per tuple.
--seed defaults to 0; the same seed gives the same tuples.
--backgrounds defaults to the data root's demo_images.

Exit codes:
  0  every tuple was written
  2  a usage or set-up error (bad flags, a face model that cannot be read or
     lacks landmarks, a background folder without readable pictures, an
     --output that is a file or not empty): nothing was written
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

from absl import app, flags  # noqa: E402
from tqdm import tqdm  # noqa: E402

from experiments import common_flags  # noqa: E402
from mgc.data.synthetic import (SyntheticSetupError, SyntheticTuples,  # noqa: E402
                                check_output_folder, default_background_folder,
                                load_backgrounds)
from mgc.facemodel import FaceModelError, load_face_model  # noqa: E402
from mgc.facemodel.files import one_line  # noqa: E402

EXIT_WRITTEN, EXIT_SETUP = 0, 2
SEED = 0

FLAGS = flags.FLAGS
common_flags.use("output", "overwrite", "data_root", "face_model", "seed")
flags.DEFINE_integer("num_tuples", None, "How many tuples to write.", lower_bound=1)
flags.DEFINE_string("backgrounds", None, "A folder of pictures (subfolders included) whose "
                    "windows are the backgrounds (default: the data root's demo_images).")


class SetupError(Exception):
    """The run cannot start; the message says why (exit code 2)."""


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=EXIT_SETUP)
    try:
        generator = _set_up()
    except (SetupError, SyntheticSetupError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_SETUP
    count = FLAGS.num_tuples
    list_path = generator.write(FLAGS.output, count, overwrite=FLAGS.overwrite,
                                wrap=lambda pairs: tqdm(pairs, total=count, unit="tuple",
                                                        file=sys.stderr, dynamic_ncols=True))
    print(f"{count} tuple(s) of {generator.model.name} written; list: {list_path}")
    return EXIT_WRITTEN


def _set_up():
    """The generator, after every check that can fail before writing."""
    if not FLAGS.output:
        raise SetupError("--output is required (the dataset folder to write)")
    if FLAGS.num_tuples is None:
        raise SetupError("--num_tuples is required (how many tuples to write)")
    check_output_folder(FLAGS.output, FLAGS.overwrite)
    try:
        backgrounds = load_backgrounds(FLAGS.backgrounds
                                       or default_background_folder(FLAGS.data_root))
    except SyntheticSetupError as error:
        raise SetupError(f"--backgrounds: {one_line(error)}") from None
    try:
        model = load_face_model(FLAGS.face_model, data_root=FLAGS.data_root)
        return SyntheticTuples(model, backgrounds=backgrounds,
                               seed=common_flags.value_or("seed", SEED))
    except (FaceModelError, SyntheticSetupError, OSError) as error:
        raise SetupError(f"--face_model={FLAGS.face_model}: {one_line(error)}") from None


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
