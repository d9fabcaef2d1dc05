"""Scenes shared by the benchmark and the demo: the BFM mean face under
MGCNet's default camera (MGCNET_REFERENCE.md §3.2-3.3).

The default pose (rz, ry, rx, tx, ty, tz) puts the mean face frontal with
its height about three quarters of a 224-pixel image at focal length 4700.
"""
import numpy as np

from mgc import paths

DEFAULT_POSE = (0.0, 0.0, 3.141593, 0.17440447, 9.1053238, 4994.3359)
FOCAL, NEAR, FAR = 4700.0, 3000.0, 7000.0


def bfm_mean_face(data_root=None):
    """(vertices [V, 3] in millimetres, triangles [T, 3] int32)."""
    model = np.load(paths.data_file("bfm09_topology/bfm09_front_mean.npz", data_root))
    return model["meanshape"].astype(np.float32) * 100.0, model["triangles"].astype(np.int32)


def default_camera_matrix(width, height):
    """Projection @ model-view [4, 4] of MGCNet's default pose with the
    principal point at the image centre. The focal length is 4700 pixels at
    224 pixels of height and scales with the height, so the face keeps
    filling about three quarters of it at any size."""
    focal = FOCAL * height / 224.0
    rz, ry, rx, tx, ty, tz = DEFAULT_POSE
    c, s = np.cos, np.sin
    rot_x = np.array([[1, 0, 0], [0, c(rx), -s(rx)], [0, s(rx), c(rx)]])
    rot_y = np.array([[c(ry), 0, s(ry)], [0, 1, 0], [-s(ry), 0, c(ry)]])
    rot_z = np.array([[c(rz), -s(rz), 0], [s(rz), c(rz), 0], [0, 0, 1]])
    extrinsic = np.eye(4)
    extrinsic[:3, :3] = rot_x @ rot_y @ rot_z
    extrinsic[:3, 3] = (tx, ty, tz)
    opencv_to_opengl = np.diag([1.0, -1.0, -1.0, 1.0])
    frustum = np.array([
        [2 * focal / width, 0, 0, 0],
        [0, 2 * focal / height, 0, 0],
        [0, 0, -(FAR + NEAR) / (FAR - NEAR), -2 * FAR * NEAR / (FAR - NEAR)],
        [0, 0, -1, 0]])
    return (frustum @ opencv_to_opengl @ extrinsic).astype(np.float32)


def vertex_normals(vertices, triangles):
    """Area-weighted unit vertex normals [V, 3] (for demo shading only)."""
    corners = vertices[triangles]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, triangles[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
