"""ICT-FaceKit "Face Model Light", face region (MIT licence): the project's default.

Source file: ict_facekit/ict_face_model_light_face9409.npz under the data root
(see its README): neutral (9409, 3), id_basis (100, 9409, 3), exp_basis
(53, 9409, 3), all in cm; y up, +z out of the face, x to the subject's left,
i.e. already the BFM model frame's axes (checked at load by check_bfm_frame).

Conversion: cm x10 -> mm. The identity modes are already scaled so that their
coefficients are ~N(0, 1); the 53 expression blendshapes take weights in
[0, 1] (not standard deviations). No albedo model: a constant skin tone and
K_albedo = 0. Front region and skin mask: the upstream "narrow face" area
(the first narrow_face_num_vertices vertices, README_ICT-FaceKit.md), i.e. the
face without ears and neck, as BFM's front region is.
"""
import os

import numpy as np
from absl import logging

from mgc import paths
from mgc.facemodel import loader_utils as lu
from mgc.facemodel.files import read_npz
from mgc.facemodel.model import NUM_LANDMARKS

ICT_FILE = os.path.join("ict_facekit", "ict_face_model_light_face9409.npz")
MM_PER_CM = 10.0
# Nose landmarks moved to where dlib's landmarks (averaged with the mirror
# image's, as the fit gets them) fall on renders of this model
# (experiments/calibrate_landmarks.py: 240 random faces, seed 2024). Against
# dlib on held-out renders each point's NME falls from 1.0-3.8 % to
# 0.7-1.2 %: the file's upper bridge (27, 28) and nose base (31-35) lie
# 2-6 mm lower than the iBUG points dlib was trained on; the tip (29, 30)
# stays.
# Only the nose: its look in a render comes from geometry alone, not from the
# painted albedo. See docs/DIFFERENCES.md.
DLIB_CALIBRATED_LANDMARKS = {27: 977, 28: 4522, 29: 4942, 30: 4857, 31: 4585, 32: 4950,
                             33: 4920, 34: 5404, 35: 5082}
# Two uv corners of a vertex further apart than this count as a seam.
UV_SEAM_TOLERANCE = 1e-6
WHAT = "an ICT-FaceKit npz"


def _npz_array(data, key, path, ndim):
    array = lu.npz_value(data, key, path, WHAT)
    if array.ndim != ndim:
        raise lu.shape_error(path, key, array.shape, f"{ndim} dimensions")
    return array


def _components(data, key, path, num_vertices):
    """[K, N, 3] modes of `key` (cm)."""
    array = _npz_array(data, key, path, 3)
    if array.shape[1:] != (num_vertices, 3):
        raise lu.shape_error(path, key, array.shape, f"[K, {num_vertices}, 3]")
    return array


def _narrow_face(data, triangles, num_vertices, path):
    """The narrow face region: vertices [0, K) and the triangles within them
    (re-indexed into that list, which is the identity here). Everything when
    the file does not say."""
    key = "narrow_face_num_vertices"
    count = num_vertices
    if key in data:
        count = int(lu.as_indices(lu.vector(data[key], key, path, "[]", size=1), key, path, 0,
                                  num_vertices + 1)[0])
    inside = np.all(triangles < count, axis=1)
    return np.arange(count, dtype=np.int32), triangles[inside]


def vertex_uvs(triangles, triangles_uv, uv, num_vertices, source):
    """Per-vertex UVs [N, 2] from per-corner ones.

    Each vertex takes the uv of its first corner in triangle order. In this
    model the 138 vertices with several uv indices have identical uv values,
    so nothing is lost; a real seam (values differing) is logged, as is a
    vertex in no triangle (it gets uv (0, 0)).
    """
    corners = triangles.reshape(-1)
    corner_uvs = uv[triangles_uv.reshape(-1)]
    first = np.full(num_vertices, -1, np.int64)
    used, first_corner = np.unique(corners, return_index=True)
    first[used] = first_corner
    per_vertex = np.where(first[:, None] >= 0, corner_uvs[np.maximum(first, 0)], 0.0)
    if (first < 0).any():
        logging.warning("%s: %d vertices are in no triangle; their uv is (0, 0)", source,
                        int((first < 0).sum()))
    spread = np.abs(corner_uvs - per_vertex[corners]).max()
    if spread > UV_SEAM_TOLERANCE:
        logging.warning("%s: some vertices have several uvs (up to %.3g apart); keeping the "
                        "first", source, spread)
    return per_vertex


