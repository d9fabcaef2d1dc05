"""One entry point for every face-model source: load_face_model.

Formats (FORMATS):
  mgc         the project's own npz (FaceModel.save / FaceModel.load)
  mgcnet_h5   MGCNet's bfm09_trim_exp_uv_presplit.h5          (mgcnet_h5.py)
  deng_mat    Deng et al.'s BFM_model_front.mat               (bfm.py)
  bfm2009     01_MorphableModel.mat + Exp_Pca.bin (+ std_exp)  (bfm.py)
  ict         ICT-FaceKit light face npz, the default model    (ict.py)
  surrey      Surrey Face Model 3448 npz                       (surrey.py)
Every loader returns a validated FaceModel in mm in the BFM model frame.
Errors are FaceModelError (or FileNotFoundError for a missing file), one line
naming the file and the problem.
"""
import os
import zipfile
import zlib

import scipy.io

from mgc.facemodel.bfm import MGCNET_LANDMARKS_BFM, load_bfm2009, load_bfm_mean, load_deng_mat
from mgc.facemodel.files import check_file, file_kind, mat_cut_off, npz_keys, one_line
from mgc.facemodel.ict import default_face_model, load_ict_facekit
from mgc.facemodel.mgcnet_h5 import load_mgcnet_h5
from mgc.facemodel.model import FaceModel, FaceModelError
from mgc.facemodel.surrey import load_surrey

FORMATS = ("mgc", "mgcnet_h5", "deng_mat", "bfm2009", "ict", "surrey", "bfm_mean")
# Built-in models that load_face_model accepts by name (from the data root).
MODEL_NAMES = ("ict", "surrey", "bfm_mean")

__all__ = ["FORMATS", "MGCNET_LANDMARKS_BFM", "MODEL_NAMES", "default_face_model",
           "detect_format", "load_bfm2009", "load_deng_mat", "load_face_model",
           "load_bfm_mean", "load_ict_facekit", "load_mgcnet_h5", "load_surrey"]


# The keys that tell an npz's format, in the order they are tried.
NPZ_KEYS = (("mgc", ("format_version",)), ("ict", ("neutral", "id_basis", "exp_basis")),
            ("surrey", ("orthonormal_pca_basis",)))
_RANKS = ("identity_rank", "expression_rank", "albedo_rank")
# The options each format's loader takes (load_face_model's **options).
OPTIONS = {"mgc": (), "bfm_mean": (), "ict": _RANKS + ("calibrated_landmarks",),
           "surrey": _RANKS + ("contours_path",), "mgcnet_h5": _RANKS, "deng_mat": _RANKS,
           "bfm2009": _RANKS + ("expression_basis", "expression_std", "topology_dir")}
# Errors the libraries raise on files they cannot make sense of, which
# load_face_model reports as FaceModelError (what a loader did not catch).
READ_ERRORS = (OSError, EOFError, ValueError, TypeError, IndexError, KeyError, RuntimeError,
               zipfile.BadZipFile, zlib.error, scipy.io.matlab.MatReadError)


def _npz_format(path):
    keys = npz_keys(path)
    for format, needed in NPZ_KEYS:
        if set(needed) <= keys:
            return format
    expected = "; ".join(f"{', '.join(needed)} ({format})" for format, needed in NPZ_KEYS)
    raise FaceModelError(f"{path}: an npz of no known face-model format: it has keys "
                         f"{', '.join(sorted(keys)) or 'none'}, expected {expected}")


def _mat_format(path):
    problem = mat_cut_off(path)
    if problem:
        raise FaceModelError(f"{path}: {problem}")
    try:
        names = {name for name, _, _ in scipy.io.whosmat(path)}
    except (ValueError, NotImplementedError, OSError, scipy.io.matlab.MatReadError):
        return None
    if "idBase" in names:
        return "deng_mat"
    if "shapePC" in names:
        return "bfm2009"
    return None


