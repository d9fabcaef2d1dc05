"""Python API of the rasterizer op: clip-space rasterization and attribute
interpolation, with the gradient registered.

Every image returned here is bottom-up (row 0 = NDC y = -1), shaped
[B, H, W, ...]; face-level code flips it (docs/ARCHITECTURE.md).
"""
import numbers

import numpy as np
import tensorflow as tf

from mgc.geometry import transform_homogeneous
from mgc.render.op_loader import load_ops


def _invalid(message):
    return tf.errors.InvalidArgumentError(None, None, message)


_INT32 = np.iinfo(np.int32)


def _check_image_size(image_width, image_height):
    for name, value in (("image_width", image_width), ("image_height", image_height)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _invalid(f"{name} must be a positive int, got {value!r}")


def _index_text(index):
    return ", ".join(str(int(i)) for i in index)


def _check_int32_range(values):
    """values: a numpy integer or object (Python int) array."""
    outside = (values < _INT32.min) | (values > _INT32.max)
    if np.any(outside):
        index = np.argwhere(outside)[0]
        raise _invalid(f"triangles[{_index_text(index)}] = {values[tuple(index)]} "
                       f"does not fit in int32")


def _check_integer_objects(values):
    """values: an object array, as Python lists become; bools are refused
    although Python counts them as ints."""
    for index, value in np.ndenumerate(values):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise _invalid(f"triangles must hold integer vertex indices, got "
                           f"{type(value).__name__} triangles[{_index_text(index)}] = {value!r}")


def _host_triangle_indices(triangles):
    """Numpy arrays, lists and scalars -> int32 tensor, refusing what a cast
    would change: non-integers, and integers outside int32."""
    if isinstance(triangles, (np.ndarray, np.generic)):
        values = np.asarray(triangles)
    else:  # Keeps Python ints exact, where numpy would pick float64 or wrap.
        values = np.asarray(triangles, dtype=object)
    if values.dtype == object:
        _check_integer_objects(values)
    elif values.dtype.kind not in "iu":
        raise _invalid(f"triangles must hold integer vertex indices, got dtype {values.dtype}")
    if values.dtype != np.int32:
        _check_int32_range(values)
    return tf.convert_to_tensor(values.astype(np.int32, copy=False), name="triangles")


def _tensor_triangle_indices(triangles):
    """Integer tensor -> int32 tensor; out-of-range values raise, now when
    eager, through an Assert op in a graph."""
    dtype = triangles.dtype
    if not dtype.is_integer:
        raise _invalid(f"triangles must hold integer vertex indices, got dtype {dtype.name}")
    if dtype == tf.int32:
        return triangles
    if dtype.min >= _INT32.min and dtype.max <= _INT32.max:
        return tf.cast(triangles, tf.int32)
    if tf.executing_eagerly():
        return _host_triangle_indices(triangles.numpy())
    outside = triangles > tf.constant(_INT32.max, dtype)
    if dtype.min < 0:
        outside |= triangles < tf.constant(_INT32.min, dtype)
    bad = tf.where(outside)
    check = tf.debugging.Assert(
        tf.equal(tf.shape(bad)[0], 0),
        ["triangles must fit in int32; first offending index and value are", bad[:1],
         tf.gather_nd(triangles, bad[:1])])
    with tf.control_dependencies([check]):
        return tf.cast(triangles, tf.int32)


def _triangle_indices(triangles):
    """triangles as an int32 tensor. A plain cast would wrap 2^32 to 0 and
    truncate 2.99 to 2, so anything it would change raises
    InvalidArgumentError instead: non-integer dtypes, and integers outside
    int32, named by their first index."""
    if isinstance(triangles, tf.Variable) or tf.is_tensor(triangles):
        return _tensor_triangle_indices(tf.convert_to_tensor(triangles))
    return _host_triangle_indices(triangles)


def _assert_finite(clip_vertices):
    """Raises InvalidArgument naming the first non-finite [batch, vertex].

    Eagerly the check runs now; in a graph it is an Assert op the rasterizer
    depends on. Returns the control dependencies to add.
    """
    finite = tf.reduce_all(tf.math.is_finite(clip_vertices), axis=-1)
    bad = tf.where(tf.logical_not(finite))
    if tf.executing_eagerly():
        if bad.shape[0]:
            batch, vertex = bad[0].numpy()
            values = clip_vertices[batch, vertex].numpy()
            raise _invalid(f"clip_vertices must be finite: clip_vertices[{batch}, {vertex}] = "
                           f"{values} ({bad.shape[0]} non-finite vertices in all)")
        return []
    return [tf.debugging.Assert(
        tf.equal(tf.shape(bad)[0], 0),
        ["clip_vertices must be finite; first non-finite [batch, vertex] is", bad[:1]])]


def rasterize_triangles(clip_vertices, triangles, image_width, image_height,
                        validate=True, name=None):
    """Rasterizes triangles given in clip space.

    Args:
      clip_vertices: [B, V, 4] or [V, 4] float32 clip-space (x, y, z, w).
      triangles: [T, 3] vertex indices, shared by the batch: int32, or any
        integer type whose values fit in int32.
      image_width, image_height: positive ints; batch * height * width * 3
        must be at most 2^31 - 1 (the op refuses larger outputs before
        allocating them).
      validate: check that every vertex is finite (a triangle with a
        non-finite vertex otherwise silently covers nothing).
      name: op name scope.

    Returns:
      (barycentrics [B, H, W, 3] float32 perspective-correct, (0, 0, 0) where
      empty; triangle_ids [B, H, W] int32, -1 where empty; z_buffer [B, H, W]
      float32 NDC depth, 1 where empty). Bottom-up. For [V, 4] input the
      leading B axis is dropped. Differentiable w.r.t. clip_vertices through
      the barycentrics.

    Raises:
      InvalidArgumentError: bad ranks or sizes, an image too large for the
        op, non-integer or out-of-range indices, non-finite vertices
        (validate=True).
    """
    _check_image_size(image_width, image_height)
    with tf.name_scope(name or "rasterize_triangles"):
        clip_vertices = tf.convert_to_tensor(clip_vertices, tf.float32, name="clip_vertices")
        triangles = _triangle_indices(triangles)
        rank = clip_vertices.shape.rank
        if rank not in (2, 3) or clip_vertices.shape[-1] not in (4, None):
            raise _invalid(
                f"clip_vertices must have shape [B, V, 4] or [V, 4], got {clip_vertices.shape}")
        if triangles.shape.rank != 2 or triangles.shape[-1] not in (3, None):
            raise _invalid(f"triangles must have shape [T, 3], got {triangles.shape}")
        batched = clip_vertices if rank == 3 else clip_vertices[tf.newaxis]
        checks = _assert_finite(batched) if validate else []
        with tf.control_dependencies(checks):
            outputs = load_ops().rasterize_triangles(
                batched, triangles, image_width=image_width, image_height=image_height)
        if rank == 2:
            outputs = [output[0] for output in outputs]
        return tuple(outputs)


@tf.RegisterGradient("RasterizeTriangles")
def _rasterize_triangles_grad(op, d_barycentrics, d_triangle_ids, d_z_buffer):
    """Only the barycentrics carry a gradient; ids and depth do not."""
    del d_triangle_ids, d_z_buffer
    if d_barycentrics is None:
        d_barycentrics = tf.zeros_like(op.outputs[0])
    d_clip_vertices = load_ops().rasterize_triangles_grad(
        op.inputs[0], op.inputs[1], op.outputs[0], op.outputs[1], d_barycentrics,
        image_width=op.get_attr("image_width"), image_height=op.get_attr("image_height"))
    return [d_clip_vertices, None]


def interpolate(attributes, triangles, barycentrics, triangle_ids):
    """Blends per-vertex attributes with per-pixel barycentrics.

    Args:
      attributes: [B, V, A] per-vertex values.
      triangles: [T, 3] integer indices that fit in int32.
      barycentrics: [B, H, W, 3] from rasterize_triangles.
      triangle_ids: [B, H, W] from rasterize_triangles (-1 = empty).

    Returns:
      [B, H, W, A]: the interpolated attributes, 0 where empty.
    """
    triangles = _triangle_indices(triangles)
    corners = tf.gather(triangles, tf.maximum(triangle_ids, 0))  # [B, H, W, 3]
    values = tf.gather(attributes, corners, batch_dims=1)  # [B, H, W, 3, A]
    return tf.reduce_sum(barycentrics[..., tf.newaxis] * values, axis=-2)


def rasterize(world_vertices, attributes, triangles, camera_matrices,
              image_width, image_height, background_value, validate=True,
              name=None):
    """Renders per-vertex attributes with perspective-correct interpolation.

    The batched counterpart of the original wrapper (MGCNET_REFERENCE.md
    §6.2): one op call for the whole batch instead of a Python loop.

    Args:
      world_vertices: [B, V, 3] float32 vertices.
      attributes: [B, V, A] float32 per-vertex attributes.
      triangles: [T, 3] integer indices that fit in int32.
      camera_matrices: [B, 4, 4] projection @ view matrices (column vectors).
      image_width, image_height: positive ints.
      background_value: [A] value of empty pixels.
      validate: see rasterize_triangles.
      name: op name scope.

    Returns:
      (image [B, H, W, A], alpha [B, H, W, 1] = 1 where covered else 0,
      triangle_ids [B, H, W] int32, -1 where empty). Bottom-up.
    """
    with tf.name_scope(name or "rasterize"):
        attributes = tf.convert_to_tensor(attributes, tf.float32, name="attributes")
        triangles = _triangle_indices(triangles)
        if attributes.shape.rank != 3:
            raise _invalid(f"attributes must have shape [B, V, A], got {attributes.shape}")
        clip_vertices = transform_homogeneous(camera_matrices, world_vertices)
        barycentrics, triangle_ids, _ = rasterize_triangles(
            clip_vertices, triangles, image_width, image_height, validate=validate)
        image = interpolate(attributes, triangles, barycentrics, triangle_ids)
        # The original's clip(2 * sum(barycentrics), 0, 1): 1 exactly where covered.
        alpha = tf.cast(triangle_ids >= 0, tf.float32)[..., tf.newaxis]
        background = tf.reshape(tf.convert_to_tensor(background_value, tf.float32), [-1])
        image = alpha * image + (1.0 - alpha) * background
        return image, alpha, triangle_ids
