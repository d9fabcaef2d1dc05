"""The face mesh's 468 points as fitting targets: which vertex of a face
model each point marks (calibrated on the project's renders,
experiments/calibrate_landmarks.py --landmarks_model=mesh), stored in
face_mesh_vertices.json per built-in model name and found by the model's
vertex count."""
import os

from mgc.fitting.vertex_tables import VertexTable

MESH_POINTS = 468
CORRESPONDENCE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   "face_mesh_vertices.json")


_TABLE = VertexTable(CORRESPONDENCE_FILE, MESH_POINTS)


def correspondence(model):
    """[468] int vertex of `model` each mesh point marks, or None when the
    project has none for this model (then the fit uses the 68 points only).
    Found by the model's vertex count: the built-in models' topologies differ,
    and models sharing one share the correspondence (MGCNet's h5 and the
    BFM09 front mean have the same 35709 vertices)."""
    return _TABLE.vertices(model)


def write_correspondence(name, num_vertices, vertices, report):
    """Stores one model's correspondence in CORRESPONDENCE_FILE."""
    _TABLE.write(name, num_vertices, vertices, report)
