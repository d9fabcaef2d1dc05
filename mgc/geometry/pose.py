"""MGCNet's pose convention (MGCNET_REFERENCE.md §3.2).

A pose is [rz, ry, rx, tx, ty, tz] (radians, millimetres). The rotation is
R = Rx(rx) @ Ry(ry) @ Rz(rz) and a model point X maps to the OpenCV camera
(x right, y down, z forward) as Xc = R X + t. The network predicts a delta
that is added, angles and translation alike, to DEFAULT_POSE.
"""
import math

import numpy as np
import tensorflow as tf

# Frontal BFM mean face, nose centred, about 3/4 of a 224-pixel image high.
DEFAULT_POSE = (0.0, 0.0, 3.141593, 0.17440447, 9.1053238, 4994.3359)
# The side views of MGCNet's test pictures (+-22.5 degrees of yaw).
LEFT_POSE = (-0.0, -0.392699, -3.141593, 37.504993, 9.1053238, 4994.3359)
RIGHT_POSE = (-0.0, 0.392699, -3.141593, -37.341232, 9.1053238, 4994.3359)


def rotation_matrix(angles):
    """R = Rx(rx) @ Ry(ry) @ Rz(rz) from angles [..., 3] = [rz, ry, rx]."""
    angles = tf.convert_to_tensor(angles, tf.float32)
    rz, ry, rx = tf.unstack(angles, axis=-1)
    cz, sz, cy, sy, cx, sx = tf.cos(rz), tf.sin(rz), tf.cos(ry), tf.sin(ry), tf.cos(rx), tf.sin(rx)
    rows = [
        [cy * cz, -cy * sz, sy],
        [cx * sz + sx * sy * cz, cx * cz - sx * sy * sz, -sx * cy],
        [sx * sz - cx * sy * cz, sx * cz + cx * sy * sz, cx * cy],
    ]
    return tf.stack([tf.stack(row, axis=-1) for row in rows], axis=-2)


def absolute_pose(pose_delta):
    """Default pose + predicted delta, [..., 6]."""
    return tf.convert_to_tensor(pose_delta, tf.float32) + tf.constant(DEFAULT_POSE, tf.float32)


def extrinsic_matrix(pose):
    """[..., 4, 4] matrices [R | t; 0 0 0 1] of poses [..., 6]."""
    pose = tf.convert_to_tensor(pose, tf.float32)
    rotation = rotation_matrix(pose[..., :3])
    top = tf.concat([rotation, pose[..., 3:, tf.newaxis]], axis=-1)
    bottom = tf.broadcast_to(tf.constant([0.0, 0.0, 0.0, 1.0]),
                             tf.concat([tf.shape(pose)[:-1], [1, 4]], axis=0))
    return tf.concat([top, bottom], axis=-2)


def transform_points(points, pose):
    """Model points [B, N, 3] to OpenCV camera coordinates R X + t."""
    pose = tf.convert_to_tensor(pose, tf.float32)
    rotation = rotation_matrix(pose[..., :3])
    return tf.linalg.matmul(points, rotation, transpose_b=True) + pose[..., tf.newaxis, 3:]


def camera_center(pose):
    """Camera centre in the model frame, -R^T t, [..., 3]."""
    pose = tf.convert_to_tensor(pose, tf.float32)
    rotation = rotation_matrix(pose[..., :3])
    return -tf.linalg.matvec(rotation, pose[..., 3:], transpose_a=True)


def pose_from_extrinsic(matrix):
    """Inverse of extrinsic_matrix for one NumPy matrix [3+, 4]: [rz, ry, rx,
    tx, ty, tz], with the original's handling of the gimbal-lock case."""
    r = np.asarray(matrix, np.float64)
    cy = math.hypot(r[2, 2], r[1, 2])
    if cy >= 1e-6:
        z, y, x = math.atan2(-r[0, 1], r[0, 0]), math.atan2(r[0, 2], cy), math.atan2(-r[1, 2], r[2, 2])
    else:
        z, y, x = math.atan2(r[1, 0], r[1, 1]), math.atan2(r[0, 2], cy), 0.0
    return np.array([z, y, x, r[0, 3], r[1, 3], r[2, 3]])
