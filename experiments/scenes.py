"""Scenes shared by the benchmark and the demo: the BFM mean face under
MGCNet's default camera (MGCNET_REFERENCE.md §3.2-3.3)."""
import numpy as np

from mgc import geometry
from mgc.facemodel import load_bfm_mean


def bfm_mean_face(data_root=None):
    """(vertices [V, 3] in millimetres, triangles [T, 3] int32)."""
    model = load_bfm_mean(data_root)
    return model.mean_shape, model.triangles


def default_camera_matrix(width, height):
    """Projection @ model-view [4, 4] of MGCNet's default pose, with MGCNet's
    camera scaled to the image height (the face keeps filling about three
    quarters of it) and the principal point at the image centre."""
    base = geometry.MGCNET_INTRINSICS.scaled(height, height)
    intrinsics = geometry.Intrinsics(base.focal, width / 2.0, height / 2.0, width, height,
                                     base.near, base.far)
    model_view = geometry.model_view_matrix(np.array([geometry.DEFAULT_POSE], np.float32))[0]
    return (intrinsics.frustum() @ model_view.numpy()).astype(np.float32)


def vertex_normals(vertices, triangles):
    """Unit vertex normals [V, 3] of one mesh (MGCNet's formula)."""
    return geometry.vertex_normals(vertices[np.newaxis], triangles).numpy()[0]