def load_ict_facekit(data_root=None, path=None, identity_rank=None, expression_rank=None,
                    albedo_rank=None, calibrated_landmarks=True):
    """The ICT-FaceKit light face model as a FaceModel in mm.

    Args:
      data_root: data root override (see mgc.paths); used when `path` is None.
      path: the npz file; default ict_facekit/ict_face_model_light_face9409.npz.
      identity_rank: identity modes kept (None = all 100).
      expression_rank: blendshapes kept, in the file's order (None = all 53).
      albedo_rank: accepted for a uniform signature; the model has none (0).
      calibrated_landmarks: use DLIB_CALIBRATED_LANDMARKS for the points it
        names instead of the file's `landmarks68`.

    Returns:
      FaceModel: 9409 vertices, 18460 triangles (quads split along 0-2),
      landmarks from `landmarks68` (iBUG-68; the nose calibrated, see
      calibrated_landmarks), contour_landmarks = the README's
      alternative jaw points (right 0-7 then left 9-16), uvs per vertex.
    """
    path = path or paths.data_file(ICT_FILE, data_root)
    data = read_npz(path, WHAT)
    neutral = _npz_array(data, "neutral", path, 2)
    n = neutral.shape[0]
    identity = _components(data, "id_basis", path, n)
    expression = _components(data, "exp_basis", path, n)
    k_id = lu.clamp_rank(identity_rank, identity.shape[0], "identity", path)
    k_exp = lu.clamp_rank(expression_rank, expression.shape[0], "expression", path)
    triangles = lu.as_indices(_npz_array(data, "triangles", path, 2), "triangles", path, 0, n)
    uv = _npz_array(data, "uv", path, 2)
    triangles_uv = lu.as_indices(_npz_array(data, "triangles_uv", path, 2), "triangles_uv", path,
                                 0, len(uv))
    if triangles_uv.shape != triangles.shape:
        raise lu.shape_error(path, "triangles_uv", triangles_uv.shape, list(triangles.shape))
    landmarks = _npz_array(data, "landmarks68", path, 1).copy()
    if landmarks.shape != (NUM_LANDMARKS,):
        raise lu.shape_error(path, "landmarks68", landmarks.shape, f"[{NUM_LANDMARKS}]")
    if calibrated_landmarks:
        landmarks[list(DLIB_CALIBRATED_LANDMARKS)] = list(DLIB_CALIBRATED_LANDMARKS.values())
    contour = np.concatenate([_npz_array(data, "jawline_right_0_7", path, 1),
                              _npz_array(data, "jawline_left_9_16", path, 1)])
    lu.clamp_rank(albedo_rank, 0, "albedo", path)  # no albedo basis: warns if asked for one
    mean_albedo, albedo_basis = lu.constant_albedo(n)
    front_vertices, front_triangles = _narrow_face(data, triangles, n, path)
    skin = np.zeros(n, np.float32)
    skin[front_vertices] = 1.0
    model = lu.build_model(
        path,
        name="ICT-FaceKit light, face region (no albedo model: constant skin tone)",
        mean_shape=neutral * MM_PER_CM,
        identity_basis=lu.components_to_basis(identity[:k_id]) * MM_PER_CM,
        expression_basis=lu.components_to_basis(expression[:k_exp]) * MM_PER_CM,
        mean_albedo=mean_albedo,
        albedo_basis=albedo_basis,
        triangles=triangles,
        landmarks=landmarks,
        contour_landmarks=contour,
        skin_mask=skin,
        front_vertices=front_vertices,
        front_triangles=front_triangles,
        uvs=vertex_uvs(triangles, triangles_uv, uv, n, path),
        source=os.path.abspath(path))
    lu.check_bfm_frame(model.mean_shape, model.landmarks, path)
    return model


def default_face_model(data_root=None):
    """The project's default face model: ICT-FaceKit (MIT), see load_ict_facekit."""
    return load_ict_facekit(data_root)
