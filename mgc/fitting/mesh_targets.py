"""The face mesh's 468 points as fitting targets: which vertex of a face
model each point marks (calibrated on the project's renders,
experiments/calibrate_landmarks.py --landmarks_model=mesh), stored in
face_mesh_vertices.json per built-in model name and found by the model's
vertex count. A second table, face_mesh_vertices_profile.json, is calibrated
on renders turned 55-88 degrees (--min_yaw): there the mesh model's points
slide (its answer is turned too little), and the fit follows that table for
faces it finds turned that far (FitSettings.mesh_profile_yaw)."""
import os

import numpy as np
from scipy import optimize

from mgc.fitting.vertex_tables import VertexTable

MESH_POINTS = 468
CORRESPONDENCE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "face_mesh_vertices.json")


PROFILE_CORRESPONDENCE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                           "face_mesh_vertices_profile.json")


_TABLE = VertexTable(CORRESPONDENCE_FILE, MESH_POINTS)
_PROFILE_TABLE = VertexTable(PROFILE_CORRESPONDENCE_FILE, MESH_POINTS)


def _table(profile):
    return _PROFILE_TABLE if profile else _TABLE


def correspondence_file(profile=False):
    """The file of the front (or, profile, the profile) correspondences."""
    return _table(profile).path


def correspondence(model, profile=False):
    """[468] int vertex of `model` each mesh point marks, or None when the
    project has none for this model (then the fit uses the 68 points only).
    Found by the model's vertex count: the built-in models' topologies differ,
    and models sharing one share the correspondence (MGCNet's h5 and the
    BFM09 front mean have the same 35709 vertices). profile: the table for
    faces turned 55 degrees or more (None where the model has none)."""
    return _table(profile).vertices(model)


def write_correspondence(name, num_vertices, vertices, report, profile=False):
    """Stores one model's correspondence in CORRESPONDENCE_FILE (or, profile,
    PROFILE_CORRESPONDENCE_FILE)."""
    _table(profile).write(name, num_vertices, vertices, report)


def mirror_map(models):
    """[468] int: the mesh point that marks each point's mirror image, from
    the correspondences of `models` (FaceModels that have one): each model's
    mean-face vertices of the 468 points, scaled to a mean distance of 1 from
    their centre, are mirrored across their median x (the models' x runs
    across the face), and one assignment (Hungarian) matches every point to
    the mirrored point nearest summed over the models and both directions.
    Raises ValueError when no model has a correspondence or the result is not
    its own inverse (a mirror of a mirror is the point itself)."""
    cost = np.zeros((MESH_POINTS, MESH_POINTS))
    used = 0
    for model in models:
        vertices = correspondence(model)
        if vertices is None:
            continue
        points = np.asarray(model.mean_shape, np.float64)[vertices]
        points = points - points.mean(0)
        points /= np.linalg.norm(points, axis=1).mean()
        mirrored = points.copy()
        mirrored[:, 0] = 2 * np.median(points[:, 0]) - points[:, 0]
        cost += np.linalg.norm(points[:, None] - mirrored[None], axis=-1)
        used += 1
    if not used:
        raise ValueError("none of the face models has a mesh correspondence")
    _, mirror = optimize.linear_sum_assignment(cost + cost.T)
    if not np.array_equal(mirror[mirror], np.arange(MESH_POINTS)):
        raise ValueError("the mesh's mirror assignment is not its own inverse")
    return mirror
