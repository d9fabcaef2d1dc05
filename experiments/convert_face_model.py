"""Converts a face model from an original format to the project's npz.

    python -m experiments.convert_face_model --input=BFM_model_front.mat --output=bfm.npz
    python -m experiments.convert_face_model --input=bfm09_trim_exp_uv_presplit.h5 \\
        --output=bfm.npz
    python -m experiments.convert_face_model --input=01_MorphableModel.mat --format=bfm2009 \\
        --expression_basis=Exp_Pca.bin --expression_std=std_exp.txt --output=bfm.npz
    python -m experiments.convert_face_model --input=ict --output=ict.npz

--format is detected from the file when left out (mgc.facemodel.detect_format).
Prints a one-paragraph summary of the result. An existing --output is only
replaced with --overwrite.
"""
import os
import sys

from absl import app, flags

from mgc.facemodel import FaceModelError
from mgc.facemodel import loaders

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Face-model file, or a built-in name: "
                    + ", ".join(loaders.MODEL_NAMES) + ".")
flags.DEFINE_enum("format", None, loaders.FORMATS, "Format of --input (default: detected).")
flags.DEFINE_string("output", None, "The npz to write.")
flags.DEFINE_string("expression_basis", None, "bfm2009 only: Exp_Pca.bin.")
flags.DEFINE_string("expression_std", None,
                    "bfm2009 only: std_exp.txt (default: the one in --topology_dir).")
flags.DEFINE_string("topology_dir", None, "bfm2009 only: folder of Deng's BFM_front_idx.mat, "
                    "BFM_exp_idx.mat, facemodel_info.mat (default: under the data root).")
flags.DEFINE_string("data_root", None, "Data root (default: $MGC_DATA or ../shared/data).")
flags.DEFINE_integer("identity_rank", None, "Identity components kept (default: the "
                     "format's, 80 for BFM files, all otherwise; -1: all).")
flags.DEFINE_integer("expression_rank", None, "Expression components kept (default: 64 for "
                     "BFM files, all otherwise; -1: all).")
flags.DEFINE_integer("albedo_rank", None, "Albedo components kept (default: 80 for BFM "
                     "files, all otherwise; -1: all).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")

BFM2009_OPTIONS = ("expression_basis", "expression_std", "topology_dir")
FRAME = "mm in the BFM model frame (x to the subject's left, y up, +z out of the face)"


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


def convert(input_path, output, format=None, overwrite=False, data_root=None,
            **options):
    """Loads `input_path` with loaders.load_face_model and saves it to `output`.

    Args:
      input_path: file or built-in model name.
      output: npz path.
      format: one of loaders.FORMATS, or None to detect it.
      overwrite: replace an existing `output`; otherwise FileExistsError,
        raised before anything is read.
      data_root: data root override.
      **options: loader options (ranks, None = all; bfm2009's
        expression_basis, expression_std, topology_dir).

    Returns:
      The summary paragraph.
    """
    if not output.endswith(".npz"):
        raise FaceModelError(f"--output must end in .npz, got {output}")
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    if format is None and input_path not in loaders.MODEL_NAMES and os.path.exists(input_path):
        format = loaders.detect_format(input_path)
    extra = sorted(set(options) & set(BFM2009_OPTIONS))
    if extra and format != "bfm2009":
        raise FaceModelError(f"{', '.join(extra)} only apply to --format=bfm2009")
    model = loaders.load_face_model(input_path, format, data_root=data_root, **options)
    model.save(output)
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
    del argv
    if not FLAGS.input or not FLAGS.output:
        raise app.UsageError("--input and --output are required")
    options = flag_options()
    try:
        print(convert(FLAGS.input, FLAGS.output, FLAGS.format, FLAGS.overwrite, FLAGS.data_root,
                      **options))
    except (FileExistsError, FileNotFoundError, FaceModelError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    app.run(main)
