"""The face-model container: one linear 3DMM, in millimetres in the BFM model
frame (x to the subject's left = image right in a frontal view, y up, +z out
of the face), saved as the project's own npz.

    shape  = mean_shape  + identity_basis @ alpha + expression_basis @ beta
    albedo = mean_albedo + albedo_basis @ delta            (then clipped to [0, 1])

Bases are [3N, K] with xyz interleaved per vertex (row 3i + j is coordinate j
of vertex i) and already multiplied by each component's standard deviation,
so coefficients are in units of standard deviations (MGCNet's alpha * sigma).
A model without an albedo basis (ICT-FaceKit, Surrey) has K_albedo = 0 and a
constant skin-tone mean; landmarks a model lacks are -1.
"""
import dataclasses
import os
from typing import Optional

import numpy as np

from mgc.facemodel.files import FaceModelError, one_line, read_npz

FORMAT_VERSION = 1
NUM_LANDMARKS = 68
FLOAT_FIELDS = ("mean_shape", "identity_basis", "expression_basis", "mean_albedo",
                "albedo_basis", "skin_mask", "uvs")
INDEX_FIELDS = ("triangles", "landmarks", "contour_landmarks", "front_vertices",
                "front_triangles")


@dataclasses.dataclass
class FaceModel:
    """A linear 3D morphable face model (see the module docstring).

    Attributes:
      name: free text, e.g. "BFM 2009 (MGCNet h5)".
      mean_shape: [N, 3] float32, mm.
      identity_basis: [3N, K_id] float32, mm per standard deviation.
      expression_basis: [3N, K_exp] float32, mm per coefficient unit.
      mean_albedo: [N, 3] float32 in [0, 1].
      albedo_basis: [3N, K_alb] float32 (K_alb may be 0).
      triangles: [T, 3] int32, 0-based, counter-clockwise seen from outside.
      landmarks: [68] int32 vertex indices in iBUG-68 order, -1 where absent.
      contour_landmarks: [C] int32 vertices along the jaw contour that a
        landmark fit may slide along (may be empty).
      skin_mask: [N] float32 in [0, 1], 1 on skin.
      front_vertices: [N_front] int32, the "fore" sub-mesh vertices (MGCNet's
        training render region); all vertices when the model has none.
      front_triangles: [T_front, 3] int32, 0-based into front_vertices.
      uvs: [N, 2] float32 texture coordinates in [0, 1], or None.
      source: free text naming the file(s) it was converted from.
    """

    name: str
    mean_shape: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    mean_albedo: np.ndarray
    albedo_basis: np.ndarray
    triangles: np.ndarray
    landmarks: np.ndarray
    contour_landmarks: np.ndarray
    skin_mask: np.ndarray
    front_vertices: np.ndarray
    front_triangles: np.ndarray
    uvs: Optional[np.ndarray] = None
    source: str = ""

    @property
    def num_vertices(self):
        return int(self.mean_shape.shape[0])

    @property
    def num_triangles(self):
        return int(self.triangles.shape[0])

    @property
    def identity_rank(self):
        return int(self.identity_basis.shape[1])

    @property
    def expression_rank(self):
        return int(self.expression_basis.shape[1])

    @property
    def albedo_rank(self):
        return int(self.albedo_basis.shape[1])

    def __post_init__(self):
        self._normalise_dtypes()
        self.validate()

    def _normalise_dtypes(self):
        for field in FLOAT_FIELDS:
            self._convert(field, np.float32)
        for field in INDEX_FIELDS:
            self._convert(field, np.int32)

    def _convert(self, field, dtype):
        value = getattr(self, field)
        if value is None and field == "uvs":
            return
        try:
            with np.errstate(over="ignore", invalid="ignore"):  # validate() reports non-finite
                setattr(self, field, np.ascontiguousarray(value, dtype))
        except (TypeError, ValueError) as error:  # strings, ragged lists, None
            raise FaceModelError(f"{field} cannot be read as {np.dtype(dtype).name}: "
                                 f"{one_line(error)}") from None

    def validate(self):
        """Raises FaceModelError naming the first inconsistent array."""
        n = self.mean_shape.shape[0] if self.mean_shape.ndim == 2 else -1
        expect = {
            "mean_shape": (n, 3), "mean_albedo": (n, 3), "skin_mask": (n,),
            "landmarks": (NUM_LANDMARKS,),
        }
        if self.mean_shape.ndim != 2 or self.mean_shape.shape[1] != 3 or n == 0:
            raise FaceModelError(f"mean_shape must have shape [N, 3], got {self.mean_shape.shape}")
        for field, shape in expect.items():
            if getattr(self, field).shape != shape:
                raise FaceModelError(
                    f"{field} must have shape {list(shape)}, got {list(getattr(self, field).shape)}")
        for field in ("identity_basis", "expression_basis", "albedo_basis"):
            basis = getattr(self, field)
            if basis.ndim != 2 or basis.shape[0] != 3 * n:
                raise FaceModelError(
                    f"{field} must have shape [3N, K] = [{3 * n}, K], got {list(basis.shape)}")
        for field, array, size in (("triangles", self.triangles, n),
                                   ("front_triangles", self.front_triangles,
                                    len(self.front_vertices))):
            if array.ndim != 2 or array.shape[1] != 3:
                raise FaceModelError(f"{field} must have shape [T, 3], got {list(array.shape)}")
            if array.size and (array.min() < 0 or array.max() >= size):
                raise FaceModelError(
                    f"{field} holds vertex indices outside [0, {size}): "
                    f"min {array.min()}, max {array.max()}")
        for field in ("landmarks", "contour_landmarks", "front_vertices"):
            array = getattr(self, field)
            if array.ndim != 1:
                raise FaceModelError(f"{field} must be a vector, got shape {list(array.shape)}")
            low = -1 if field == "landmarks" else 0
            if array.size and (array.min() < low or array.max() >= n):
                raise FaceModelError(f"{field} holds indices outside [{low}, {n})")
        if self.uvs is not None and self.uvs.shape != (n, 2):
            raise FaceModelError(f"uvs must have shape [{n}, 2], got {list(self.uvs.shape)}")
        for field in FLOAT_FIELDS:
            # A damaged file (HDF5 has no checksums) can hold NaN where numbers were.
            if getattr(self, field) is not None and not np.isfinite(getattr(self, field)).all():
                raise FaceModelError(f"{field} holds NaN or infinite values")

    def save(self, path):
        """Writes the model as an npz (the project's own format)."""
        arrays = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)
                  if getattr(self, field.name) is not None}
        arrays["format_version"] = np.int32(FORMAT_VERSION)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path):
        """Reads a model written by save().

        Raises:
          FileNotFoundError: no such file.
          FaceModelError: naming the file and the problem: not an npz, cut
            off or corrupt, not an mgc model, a missing key (named) or an
            inconsistent array.
        """
        data = read_npz(path, "an mgc face-model npz")
        version = _format_version(data.get("format_version"))
        if version != FORMAT_VERSION:
            raise FaceModelError(f"{path}: not an mgc face model (format_version {version}, "
                                 f"expected {FORMAT_VERSION}); convert it with "
                                 "python -m experiments.convert_face_model")
        values = {}
        for field in dataclasses.fields(cls):
            if field.name in data:
                value = data[field.name]
                values[field.name] = str(value) if field.type is str else value
            elif field.default is dataclasses.MISSING:
                raise FaceModelError(f"{path}: missing key '{field.name}'")
        try:
            return cls(**values)
        except FaceModelError as error:
            raise FaceModelError(f"{path}: {error}") from None

    def vertex_triangles(self):
        """[N, R] int32: the triangles incident to each vertex, -1 padded."""
        corners = self.triangles.reshape(-1)
        owners = np.repeat(np.arange(self.num_triangles, dtype=np.int32), 3)
        order = np.argsort(corners, kind="stable")
        counts = np.bincount(corners, minlength=self.num_vertices)
        ring = np.full((self.num_vertices, max(int(counts.max()), 1)), -1, np.int32)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        slots = np.arange(len(corners)) - np.repeat(starts, counts)
        ring[corners[order], slots] = owners[order]
        return ring


def _format_version(value):
    """The stored format_version as an int; None when absent or not one integer."""
    if value is None or value.size != 1 or not np.issubdtype(value.dtype, np.integer):
        return None
    return int(value.reshape(-1)[0])
