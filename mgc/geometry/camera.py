"""OpenGL-style camera matrices with the conventions of tf_mesh_renderer.

Matrices act on column vectors (clip = M @ [x, y, z, 1]); every function is
batched over a leading dimension B.
"""
import math

import tensorflow as tf


def _batched(values, last_dims, name):
    """Converts to float32 and adds a batch axis when `values` has none."""
    values = tf.convert_to_tensor(values, dtype=tf.float32, name=name)
    if values.shape.rank == len(last_dims):
        values = values[tf.newaxis]
    if values.shape.rank != len(last_dims) + 1 or (
            last_dims and values.shape[1:] != tuple(last_dims)):
        raise ValueError(
            f"{name} must have shape {list(last_dims)} or [B, {', '.join(map(str, last_dims))}]"
            f" (or [B] for scalars), got {values.shape}")
    return values


def perspective(aspect_ratio, fov_y, near_clip, far_clip):
    """gluPerspective projection matrices.

    Args:
      aspect_ratio: [B] or scalar, width / height.
      fov_y: [B] or scalar, vertical field of view in degrees.
      near_clip, far_clip: [B] or scalar distances to the clip planes (> 0).

    Returns:
      [B, 4, 4] float32 matrices mapping camera space (looking down -z) to
      clip space.
    """
    aspect_ratio = _batched(aspect_ratio, (), "aspect_ratio")
    fov_y = _batched(fov_y, (), "fov_y")
    near = _batched(near_clip, (), "near_clip")
    far = _batched(far_clip, (), "far_clip")
    focal = 1.0 / tf.tan(fov_y * (math.pi / 360.0))
    zeros = tf.zeros_like(focal)
    rows = [
        [focal / aspect_ratio, zeros, zeros, zeros],
        [zeros, focal, zeros, zeros],
        [zeros, zeros, (far + near) / (near - far), 2.0 * far * near / (near - far)],
        [zeros, zeros, -tf.ones_like(focal), zeros],
    ]
    return tf.stack([tf.stack(row, axis=-1) for row in rows], axis=-2)


def look_at(eye, center, world_up):
    """gluLookAt view matrices.

    Args:
      eye: [B, 3] or [3] camera positions.
      center: [B, 3] or [3] points the cameras look at.
      world_up: [B, 3] or [3] up directions (not parallel to center - eye).

    Returns:
      [B, 4, 4] float32 world-to-camera matrices; the camera looks down its -z
      axis with +y up.
    """
    eye = _batched(eye, (3,), "eye")
    center = _batched(center, (3,), "center")
    world_up = _batched(world_up, (3,), "world_up")
    forward = tf.math.l2_normalize(center - eye, axis=-1)
    side = tf.math.l2_normalize(tf.linalg.cross(forward, world_up), axis=-1)
    up = tf.linalg.cross(side, forward)
    rotation = tf.stack([side, up, -forward], axis=-2)  # [B, 3, 3]
    translation = -tf.linalg.matvec(rotation, eye)
    top = tf.concat([rotation, translation[..., tf.newaxis]], axis=-1)
    bottom = tf.broadcast_to(tf.constant([[0.0, 0.0, 0.0, 1.0]]),
                             [tf.shape(top)[0], 1, 4])
    return tf.concat([top, bottom], axis=-2)


def euler_matrices(angles):
    """4x4 rotations R = Rz(angles[2]) @ Ry(angles[1]) @ Rx(angles[0]).

    Args:
      angles: [B, 3] or [3] rotation angles about x, y, z in radians.

    Returns:
      [B, 4, 4] float32 homogeneous rotation matrices.
    """
    angles = _batched(angles, (3,), "angles")
    cx, cy, cz = tf.unstack(tf.cos(angles), axis=-1)
    sx, sy, sz = tf.unstack(tf.sin(angles), axis=-1)
    zeros, ones = tf.zeros_like(cx), tf.ones_like(cx)
    rows = [
        [cy * cz, cz * sx * sy - cx * sz, cx * cz * sy + sx * sz, zeros],
        [cy * sz, cx * cz + sx * sy * sz, cx * sy * sz - cz * sx, zeros],
        [-sy, cy * sx, cx * cy, zeros],
        [zeros, zeros, zeros, ones],
    ]
    return tf.stack([tf.stack(row, axis=-1) for row in rows], axis=-2)


def transform_homogeneous(matrices, vertices):
    """Applies 4x4 matrices to 3D points: [x, y, z, 1] @ M^T.

    Args:
      matrices: [B, 4, 4] (or [4, 4]) transforms.
      vertices: [B, V, 3] (or [V, 3]) points.

    Returns:
      [B, V, 4] float32 homogeneous points, e.g. clip-space vertices.
    """
    matrices = _batched(matrices, (4, 4), "matrices")
    vertices = tf.convert_to_tensor(vertices, dtype=tf.float32, name="vertices")
    if vertices.shape.rank == 2:
        vertices = vertices[tf.newaxis]
    if vertices.shape.rank != 3 or vertices.shape[-1] != 3:
        raise ValueError(f"vertices must have shape [B, V, 3] or [V, 3], got {vertices.shape}")
    ones = tf.ones_like(vertices[..., :1])
    return tf.matmul(tf.concat([vertices, ones], axis=-1), matrices, transpose_b=True)
