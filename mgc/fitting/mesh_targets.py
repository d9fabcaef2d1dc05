"""The face mesh's 468 points as fitting targets: which vertex of a face
model each point marks (calibrated on the project's renders,
experiments/calibrate_landmarks.py --landmarks_model=mesh), stored in
face_mesh_vertices.json per built-in model name and found by the model's
vertex count."""
import functools
import json
import os

import numpy as np

MESH_POINTS = 468
CORRESPONDENCE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "face_mesh_vertices.json")


@functools.lru_cache(maxsize=None)
def _entries():
    if not os.path.isfile(CORRESPONDENCE_FILE):
        return {}
    with open(CORRESPONDENCE_FILE) as stream:
        return json.load(stream)


def correspondence(model):
    """[468] int vertex of `model` each mesh point marks, or None when the
    project has none for this model (then the fit uses the 68 points only).
    Found by the model's vertex count: the built-in models' topologies differ,
    and models sharing one share the correspondence (MGCNet's h5 and the
    BFM09 front mean have the same 35709 vertices)."""
    entry = next((e for e in _entries().values() if e["num_vertices"] == model.num_vertices),
                 None)
    if entry is None:
        return None
    vertices = np.asarray(entry["vertices"], np.int64)
    if vertices.shape != (MESH_POINTS,) or vertices.min() < 0 or \
            vertices.max() >= model.num_vertices:
        raise ValueError(f"{CORRESPONDENCE_FILE} [{model.name}]: expected {MESH_POINTS} vertex "
                         f"ids below {model.num_vertices}, got shape {vertices.shape}")
    return vertices


def write_correspondence(name, num_vertices, vertices, report):
    """Stores one model's correspondence in CORRESPONDENCE_FILE."""
    vertices = [int(v) for v in vertices]
    if len(vertices) != MESH_POINTS:
        raise ValueError(f"expected {MESH_POINTS} vertices, got {len(vertices)}")
    entries = dict(_entries())
    entries[name] = dict(num_vertices=int(num_vertices), vertices=vertices, measured=report)
    temporary = CORRESPONDENCE_FILE + ".part"
    with open(temporary, "w") as stream:
        json.dump(entries, stream, indent=1, sort_keys=True)
        stream.write("\n")
    os.replace(temporary, CORRESPONDENCE_FILE)
    _entries.cache_clear()
