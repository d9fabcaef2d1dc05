"""The 68 points in the convention of the BFM09 keypoints, which AFLW2000-3D
(3DDFA's fitted BFM) and MGCNet mark: a fixed 3-D jaw line, as deep in the
head as BFM's. ICT-FaceKit's own jaw landmarks lie 23-27 mm from BFM's at
the sides (less deep), so a fitted ICT head scored at them misses AFLW's jaw
at every turn.

For each model (found by its vertex count, as mesh_targets does) the file
keypoints_68.json holds one vertex per iBUG point: the BFM09 mean's keypoints
carried onto the model's mean face by a 3-D similarity on ten points the two
conventions agree on (eye and mouth corners, nose tip, nose wings, chin), and
the model's vertex nearest each. Made by `python -m
experiments.calibrate_landmarks --keypoints --face_model=ict`
(compute_keypoints).

On the AFLW2000-3D subset, an ICT fit to the face mesh (140 steps) scored at
these points: 3.61 % NME at 0-30 degrees (every second face), 6.44 / 11.87 %
at 30-60 / 60-90 (all); at ICT's own landmarks 4.25 / 7.78 / 12.98; with
only the 17 jaw points moved 3.86 / 6.57 / 11.53.
"""
import os

import numpy as np

from mgc.fitting.initial_pose import _similarity_3d
from mgc.fitting.vertex_tables import VertexTable

KEYPOINTS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keypoints_68.json")
# iBUG points both conventions place alike: eye corners, mouth corners, nose
# tip and wings, chin.
ANCHORS = (36, 39, 42, 45, 48, 54, 30, 31, 35, 8)
JAW = np.arange(17)


_TABLE = VertexTable(KEYPOINTS_FILE, 68, lowest=-1)


def keypoint_vertices(model):
    """[68] vertex of each iBUG point in BFM09's convention: the calibrated
    set of keypoints_68.json for this model (all 68, also where the model's
    own landmarks lack one), else the model's own landmarks (-1 where it
    has none)."""
    vertices = _TABLE.vertices(model)
    return np.asarray(model.landmarks, np.int64) if vertices is None else vertices


def compute_keypoints(model, reference):
    """(vertices [68], report) of `model` in the convention of `reference`
    (the BFM09 mean): see the module docstring."""
    anchors = [j for j in ANCHORS if model.landmarks[j] >= 0 and reference.landmarks[j] >= 0]
    if len(anchors) < 4:
        raise ValueError(f"face model '{model.name}' has {len(anchors)} of the anchor points "
                         f"{ANCHORS}; at least 4 are needed")
    source = reference.mean_shape[reference.landmarks[anchors]].astype(np.float64)
    target = model.mean_shape[model.landmarks[anchors]].astype(np.float64)
    rotation, scale, _ = _similarity_3d(source - source.mean(0), target - target.mean(0))
    carried = ((reference.mean_shape[reference.landmarks].astype(np.float64) - source.mean(0))
               @ rotation.T * scale + target.mean(0))
    anchor_error = np.linalg.norm(carried[anchors] - target, axis=1)
    shape = model.mean_shape.astype(np.float64)
    vertices = np.array([np.argmin(np.linalg.norm(shape - point, axis=1)) for point in carried])
    present = model.landmarks >= 0
    moved = np.linalg.norm(shape[vertices] - shape[np.maximum(model.landmarks, 0)], axis=1)
    report = dict(reference=reference.name, anchors=list(anchors),
                  anchor_error_mm=round(float(anchor_error.mean()), 2),
                  nearest_distance_mm=round(float(np.linalg.norm(
                      shape[vertices] - carried, axis=1).mean()), 2),
                  jaw_moved_mm=round(float(moved[JAW][present[JAW]].mean()), 2),
                  others_moved_mm=round(float(moved[17:][present[17:]].mean()), 2))
    return vertices.astype(np.int64), report


def write_keypoints(name, num_vertices, vertices, report):
    """Stores one model's keypoint vertices in KEYPOINTS_FILE."""
    _TABLE.write(name, num_vertices, vertices, report)
