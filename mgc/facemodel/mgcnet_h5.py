"""MGCNet's `bfm09_trim_exp_uv_presplit.h5` (MGCNET_REFERENCE.md §2.2) as a FaceModel.

What the original `BFM_TF` reads and does, reproduced here:
  * `shape/model/mean` (micrometres, [3N]) /1000 -> mm; not re-centred.
  * `{shape,expression,color}/model/pcaBasis` [3N, K], first 80/64/80 columns,
    times |pcaVariance| (the code squares the stored value and takes the sqrt
    at use, so the effective scale is its absolute value). Shape and
    expression /1000 (um -> mm), colour /255. No expression mean is read.
  * `color/model/mean` /255; `color/model/uv` [N, 2].
  * `shape/representer/tri` 1-based -> 0-based.
  * `shape/representer/idx_lm68` used as 0-based (Appendix A on the real file).
  * fore region: `shape/representer/idx_sub` (0-based as stored) and
    `shape_fore/representer/tri` (1-based into the fore vertices).
The file has no per-vertex skin mask, so skin_mask is all ones. The `_full`
group and the `vertex_ring_face_*` adjacency are not read (the first is never
used by MGCNet, the second is rebuilt by FaceModel.vertex_triangles).
"""
import os

import h5py
import numpy as np
from absl import logging

from mgc.facemodel import bfm
from mgc.facemodel import loader_utils as lu
from mgc.facemodel.files import file_kind, not_a, one_line
from mgc.facemodel.model import NUM_LANDMARKS, FaceModelError

# |mean[idx_sub] - fore mean| allowed when checking idx_sub, micrometres (the
# fore group holds copies of the curr rows, so this only absorbs dtype casts).
FORE_MEAN_TOLERANCE_UM = 1.0


class _Reader:
    """Reads datasets of one open h5 file; errors name the file and the dataset."""

    def __init__(self, h5, path):
        self.h5 = h5
        self.path = path

    def has(self, key):
        return isinstance(self.h5.get(key), h5py.Dataset)

    def dataset(self, key, expected):
        if not self.has(key):
            raise FaceModelError(
                f"{self.path}: dataset '{key}' is missing (expected shape {expected})")
        return self.h5[key]

    def vector(self, key, expected, size=None, multiple_of=1):
        return lu.vector(self.dataset(key, expected)[()], key, self.path, expected,
                         size=size, multiple_of=multiple_of)

    def basis(self, key, num_vertices, rank, what):
        """First `rank` columns of `<key>/pcaBasis` times |`<key>/pcaVariance`|."""
        basis_key, variance_key = key + "/pcaBasis", key + "/pcaVariance"
        expected = f"[3N, K] = [{3 * num_vertices}, K]"
        basis = self.dataset(basis_key, expected)
        if basis.ndim != 2 or basis.shape[0] != 3 * num_vertices:
            raise lu.shape_error(self.path, basis_key, basis.shape, expected)
        columns = lu.clamp_rank(rank, basis.shape[1], what, self.path)
        expected = f"[K] with K >= {columns}"
        variance = self.vector(variance_key, expected)
        if variance.size < columns:
            raise lu.shape_error(self.path, variance_key, variance.shape, expected)
        if columns == 0:
            return np.zeros((3 * num_vertices, 0))
        return np.asarray(basis[:, :columns], np.float64) * np.abs(variance[:columns])

    def triangles(self, key, num_vertices):
        """A 1-based triangle list (any shape of size 3T) -> [T, 3] 0-based."""
        flat = self.vector(key, "[T, 3] (1-based)", multiple_of=3)
        return lu.as_indices(flat.reshape(-1, 3), key, self.path, 1, num_vertices)


def _landmarks(reader, num_vertices):
    key = "shape/representer/idx_lm68"
    if not reader.has(key):
        logging.info("%s: no %s; using MGCNet's list if the mesh has %d vertices", reader.path,
                     key, bfm.NUM_FRONT_VERTICES)
        return bfm.bfm_landmarks(num_vertices, source=reader.path)
    landmarks = lu.as_indices(reader.vector(key, f"[{NUM_LANDMARKS}]", size=NUM_LANDMARKS),
                              key, reader.path, 0, num_vertices)
    if (num_vertices == bfm.NUM_FRONT_VERTICES
            and not np.array_equal(landmarks, bfm.MGCNET_LANDMARKS_BFM)):
        logging.warning("%s: %s differs from MGCNet's list (MGCNET_REFERENCE.md Appendix A); "
                        "using the file's", reader.path, key)
    return landmarks


