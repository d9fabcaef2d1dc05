"""MGCNet's per-view training losses (MGCNET_REFERENCE.md §1.3, §5.1-5.4).

Plain functions of tensors, eager and tf.function alike. Images are
top-down [B, H, W, C]. Floating outputs take the dtype of the function's
main floating input (float32 in training; float64 works for checks); the
other inputs are cast to it.

The original sums each per-view loss over the three views and divides by 3;
`regularisation_losses` does that itself (it takes lists over views), the
other losses are per view and `average_over_views` finishes them.
"""
import math
import numbers

import numpy as np
import tensorflow as tf

NUM_LANDMARKS = 68
# 0-based indices weighted by lm_detail_weight (§1.3): nose 27..35, inner lips 60..67.
DETAIL_LANDMARKS = tuple(range(27, 36)) + tuple(range(60, 68))
# tf.image.rgb_to_grayscale's weights, which the original's skin processing uses.
GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)
EXPRESSION_PRIOR = 0.8
ALBEDO_PRIOR = 0.0017
PHOTOMETRIC_EPSILON = 1e-6  # inside the sqrt and in the denominator (B10)


# ---- argument checks -------------------------------------------------------

def _tensor(value, name, dtype=None):
    """value as a tensor: cast to dtype if given, else floating kept, others float32."""
    tensor = tf.convert_to_tensor(value)
    if dtype is None:
        dtype = tensor.dtype if tensor.dtype.is_floating else tf.float32
    if not (tensor.dtype.is_floating or tensor.dtype.is_integer or tensor.dtype == tf.bool):
        raise ValueError(f"{name} must be numeric, got dtype {tensor.dtype.name}")
    return tf.cast(tensor, dtype)


def _check_shape(tensor, expected, name):
    """expected: a list (None for any size) or TensorShape; raises naming the argument."""
    expected = tf.TensorShape(expected)
    if not tensor.shape.is_compatible_with(expected):
        wanted = "[" + ", ".join("?" if s is None else str(s) for s in expected.as_list()) + "]"
        raise ValueError(f"{name} must have shape {wanted}, got {tensor.shape}")


def _check_same_shape(tensor, reference, name, reference_name):
    if not tensor.shape.is_compatible_with(reference.shape):
        raise ValueError(f"{name} must have the shape of {reference_name} "
                         f"{reference.shape}, got {tensor.shape}")


def _check_weights(tensor, name):
    """Negative or non-finite weights are refused when their values are known."""
    values = tf.get_static_value(tensor)
    if values is None:
        return
    bad = ~(np.isfinite(values) & (values >= 0))
    if np.any(bad):
        raise ValueError(f"{name} must be finite and non-negative, got {values[bad][:3]} "
                         f"({int(bad.sum())} bad of {values.size})")


