"""Exports MGCNet's encoder and face model as a SavedModel that runs without mgc.

    python -m experiments.export_model --checkpoint=model/model-400000 \\
        --face_model=bfm09_trim_exp_uv_presplit.h5 --output=export/mgcnet

--checkpoint (required): prefix of an original MGCNet checkpoint (its
resnet_v1_50/* variables are read by name).
--face_model: a face-model file or built-in name (mgc.facemodel.load_face_model)
whose ranks give MGCNet's 257 coefficients (identity 80, albedo 80,
expression 64), e.g. MGCNet's BFM h5.
--output (required): the SavedModel folder to write. An existing non-empty one
is only replaced with --overwrite; it is written whole or not at all.
--onnx: also write the same graph as an ONNX file (needs tf2onnx).

The SavedModel's one signature, serving_default, takes `images`: uint8 RGB
crops [B, 224, 224, 3] (MGCNet's aligned crops) and returns `coefficients`
[B, 257], `vertices` [B, N, 3] (mm, model frame, no pose) and `landmarks_2d`
[B, 68, 2] (crop pixels, x right, y down, integer = pixel centre). It holds no
custom op: `tf.saved_model.load` runs it with TensorFlow alone.

Every error that stops the export is one `error: ...` line on stderr.

Exit codes:
  0  the SavedModel (and the ONNX file) was written
  2  a usage or set-up error (bad or missing flags; a missing or unreadable
     checkpoint or face model; a face model without the 257 layout; an
     --output that may not be written or replaced): nothing was written
"""
import importlib.util
import os
import shutil
import sys

from absl import app, flags

from experiments import common_flags
from mgc.facemodel import FaceModelError, load_face_model
from mgc.facemodel.files import one_line
from mgc.nets import CheckpointError, load_encoder
from mgc.nets import serving as serving_lib

EXIT_WRITTEN, EXIT_SETUP = 0, 2

FLAGS = flags.FLAGS
common_flags.use("output", "overwrite", "face_model", "data_root", "checkpoint")
flags.DEFINE_string("onnx", None, "Also write the graph as this ONNX file (needs tf2onnx).")


class SetupError(Exception):
    """The export cannot be done; the message says why (exit code 2)."""


def check_output(path, overwrite, folder=True):
    """SetupError unless `path` may be written (and replaced, if it exists)."""
    exists = os.path.isdir(path) and os.listdir(path) if folder else os.path.lexists(path)
    if exists and not overwrite:
        raise SetupError(f"{path} exists and is not empty; pass --overwrite to replace it")
    if not folder and os.path.isdir(path):
        raise SetupError(f"{path} is a folder; name the file to write")
    if folder and os.path.lexists(path) and not os.path.isdir(path):
        raise SetupError(f"{path} exists and is not a folder")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(parent):   # missing folders above are made
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        raise SetupError(f"cannot write {path}: {parent} is not a writable folder")


def _partial(path):
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.partial")


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.remove(path)


def _write_whole(write, path):
    """Calls write(partial) beside `path`, then moves it into place, so that
    a failed export leaves any old `path` as it was."""
    partial = _partial(path)
    os.makedirs(os.path.dirname(partial), exist_ok=True)
    _remove(partial)
    try:
        write(partial)
        if os.path.isdir(path) and os.listdir(path):
            shutil.rmtree(path)  # only reached with --overwrite
        os.replace(partial, path)
    finally:
        _remove(partial)


def export(checkpoint, face_model, output, overwrite=False, data_root=None, onnx=None):
    """Checks everything, then writes the SavedModel (and the ONNX file).
    Raises SetupError, CheckpointError, FaceModelError, FileNotFoundError,
    ServingError (one line each)."""
    check_output(output, overwrite)
    if onnx:
        check_output(onnx, overwrite, folder=False)
    encoder = load_encoder(checkpoint)   # before the (slow) face model
    model = load_face_model(face_model, data_root=data_root)
    try:
        serving_lib.check_layout(model)
    except serving_lib.ServingError as error:
        raise SetupError(f"--face_model={face_model}: {error}") from None
    holder = {}
    _write_whole(lambda path: holder.update(
        serving=serving_lib.export_saved_model(encoder, model, path)), output)
    if onnx:
        _write_whole(lambda path: serving_lib.export_onnx(holder["serving"], path), onnx)
    return f"wrote {output}" + (f" and {onnx}" if onnx else "")


def main(argv):
    try:
        if len(argv) > 1:
            raise SetupError(f"unexpected arguments: {' '.join(argv[1:])}")
        if not FLAGS.checkpoint or not FLAGS.output:
            raise SetupError("--checkpoint (a checkpoint prefix) and --output (the SavedModel "
                             "folder to write) are required")
        if FLAGS.onnx:
            _require_tf2onnx()
        print(export(FLAGS.checkpoint, FLAGS.face_model, FLAGS.output, FLAGS.overwrite,
                     FLAGS.data_root, FLAGS.onnx))
    except (SetupError, CheckpointError, FaceModelError, FileNotFoundError,
            serving_lib.ServingError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_SETUP
    return EXIT_WRITTEN


def _require_tf2onnx():
    """Checked before any work, so a missing package costs nothing."""
    if importlib.util.find_spec("tf2onnx") is None:
        raise SetupError("--onnx needs tf2onnx and onnx (pip install tf2onnx)")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
