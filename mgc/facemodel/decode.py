"""Coefficients to per-vertex geometry and albedo (MGCNET_REFERENCE.md §2.3)."""
import collections

import tensorflow as tf

_CONSTANTS = collections.OrderedDict()  # id(array) -> (array, tensor), newest last
_MAX_CONSTANTS = 32


def model_constant(array):
    """A face-model array as a tensor, made once per array: a BFM basis is
    tens of MB, and copying it into a new tensor on every decode costs more
    than the matmul. The array is kept with its tensor (so its id stays
    unique); model arrays must not be changed in place after first use."""
    key = id(array)
    entry = _CONSTANTS.get(key)
    if entry is None or entry[0] is not array:
        with tf.init_scope():  # an eager tensor, also when first used while tracing
            entry = (array, tf.constant(array))
        _CONSTANTS[key] = entry
        if len(_CONSTANTS) > _MAX_CONSTANTS:
            _CONSTANTS.popitem(last=False)
    _CONSTANTS.move_to_end(key)
    return entry[1]


def _apply_basis(mean, basis, coefficients):
    """mean [N, 3] + basis [3N, K] @ coefficients [B, K] -> [B, N, 3]."""
    coefficients = tf.convert_to_tensor(coefficients, tf.float32)
    offsets = tf.linalg.matmul(coefficients, model_constant(basis), transpose_b=True)
    return model_constant(mean)[tf.newaxis] + tf.reshape(
        offsets, [tf.shape(coefficients)[0], -1, 3])


def decode_shape(model, identity, expression):
    """Vertices [B, N, 3] in mm, model frame (not re-centred, as MGCNet)."""
    shape = _apply_basis(model.mean_shape, model.identity_basis, identity)
    expression = tf.convert_to_tensor(expression, tf.float32)
    offsets = tf.linalg.matmul(expression, model_constant(model.expression_basis),
                               transpose_b=True)
    return shape + tf.reshape(offsets, tf.shape(shape))


def decode_albedo(model, albedo):
    """Per-vertex albedo [B, N, 3], clipped to [0, 1]."""
    return tf.clip_by_value(_apply_basis(model.mean_albedo, model.albedo_basis, albedo), 0.0, 1.0)
