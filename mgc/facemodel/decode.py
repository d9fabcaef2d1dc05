"""Coefficients to per-vertex geometry and albedo (MGCNET_REFERENCE.md §2.3)."""
import tensorflow as tf


def _apply_basis(mean, basis, coefficients):
    """mean [N, 3] + basis [3N, K] @ coefficients [B, K] -> [B, N, 3]."""
    coefficients = tf.convert_to_tensor(coefficients, tf.float32)
    offsets = tf.linalg.matmul(coefficients, tf.constant(basis), transpose_b=True)
    return tf.constant(mean)[tf.newaxis] + tf.reshape(offsets, [tf.shape(coefficients)[0], -1, 3])


def decode_shape(model, identity, expression):
    """Vertices [B, N, 3] in mm, model frame (not re-centred, as MGCNet)."""
    shape = _apply_basis(model.mean_shape, model.identity_basis, identity)
    expression = tf.convert_to_tensor(expression, tf.float32)
    offsets = tf.linalg.matmul(expression, tf.constant(model.expression_basis), transpose_b=True)
    return shape + tf.reshape(offsets, tf.shape(shape))


def decode_albedo(model, albedo):
    """Per-vertex albedo [B, N, 3], clipped to [0, 1]."""
    return tf.clip_by_value(_apply_basis(model.mean_albedo, model.albedo_basis, albedo), 0.0, 1.0)
