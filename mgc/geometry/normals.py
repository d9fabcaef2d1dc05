"""Vertex normals as MGCNet computes them (MGCNET_REFERENCE.md §2.5)."""
import tensorflow as tf


def vertex_normals(vertices, triangles, differentiable=False):
    """Unit vertex normals [B, N, 3] of meshes [B, N, 3].

    Face normal c / (|c| + 1e-12) with c = (v1 - v0) x (v2 - v0); a vertex
    normal is the mean of its faces' normals (sum / (count + 1e-6)), then
    normalised (+1e-12). As in the original no gradient flows through the
    normals (differentiable=False) -- but they are exact for every call,
    without the original's running-sum accumulation (docs/DIFFERENCES.md).
    """
    vertices = tf.convert_to_tensor(vertices, tf.float32)
    triangles = tf.convert_to_tensor(triangles, tf.int32)
    corners = tf.gather(vertices, triangles, axis=1)  # [B, T, 3, 3]
    cross = tf.linalg.cross(corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0])
    face_normals = cross / (tf.norm(cross, axis=-1, keepdims=True) + 1e-12)
    num_vertices = tf.shape(vertices)[1]
    flat_corners = tf.reshape(triangles, [-1])
    # Each face normal, once per corner: [T * 3, B, 3].
    per_corner = tf.repeat(tf.transpose(face_normals, [1, 0, 2]), 3, axis=0)
    sums = tf.math.unsorted_segment_sum(per_corner, flat_corners, num_vertices)
    counts = tf.math.unsorted_segment_sum(tf.ones_like(flat_corners, tf.float32), flat_corners,
                                          num_vertices)
    means = tf.transpose(sums, [1, 0, 2]) / (counts[tf.newaxis, :, tf.newaxis] + 1e-6)
    normals = means / (tf.norm(means, axis=-1, keepdims=True) + 1e-12)
    return normals if differentiable else tf.stop_gradient(normals)
