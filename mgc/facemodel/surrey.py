"""Surrey Face Model, 3448-vertex shape-only version (eos; non-commercial).

Source files under the data root: surrey_face_model/sfm_shape_3448.npz (mean
(3448, 3) mm; orthonormal_pca_basis (10344, 63) interleaved xyz; eigenvalues
(63,) = variances; blendshapes (6, 3448, 3); ibug_ids_1based -> sfm_vertex_ids)
and sfm_model_contours.json beside it.

Frame: y up, +z out of the face and the subject's right eye on -x, i.e. the
BFM model frame's axes (checked at load by check_bfm_frame), so no rotation.
The origin differs from the BFM's (the nose tip is at z ~ 3 mm, not ~130 mm);
it is kept, as no unit or axis changes and the pose translation absorbs it.
Units are already mm. No albedo model: a constant skin tone, K_albedo = 0.
"""
import json
import os

import numpy as np

from mgc import paths
from mgc.facemodel import loader_utils as lu
from mgc.facemodel.files import read_npz
from mgc.facemodel.model import NUM_LANDMARKS, FaceModelError

SURREY_FILE = os.path.join("surrey_face_model", "sfm_shape_3448.npz")
CONTOURS_FILE = "sfm_model_contours.json"
WHAT = "a Surrey Face Model npz"


def _npz_array(data, key, path):
    return lu.npz_value(data, key, path, WHAT)


def ibug_landmarks(ibug_ids_1based, vertex_ids, num_vertices, source):
    """[68] vertex per iBUG point (0-based order), -1 where the model has none."""
    landmarks = lu.no_landmarks()
    slots = lu.as_indices(ibug_ids_1based, "ibug_ids_1based", source, 1, NUM_LANDMARKS)
    vertices = lu.as_indices(vertex_ids, "sfm_vertex_ids", source, 0, num_vertices)
    if slots.ndim != 1 or vertices.shape != slots.shape:
        raise lu.shape_error(source, "sfm_vertex_ids", vertices.shape,
                             f"{list(slots.shape)} (one per ibug_ids_1based)")
    landmarks[slots] = vertices
    return landmarks


def read_contours(path):
    """[C] contour vertices: the right contour then the left one."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with open(path, "rb") as file:
            contents = json.load(file)
    except (ValueError, OSError) as error:  # JSONDecodeError and UnicodeDecodeError included
        raise FaceModelError(f"{path}: not a readable JSON file ({error})") from None
    contours = contents.get("model_contour") if isinstance(contents, dict) else None
    if not isinstance(contours, dict) or not all(
            isinstance(contours.get(side), list) for side in ("right_contour", "left_contour")):
        raise FaceModelError(f"{path}: expected lists model_contour.right_contour and "
                             ".left_contour")
    try:
        return np.asarray(contours["right_contour"] + contours["left_contour"], np.int64)
    except (TypeError, ValueError) as error:
        raise FaceModelError(f"{path}: contours must be vertex numbers ({error})") from None


def load_surrey(data_root=None, path=None, contours_path=None, identity_rank=None,
                expression_rank=None, albedo_rank=None):
    """The Surrey Face Model (3448 vertices) as a FaceModel in mm.

    Args:
      data_root: data root override (see mgc.paths); used when `path` is None.
      path: the npz; default surrey_face_model/sfm_shape_3448.npz.
      contours_path: the contour json; default sfm_model_contours.json beside
        the npz.
      identity_rank: PCA components kept (None = all 63).
      expression_rank: blendshapes kept (None = all 6: anger, disgust, fear,
        happiness, sadness, surprise; weights, not standard deviations).
      albedo_rank: accepted for a uniform signature; the model has none (0).

    Returns:
      FaceModel whose identity basis is orthonormal_pca_basis * sqrt(eigenvalue)
      (mm per standard deviation), 50 of the 68 iBUG landmarks (1-8, 10-17, 61
      and 65 are -1), contour_landmarks from the json, uvs = texcoords.
    """
    path = path or paths.data_file(SURREY_FILE, data_root)
    contours_path = contours_path or os.path.join(os.path.dirname(path), CONTOURS_FILE)
    data = read_npz(path, WHAT)
    mean = _npz_array(data, "mean", path)
    if mean.ndim != 2:
        raise lu.shape_error(path, "mean", mean.shape, "[N, 3]")
    n = mean.shape[0]
    pcs = _npz_array(data, "orthonormal_pca_basis", path)
    if pcs.ndim != 2 or pcs.shape[0] != 3 * n:
        raise lu.shape_error(path, "orthonormal_pca_basis", pcs.shape, f"[3N, K] = [{3 * n}, K]")
    variances = lu.vector(_npz_array(data, "eigenvalues", path), "eigenvalues", path,
                          f"[{pcs.shape[-1]}]", size=pcs.shape[-1])
    k_id = lu.clamp_rank(identity_rank, pcs.shape[1], "identity", path)
    blendshapes = _npz_array(data, "blendshapes", path)
    if blendshapes.ndim != 3 or blendshapes.shape[1:] != (n, 3):
        raise lu.shape_error(path, "blendshapes", blendshapes.shape, f"[K, {n}, 3]")
    k_exp = lu.clamp_rank(expression_rank, blendshapes.shape[0], "expression", path)
    lu.clamp_rank(albedo_rank, 0, "albedo", path)  # no albedo basis: warns if asked for one
    mean_albedo, albedo_basis = lu.constant_albedo(n)
    model = lu.build_model(
        path,
        name="Surrey Face Model 3448 (shape only: constant skin tone)",
        mean_shape=mean,
        identity_basis=pcs[:, :k_id] * np.sqrt(variances[:k_id]),
        expression_basis=lu.components_to_basis(blendshapes[:k_exp]),
        mean_albedo=mean_albedo,
        albedo_basis=albedo_basis,
        triangles=_npz_array(data, "triangles", path),
        landmarks=ibug_landmarks(_npz_array(data, "ibug_ids_1based", path),
                                 _npz_array(data, "sfm_vertex_ids", path), n, path),
        contour_landmarks=read_contours(contours_path),
        skin_mask=np.ones(n, np.float32),
        front_vertices=np.arange(n),
        front_triangles=_npz_array(data, "triangles", path),
        uvs=_npz_array(data, "texcoords", path),
        source=f"{os.path.abspath(path)}, {os.path.abspath(contours_path)}")
    lu.check_bfm_frame(model.mean_shape, model.landmarks, path)
    return model
