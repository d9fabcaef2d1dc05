"""Helpers shared by the face-model converters (bfm, mgcnet_h5, ict, surrey).

All arrays follow FaceModel's conventions: per-vertex data [N, 3], bases
[3N, K] with xyz interleaved per vertex (row 3i + j = coordinate j of vertex i).
"""
import numpy as np
from absl import logging

from mgc.facemodel.model import NUM_LANDMARKS, FaceModel, FaceModelError

# Constant albedo (linear RGB in [0, 1]) of models that have no albedo basis.
SKIN_TONE = (0.78, 0.60, 0.52)


def clamp_rank(requested, available, what, source):
    """Number of basis columns to keep.

    Args:
      requested: int, or None for every column the file has.
      available: columns present in the file.
      what: basis name for messages, e.g. "identity".
      source: file name for messages.

    Returns:
      min(requested, available); a request above `available` is logged.
    """
    if requested is None:
        return available
    if requested < 0:
        raise FaceModelError(f"{source}: {what} rank must be >= 0 or None, got {requested}")
    if requested > available:
        logging.warning("%s: %s rank %d requested but the file has %d components; using %d",
                        source, what, requested, available, available)
        return available
    return int(requested)


def vertex_rows(vertex_ids):
    """Rows [3M] of an interleaved [3N, ...] array that belong to vertices [M]."""
    vertex_ids = np.asarray(vertex_ids, np.int64)
    return (vertex_ids[:, None] * 3 + np.arange(3)).reshape(-1)


def components_to_basis(components):
    """[K, N, 3] component-major offsets -> [3N, K] interleaved basis."""
    k, n, _ = np.shape(components)
    return np.asarray(components).reshape(k, 3 * n).T


def constant_albedo(num_vertices, rgb=SKIN_TONE):
    """[N, 3] mean albedo of one skin tone and an empty [3N, 0] basis."""
    mean = np.tile(np.asarray(rgb, np.float32), (num_vertices, 1))
    return mean, np.zeros((3 * num_vertices, 0), np.float32)


def as_indices(values, name, source, base, upper):
    """Integer indices stored as any dtype (MATLAB files hold them as float).

    Args:
      values: array of indices, `base`-based.
      name: key for messages.
      source: file for messages.
      base: 0 or 1, the first valid index as stored.
      upper: number of valid targets; stored values must lie in
        [base, upper - 1 + base].

    Returns:
      int64 array of the same shape, 0-based.
    """
    values = np.asarray(values)
    rounded = np.rint(values).astype(np.int64)
    if values.size and not np.array_equal(rounded, values):
        raise FaceModelError(f"{source}: '{name}' must hold integer indices")
    if rounded.size and (rounded.min() < base or rounded.max() > upper - 1 + base):
        raise FaceModelError(
            f"{source}: '{name}' must hold {base}-based indices in [{base}, {upper - 1 + base}], "
            f"found [{rounded.min()}, {rounded.max()}]")
    return rounded - base


def check_bfm_frame(mean_shape, landmarks, source):
    """Raises FaceModelError unless the mean is in the BFM model frame.

    The frame: +x towards the subject's left (so the subject's right eye
    corner, iBUG 37, has the smaller x), +y up (chin below the eyes), +z out
    of the face (the nose tip in front of the eye corners). Uses landmarks
    8 (chin), 30 (nose tip), 36 and 45 (outer eye corners), 0-based iBUG.
    """
    needed = (8, 30, 36, 45)
    if any(landmarks[i] < 0 for i in needed):
        raise FaceModelError(f"{source}: frame check needs landmarks {needed}")
    chin, nose, right_eye, left_eye = (mean_shape[landmarks[i]] for i in needed)
    eyes = (right_eye + left_eye) / 2
    problems = []
    if not right_eye[0] < left_eye[0]:
        problems.append("the subject's right eye is not on -x")
    if not chin[1] < eyes[1]:
        problems.append("the chin is not below the eyes (y up)")
    if not nose[2] > eyes[2]:
        problems.append("the nose tip is not in front of the eyes (+z out of the face)")
    if problems:
        raise FaceModelError(f"{source}: not in the BFM model frame: " + "; ".join(problems))


def no_landmarks():
    """[68] int32 of -1 (no landmark present)."""
    return np.full(NUM_LANDMARKS, -1, np.int32)


def build_model(path, **fields):
    """FaceModel(**fields); its consistency errors name `path`, the file read."""
    try:
        return FaceModel(**fields)
    except FaceModelError as error:
        raise FaceModelError(f"{path}: {error}") from None


def npz_value(data, key, source, what):
    """data[key] of a read_npz dict; a missing key is named, with what the
    file should have been (e.g. "an ICT-FaceKit npz")."""
    if key not in data:
        raise FaceModelError(f"{source}: key '{key}' is missing (not {what}?)")
    return data[key]


def missing_error(source, key, expected):
    """The error for an absent key: names the key and what was expected."""
    return FaceModelError(f"{source}: '{key}' is missing (expected shape {expected})")


def shape_error(source, key, shape, expected):
    """The error for a badly shaped array: names the key, its shape and the expected one."""
    return FaceModelError(f"{source}: '{key}' has shape {list(shape)}, expected {expected}")


def vector(array, key, source, expected, size=None, multiple_of=1):
    """Flattens `array`; its size must equal `size` (if given), be a positive
    multiple of `multiple_of`, else shape_error with `expected`."""
    array = np.asarray(array)
    if (size is not None and array.size != size) or array.size == 0 or array.size % multiple_of:
        raise shape_error(source, key, array.shape, expected)
    return array.reshape(-1)