def detect_format(path):
    """The format of a face-model file from its extension and keys.

    Raises:
      FileNotFoundError: no such file.
      FaceModelError: the format cannot be told (lists FORMATS), or the file
        is cut off or corrupt.
    """
    check_file(path)
    extension = os.path.splitext(path)[1].lower()
    found = None
    if extension in (".h5", ".hdf5"):
        found = "mgcnet_h5"
    elif extension == ".npz":
        found = _npz_format(path)
    elif extension == ".mat":
        found = _mat_format(path)
    if found is None:
        kind = file_kind(path)
        raise FaceModelError(f"cannot tell the face-model format of {path}"
                             f"{f' ({kind})' if kind else ''}; pass format= one of "
                             f"{', '.join(FORMATS)}")
    return found


def load_face_model(path_or_name, format=None, data_root=None, **options):
    """Loads any supported face model as a FaceModel.

    Args:
      path_or_name: a file, or a built-in model name ('ict', 'surrey',
        'bfm_mean') read from the data root.
      format: one of FORMATS; None detects it (detect_format).
      data_root: data root override (see mgc.paths).
      **options: passed to the format's loader, e.g. identity_rank=80;
        bfm2009 needs expression_basis= (Exp_Pca.bin) and takes
        expression_std= (std_exp.txt) and topology_dir=.

    Raises:
      FileNotFoundError: a missing file (the model's or one it needs).
      FaceModelError: everything else, in one line naming the file and the
        problem: an unknown format (the message lists FORMATS), a folder, a
        file of another format, a cut-off or corrupt file, a missing key or
        dataset (named), or arrays that do not fit together.
    """
    if format is not None and format not in FORMATS:
        raise FaceModelError(f"unknown face-model format '{format}'; known formats: "
                             f"{', '.join(FORMATS)}")
    path = path_or_name
    if path_or_name in MODEL_NAMES:
        if format not in (None, path_or_name):
            raise FaceModelError(f"'{path_or_name}' names a built-in model, not a {format} file")
        format, path = path_or_name, None
    elif not os.path.exists(path):
        raise FileNotFoundError(f"face model {path} does not exist (built-in names: "
                                f"{', '.join(MODEL_NAMES)})")
    else:
        check_file(path)
    format = format or detect_format(path)
    _check_options(format, path, options)
    try:
        return _load(path, format, data_root, options)
    except (FaceModelError, FileNotFoundError):
        raise
    except READ_ERRORS as error:
        raise FaceModelError(f"{path or path_or_name}: cannot read it as format {format} "
                             f"({type(error).__name__}: {one_line(error)})") from error


def _check_options(format, path, options):
    """Refuses options the format's loader does not take, and a file given
    for the built-in bfm_mean, before anything is read."""
    if format == "bfm_mean" and path is not None:
        raise FaceModelError(f"{path}: bfm_mean is a built-in model read from the data root, "
                             "not a file format")
    unknown = sorted(set(options) - set(OPTIONS[format]))
    if unknown:
        takes = ", ".join(OPTIONS[format]) or "none"
        raise FaceModelError(f"the {format} format takes no option {', '.join(unknown)} "
                             f"(its options: {takes})")


def _load(path, format, data_root, options):
    """The loader of `format` (path None: the built-in model's file)."""
    if format == "mgc":
        return FaceModel.load(path)
    if format == "bfm_mean":
        return load_bfm_mean(data_root)
    if format == "ict":
        return load_ict_facekit(data_root, path=path, **options)
    if format == "surrey":
        return load_surrey(data_root, path=path, **options)
    if format == "mgcnet_h5":
        return load_mgcnet_h5(path, **options)
    if format == "deng_mat":
        return load_deng_mat(path, **options)
    expression_basis = options.pop("expression_basis", None)
    if not expression_basis:
        raise FaceModelError(f"{path}: the bfm2009 format needs expression_basis= (the path of "
                             "Exp_Pca.bin)")
    return load_bfm2009(path, expression_basis, options.pop("expression_std", None),
                        options.pop("topology_dir", None), data_root=data_root, **options)
