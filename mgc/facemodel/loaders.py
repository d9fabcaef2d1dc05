"""One entry point for every face-model source: load_face_model.

Formats (FORMATS):
  mgc         the project's own npz (FaceModel.save / FaceModel.load)
  mgcnet_h5   MGCNet's bfm09_trim_exp_uv_presplit.h5          (mgcnet_h5.py)
  deng_mat    Deng et al.'s BFM_model_front.mat               (bfm.py)
  bfm2009     01_MorphableModel.mat + Exp_Pca.bin (+ std_exp)  (bfm.py)
  ict         ICT-FaceKit light face npz, the default model    (ict.py)
  surrey      Surrey Face Model 3448 npz                       (surrey.py)
Every loader returns a validated FaceModel in mm in the BFM model frame.
"""
import os

import numpy as np
import scipy.io

from mgc.facemodel.bfm import MGCNET_LANDMARKS_BFM, load_bfm2009, load_bfm_mean, load_deng_mat
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


def _npz_format(path):
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
    if "format_version" in keys:
        return "mgc"
    if {"neutral", "id_basis", "exp_basis"} <= keys:
        return "ict"
    if "orthonormal_pca_basis" in keys:
        return "surrey"
    return None


def _mat_format(path):
    try:
        names = {name for name, _, _ in scipy.io.whosmat(path)}
    except (ValueError, NotImplementedError):
        return None
    if "idBase" in names:
        return "deng_mat"
    if "shapePC" in names:
        return "bfm2009"
    return None


def detect_format(path):
    """The format of a face-model file from its extension and keys.

    Raises:
      FaceModelError: the format cannot be told; lists FORMATS.
    """
    extension = os.path.splitext(path)[1].lower()
    found = None
    if extension in (".h5", ".hdf5"):
        found = "mgcnet_h5"
    elif extension == ".npz":
        found = _npz_format(path)
    elif extension == ".mat":
        found = _mat_format(path)
    if found is None:
        raise FaceModelError(f"cannot tell the face-model format of {path}; pass format= one "
                             f"of {', '.join(FORMATS)}")
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
      FaceModelError: unknown format (the message lists FORMATS), or a bad file.
      FileNotFoundError: a missing file.
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
    format = format or detect_format(path)
    if format == "mgc":
        if options:
            raise FaceModelError(f"the mgc format takes no options, got {sorted(options)}")
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