def _fore_region(reader, mean_um, triangles):
    """front_vertices, front_triangles; the whole mesh when there is no idx_sub.

    `idx_sub` is used 0-based, as MGCNet gathers with it. Whether the file
    stores it 0-based is an open question (MGCNET_REFERENCE.md §10 Q2); when
    the file also has the fore mean, the rows are compared: a 1-based list is
    detected, logged and shifted, anything else that disagrees is an error.
    """
    num_vertices = mean_um.shape[0]
    key = "shape/representer/idx_sub"
    if not reader.has(key):
        return np.arange(num_vertices), triangles
    flat = reader.vector(key, "[N_fore]")
    fore = lu.as_indices(flat, key, reader.path, 0, num_vertices)
    fore_triangles = reader.triangles("shape_fore/representer/tri", fore.size)
    if reader.has("shape_fore/model/mean"):
        fore_mean = reader.vector("shape_fore/model/mean", f"[{3 * fore.size}]",
                                  size=3 * fore.size).reshape(-1, 3)

        def matches(ids):
            return np.abs(mean_um[ids] - fore_mean).max() <= FORE_MEAN_TOLERANCE_UM

        if not matches(fore):
            if fore.min() >= 1 and matches(fore - 1):
                logging.warning("%s: %s is 1-based (the fore mean matches idx_sub - 1); "
                                "shifting it", reader.path, key)
                fore = fore - 1
            else:
                raise FaceModelError(
                    f"{reader.path}: shape_fore/model/mean is not the rows of shape/model/mean "
                    f"at {key} (nor at {key} - 1)")
    return fore, fore_triangles


def load_mgcnet_h5(path, identity_rank=80, albedo_rank=80, expression_rank=64):
    """MGCNet's h5 face model (module docstring) as a FaceModel in mm.

    Args:
      path: the .h5 file.
      identity_rank, albedo_rank, expression_rank: basis columns kept; MGCNet
        uses 80/80/64. None keeps every column; a larger request is clamped to
        what the file has.

    Raises:
      FileNotFoundError: no such file.
      FaceModelError: not HDF5, cut off or corrupt, or a dataset is missing
        or badly shaped (the message names the dataset path and the expected
        shape).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    try:
        h5 = h5py.File(path, "r")
    except OSError as error:
        if file_kind(path) == "an HDF5 file":
            raise FaceModelError(f"{path}: cut off or corrupt HDF5 file ({one_line(error)})") \
                from None
        raise not_a(path, "an HDF5 file", error) from None
    try:
        with h5:
            return _read_model(_Reader(h5, path), identity_rank, albedo_rank,
                               expression_rank)
    except (OSError, KeyError, RuntimeError) as error:  # h5py's errors on damaged data
        raise FaceModelError(f"{path}: corrupt HDF5 file ({one_line(error)})") from None


def _read_model(reader, identity_rank, albedo_rank, expression_rank):
    """The FaceModel in an open MGCNet h5 file (load_mgcnet_h5's ranks)."""
    path = reader.path
    mean_um = reader.vector("shape/model/mean", "[3N]", multiple_of=3).reshape(-1, 3)
    n = mean_um.shape[0]
    triangles = reader.triangles("shape/representer/tri", n)
    front_vertices, front_triangles = _fore_region(reader, mean_um, triangles)
    return lu.build_model(
        path,
        name="BFM 2009 (MGCNet h5; the file has no skin mask: all ones)",
        mean_shape=mean_um / bfm.UM_PER_MM,
        identity_basis=reader.basis("shape/model", n, identity_rank, "identity")
        / bfm.UM_PER_MM,
        expression_basis=reader.basis("expression/model", n, expression_rank, "expression")
        / bfm.UM_PER_MM,
        mean_albedo=reader.vector("color/model/mean", f"[{3 * n}]", size=3 * n)
        .reshape(n, 3) / 255.0,
        albedo_basis=reader.basis("color/model", n, albedo_rank, "albedo") / 255.0,
        triangles=triangles,
        landmarks=_landmarks(reader, n),
        contour_landmarks=np.zeros(0, np.int32),
        skin_mask=np.ones(n, np.float32),
        front_vertices=front_vertices,
        front_triangles=front_triangles,
        uvs=reader.vector("color/model/uv", f"[{n}, 2]", size=2 * n).reshape(n, 2),
        source=os.path.abspath(path))