def checked_weight(value, name):
    """A weight flag as a float; refuses non-numbers, negatives and non-finite values."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and non-negative, got {value}")
    return value


def _uint8(images, name):
    images = tf.convert_to_tensor(images)
    if images.dtype != tf.uint8:
        raise ValueError(f"{name} must be uint8, got dtype {images.dtype.name}")
    return images


def _float_image(image, name, dtype=None):
    """A float image (uint8 ones would silently stay in 0..255)."""
    image = tf.convert_to_tensor(image)
    if not image.dtype.is_floating:
        raise ValueError(f"{name} must be a float image in [0, 1] (see image_to_float), "
                         f"got dtype {image.dtype.name}")
    return image if dtype is None else tf.cast(image, dtype)


def _views(values, name):
    if isinstance(values, (tf.Tensor, np.ndarray)) or not values:
        raise ValueError(f"{name} must be a non-empty list over views of [B, K] tensors")
    return [_check_rank2(_tensor(v, f"{name}[{i}]"), f"{name}[{i}]")
            for i, v in enumerate(values)]


def _check_rank2(tensor, name):
    _check_shape(tensor, [None, None], name)
    return tensor


# ---- inputs ----------------------------------------------------------------

def image_to_float(images_uint8):
    """uint8 [...] -> float32 in [0, 1] as convert_image_dtype: x * float32(1/255).

    This differs from x / 255 by one ulp on some values (parity README §5.4).
    """
    images = _uint8(images_uint8, "images_uint8")
    return tf.cast(images, tf.float32) * tf.constant(1.0 / 255.0, tf.float32)


def skin_weights(skin):
    """uint8 skin maps [B, H, W, 3] -> weights K [B, H, W, 1] (float32, §1.3).

    Gray of the [0, 1] map; probabilities above 0.5 become 1, the rest stay soft.
    """
    skin = _uint8(skin, "skin")
    _check_shape(skin, [None, None, None, 3], "skin")
    gray = tf.tensordot(image_to_float(skin), tf.constant(GRAY_WEIGHTS, tf.float32), [[-1], [-1]])
    gray = gray[..., tf.newaxis]
    return tf.where(gray > 0.5, tf.ones_like(gray), gray)


def landmark_weights(detail_weight):
    """[68] float32: 1, and detail_weight (lm_detail_weight) on nose and inner lips."""
    detail_weight = checked_weight(detail_weight, "detail_weight")
    weights = np.ones(NUM_LANDMARKS, np.float32)
    weights[list(DETAIL_LANDMARKS)] = detail_weight
    return tf.constant(weights)


def composite(render, mask, image):
    """render + (1 - M) * image (gpmm_face_replace, B12: the render is not clipped).

    render, image: [B, H, W, C] float; mask: [B, H, W, 1], 0/1 of any dtype.
    """
    render = _float_image(render, "render")
    _check_shape(render, [None, None, None, None], "render")
    image = _float_image(image, "image", render.dtype)
    _check_same_shape(image, render, "image", "render")
    mask = _tensor(mask, "mask", render.dtype)
    _check_shape(mask, render.shape[:-1].concatenate([1]), "mask")
    return render + (1.0 - mask) * image


# ---- losses ----------------------------------------------------------------

def regularisation_losses(identity, expression, albedo):
    """Coefficient priors (§5.1), each argument a list over views of [B, K].

    reg_shape = (sum_v sum a^2 + 0.8 sum_v sum b^2) / V,
    reg_color = 0.0017 sum_v sum d^2 / V: summed over batch and coefficients,
    not averaged; V = number of views (3 in training). Returns a dict of
    scalars reg_shape_loss, reg_color_loss.
    """
    identity = _views(identity, "identity")
    expression = _views(expression, "expression")
    albedo = _views(albedo, "albedo")
    if not len(identity) == len(expression) == len(albedo):
        raise ValueError(f"identity, expression and albedo must list the same views, got "
                         f"{len(identity)}, {len(expression)}, {len(albedo)}")
    shape = [tf.reduce_sum(tf.square(a)) + EXPRESSION_PRIOR * tf.reduce_sum(tf.square(b))
             for a, b in zip(identity, expression)]
    color = [ALBEDO_PRIOR * tf.reduce_sum(tf.square(d)) for d in albedo]
    return {"reg_shape_loss": average_over_views(shape),
            "reg_color_loss": average_over_views(color)}


def landmark_loss(projected, targets, weights):
    """mean over batch and points of w_k * |p - g|^2 (§5.2), one view, pixels^2.

    projected, targets: [B, K, 2] crop pixels; weights: [K] (landmark_weights).
    """
    projected = _tensor(projected, "projected")
    _check_shape(projected, [None, None, 2], "projected")
    targets = _tensor(targets, "targets", projected.dtype)
    _check_same_shape(targets, projected, "targets", "projected")
    weights = _tensor(weights, "weights", projected.dtype)
    _check_shape(weights, projected.shape[1:2], "weights")
    _check_weights(weights, "weights")
    squared_distance = tf.reduce_sum(tf.square(projected - targets), axis=-1)
    return tf.reduce_mean(squared_distance * weights)


def photometric_loss(composite, image, skin, mask):
    """Skin-weighted Euclidean RGB distance (§5.3), one view, scalar.

    composite, image: [B, H, W, C] in [0, 1]; skin (K), mask (M): [B, H, W, 1].
    Per sample sum_pixels sqrt(|K*R - K*I|^2 + 1e-6) / (sum K*M + 1e-6), mean over
    the batch. As in the original (B10) the epsilon adds 0.001 on every pixel,
    masked or not.
    """
    composite = _float_image(composite, "composite")
    _check_shape(composite, [None, None, None, None], "composite")
    image = _float_image(image, "image", composite.dtype)
    _check_same_shape(image, composite, "image", "composite")
    single_channel = composite.shape[:-1].concatenate([1])
    skin = _tensor(skin, "skin", composite.dtype)
    _check_shape(skin, single_channel, "skin")
    mask = _tensor(mask, "mask", composite.dtype)
    _check_shape(mask, single_channel, "mask")
    difference = composite * skin - image * skin
    distance = tf.sqrt(tf.reduce_sum(tf.square(difference), axis=-1) + PHOTOMETRIC_EPSILON)
    area = tf.reduce_sum(skin * mask, axis=[1, 2, 3]) + PHOTOMETRIC_EPSILON
    return tf.reduce_mean(tf.reduce_sum(distance, axis=[1, 2]) / area)


def identity_loss(image_embeddings, render_embeddings):
    """mean over the batch of 1 - <e_image, e_render> (§5.4), one view.

    Both [B, D], unit vectors as FaceNet returns them (not re-normalised here,
    as in the original).
    """
    image_embeddings = _tensor(image_embeddings, "image_embeddings")
    _check_shape(image_embeddings, [None, None], "image_embeddings")
    render_embeddings = _tensor(render_embeddings, "render_embeddings", image_embeddings.dtype)
    _check_same_shape(render_embeddings, image_embeddings, "render_embeddings",
                      "image_embeddings")
    cosine = tf.reduce_sum(image_embeddings * render_embeddings, axis=-1)
    return tf.reduce_mean(1.0 - cosine)


def average_over_views(per_view_losses):
    """sum over views / number of views, as the original combines per-view terms."""
    if not per_view_losses:
        raise ValueError("per_view_losses must list at least one view")
    return tf.add_n(list(per_view_losses)) / len(per_view_losses)
