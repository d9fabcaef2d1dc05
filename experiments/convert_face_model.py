"""Converts a face model from an original format to the project's npz.

    python -m experiments.convert_face_model --input=BFM_model_front.mat --output=bfm.npz
    python -m experiments.convert_face_model --input=bfm09_trim_exp_uv_presplit.h5 \\
        --output=bfm.npz
    python -m experiments.convert_face_model --input=01_MorphableModel.mat --format=bfm2009 \\
        --expression_basis=Exp_Pca.bin --expression_std=std_exp.txt --output=bfm.npz
    python -m experiments.convert_face_model --input=ict --output=ict.npz

--input (required): the face-model file, or a built-in model name (ict,
surrey, bfm_mean) read from --data_root. --format is detected from the file
when left out (mgc.facemodel.detect_format).
--output (required): the npz to write (must end in .npz). An existing one is
only replaced with --overwrite; it is written whole or not at all.

Prints a one-paragraph summary of the result. Every error that stops the
conversion is one `error: ...` line on stderr, found before --output is
touched.

Exit codes:
  0  the model was written to --output
  2  a usage or set-up error (bad or missing flags; an input that is missing,
     cut off, corrupt or not of --format; an --output that may not be
     written or replaced): nothing was written
"""
import os
import sys

from absl import app, flags

from experiments import common_flags
from mgc.facemodel import FaceModelError
from mgc.facemodel import loaders
from mgc.facemodel.files import one_line

EXIT_WRITTEN, EXIT_SETUP = 0, 2

FLAGS = flags.FLAGS
common_flags.use("input", "output", "overwrite", "data_root")
flags.DEFINE_enum("format", None, loaders.FORMATS, "Format of --input (default: detected).")
flags.DEFINE_string("expression_basis", None, "bfm2009 only: Exp_Pca.bin.")
flags.DEFINE_string("expression_std", None,
                    "bfm2009 only: std_exp.txt (default: the one in --topology_dir).")
flags.DEFINE_string("topology_dir", None, "bfm2009 only: folder of Deng's BFM_front_idx.mat, "
                    "BFM_exp_idx.mat, facemodel_info.mat (default: under the data root).")
flags.DEFINE_integer("identity_rank", None, "Identity components kept (default: the "
                     "format's, 80 for BFM files, all otherwise; -1: all).")
flags.DEFINE_integer("expression_rank", None, "Expression components kept (default: 64 for "
                     "BFM files, all otherwise; -1: all).")
flags.DEFINE_integer("albedo_rank", None, "Albedo components kept (default: 80 for BFM "
                     "files, all otherwise; -1: all).")

BFM2009_OPTIONS = ("expression_basis", "expression_std", "topology_dir")
FRAME = "mm in the BFM model frame (x to the subject's left, y up, +z out of the face)"


class SetupError(Exception):
    """The conversion cannot be done; the message says why (exit code 2)."""


def summary(model, output):
    """One paragraph describing a converted model."""
    present = int((model.landmarks >= 0).sum())
    return (f"{model.name}, from {model.source}: {model.num_vertices} vertices, "
            f"{model.num_triangles} triangles (front region {len(model.front_vertices)} "
            f"vertices, {len(model.front_triangles)} triangles); ranks identity "
            f"{model.identity_rank}, expression {model.expression_rank}, albedo "
            f"{model.albedo_rank}; {present}/{len(model.landmarks)} landmarks present, "
            f"{len(model.contour_landmarks)} contour landmarks; uvs "
            f"{'yes' if model.uvs is not None else 'no'}; units {FRAME}. Written to {output}.")


def check_output(output, overwrite):
    """SetupError unless `output` may be written (and replaced, if it exists)."""
    if not output.endswith(".npz"):
        raise SetupError(f"--output must end in .npz, got {output}")
    if os.path.isdir(output):
        raise SetupError(f"--output={output} is a folder; name the npz to write")
    if os.path.lexists(output) and not overwrite:
        raise SetupError(f"{output} exists; pass --overwrite to replace it")
    folder = _existing_parent(os.path.dirname(os.path.abspath(output)))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise SetupError(f"cannot write {output}: {folder} is not a writable folder")


def _existing_parent(folder):
    """The nearest folder (itself or above) that exists; FaceModel.save makes the rest."""
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return folder


def save_whole(model, output):
    """Writes the npz beside `output` and renames it into place, so that an
    interrupted or failed write leaves any old `output` as it was."""
    folder, name = os.path.split(os.path.abspath(output))
    partial = os.path.join(folder, f".{name[:-len('.npz')]}.partial.npz")
    try:
        model.save(partial)
        os.replace(partial, output)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def convert(input_path, output, format=None, overwrite=False, data_root=None,
            **options):
    """Loads `input_path` with loaders.load_face_model and saves it to `output`.

    Args:
      input_path: file or built-in model name.
      output: npz path.
      format: one of loaders.FORMATS, or None to detect it.
      overwrite: replace an existing `output`; otherwise SetupError, raised
        before anything is read.
      data_root: data root override.
      **options: loader options (ranks, None = all; bfm2009's
        expression_basis, expression_std, topology_dir).

    Returns:
      The summary paragraph.

    Raises:
      SetupError: `output` may not be written, or options of another format.
      FaceModelError, FileNotFoundError: from load_face_model (one line
        naming the file and the problem).
    """
    check_output(output, overwrite)
    if format is None and input_path not in loaders.MODEL_NAMES and os.path.isfile(input_path):
        format = loaders.detect_format(input_path)
    extra = sorted(set(options) & set(BFM2009_OPTIONS))
    if extra and format != "bfm2009":
        verb = "apply" if len(extra) > 1 else "applies"
        raise SetupError(f"--{', --'.join(extra)} only {verb} to --format=bfm2009")
    model = loaders.load_face_model(input_path, format, data_root=data_root, **options)
    try:
        save_whole(model, output)
    except OSError as error:
        raise SetupError(f"cannot write {output}: {error.strerror or error}") from None
    return summary(model, output)


def flag_options():
    """Loader options from the flags: only those set; a negative rank -> None (all)."""
    options = {}
    for name in ("identity_rank", "expression_rank", "albedo_rank"):
        value = getattr(FLAGS, name)
        if value is not None:
            options[name] = None if value < 0 else value
    for name in BFM2009_OPTIONS:
        if getattr(FLAGS, name) is not None:
            options[name] = getattr(FLAGS, name)
    return options


def main(argv):
    try:
        if len(argv) > 1:
            raise SetupError(f"unexpected arguments: {' '.join(argv[1:])}")
        if not FLAGS.input or not FLAGS.output:
            raise SetupError("--input (a face-model file or built-in name) and --output "
                             "(the npz to write) are required")
        print(convert(FLAGS.input, FLAGS.output, FLAGS.format, FLAGS.overwrite,
                      FLAGS.data_root, **flag_options()))
    except (SetupError, FaceModelError, FileNotFoundError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_SETUP
    return EXIT_WRITTEN


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
