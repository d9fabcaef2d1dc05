"""Vertex normals as MGCNet computes them (MGCNET_REFERENCE.md §2.5)."""
import hashlib

import numpy as np
import tensorflow as tf

_INCIDENCE = {}  # digest of (triangles, vertex count) -> (corner indices, incidence, counts)
_MAX_TOPOLOGIES = 8


def _incidence(triangles, num_vertices):
    """The topology's constants, made once: each corner's vertex indices, the
    [N, T] vertex-face incidence (a sparse matmul sums the face normals of
    each vertex: faster than a segment sum over every corner) and the face
    count of each vertex."""
    triangles = np.asarray(triangles, np.int32)
    key = hashlib.sha1(triangles.tobytes() + str(num_vertices).encode()).hexdigest()
    if key not in _INCIDENCE:
        corners = triangles.reshape(-1).astype(np.int64)
        faces = np.repeat(np.arange(len(triangles), dtype=np.int64), 3)
        order = np.lexsort((faces, corners))  # row-major order, as SparseTensor wants
        with tf.init_scope():  # eager constants, also when first used while tracing
            incidence = tf.sparse.SparseTensor(
                np.stack([corners[order], faces[order]], axis=1),
                np.ones(len(order), np.float32), [num_vertices, len(triangles)])
            counts = tf.constant(np.bincount(corners, minlength=num_vertices).astype(np.float32))
            entry = ([tf.constant(triangles[:, k]) for k in range(3)], incidence, counts)
        if len(_INCIDENCE) >= _MAX_TOPOLOGIES:
            _INCIDENCE.pop(next(iter(_INCIDENCE)))
        _INCIDENCE[key] = entry
    return _INCIDENCE[key]


def vertex_normals(vertices, triangles, differentiable=False):
    """Unit vertex normals [B, N, 3] of meshes [B, N, 3].

    Face normal c / (|c| + 1e-12) with c = (v1 - v0) x (v2 - v0); a vertex
    normal is the mean of its faces' normals (sum / (count + 1e-6)), then
    normalised (+1e-12). As in the original no gradient flows through the
    normals (differentiable=False) -- but they are exact for every call,
    without the original's running-sum accumulation (docs/DIFFERENCES.md).
    The triangles must be a NumPy array (or list): their constants are
    made once per topology.
    """
    vertices = tf.convert_to_tensor(vertices, tf.float32)
    num_vertices = vertices.shape[1]
    if num_vertices is None:
        raise ValueError("vertex_normals needs a static vertex count (vertices [B, N, 3])")
    corner_indices, incidence, counts = _incidence(triangles, num_vertices)
    # One gather per corner: cheaper than a [B, T, 3, 3] gather sliced afterwards.
    first, second, third = [tf.gather(vertices, indices, axis=1) for indices in corner_indices]
    cross = tf.linalg.cross(second - first, third - first)
    face_normals = cross / (tf.norm(cross, axis=-1, keepdims=True) + 1e-12)
    # [T, B * 3] -> per-vertex sums [N, B * 3] -> [B, N, 3]
    by_face = tf.reshape(tf.transpose(face_normals, [1, 0, 2]), [tf.shape(face_normals)[1], -1])
    sums = tf.reshape(tf.sparse.sparse_dense_matmul(incidence, by_face), [num_vertices, -1, 3])
    means = tf.transpose(sums, [1, 0, 2]) / (counts[tf.newaxis, :, tf.newaxis] + 1e-6)
    normals = means / (tf.norm(means, axis=-1, keepdims=True) + 1e-12)
    return normals if differentiable else tf.stop_gradient(normals)
