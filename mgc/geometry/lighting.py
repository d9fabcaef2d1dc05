"""Spherical-harmonics lighting of MGCNet (MGCNET_REFERENCE.md §3.4):
9 bands per colour channel, evaluated on normals in the model frame."""
import math

import tensorflow as tf

AMBIENT_OFFSET = 0.8  # added to band 0 of every channel (the initial light)
_A0, _A1, _A2 = math.pi, 2 * math.pi / math.sqrt(3.0), 2 * math.pi / math.sqrt(8.0)
_C0 = 1 / math.sqrt(4 * math.pi)
_C1 = math.sqrt(3.0) / math.sqrt(4 * math.pi)
_C2 = 3 * math.sqrt(5.0) / math.sqrt(12 * math.pi)


def sh_basis(normals):
    """The 9 SH basis values (with the Lambertian factors) [..., 9] of unit
    normals [..., 3]."""
    x, y, z = tf.unstack(normals, axis=-1)
    k1, k2 = _A1 * _C1, _A2 * _C2
    return tf.stack([
        tf.fill(tf.shape(x), _A0 * _C0), -k1 * y, k1 * z, -k1 * x, k2 * x * y, -k2 * y * z,
        k2 * (0.5 / math.sqrt(3.0)) * (3 * z * z - 1), -k2 * x * z, k2 * 0.5 * (x * x - y * y),
    ], axis=-1)


def sh_shading(normals, lighting):
    """Per-vertex irradiance L [B, N, 3] from normals [B, N, 3] and lighting
    coefficients [B, 27] ((R, G, B) x 9 bands); not clamped."""
    gamma = tf.reshape(tf.convert_to_tensor(lighting, tf.float32), [-1, 3, 9])
    gamma += tf.constant([AMBIENT_OFFSET] + [0.0] * 8)
    return tf.linalg.matmul(sh_basis(normals), gamma, transpose_b=True)
