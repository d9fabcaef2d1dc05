"""Gradients of the rasterizer: upstream's Jacobian checks (GOLDEN_SCENES.md),
the analytic gradient against a float64 reference, and an optimisation.

Jacobian tolerances. Upstream's (MGCNET_REFERENCE.md §6.6), used with
upstream's step 4e-2: an entry is an outlier when (numerical - analytic) /
numerical > 0.01, the division signed as upstream wrote it. That step moves a
vertex by half a pixel of the 28x21 cube image, so pixels near edges change
triangle; a second check with a small step uses the strict two-sided rule
|numerical - analytic| > 0.01 |numerical| + 1e-6.
"""
import numpy as np
import pytest
import tensorflow as tf

import reference_rasterizer
from mgc.render import interpolate, rasterize_triangles

SIMPLE = np.array([[-0.5, -0.5, 0.8, 1.0], [0.0, 0.5, 0.3, 1.0], [0.5, -0.5, 0.3, 1.0]], np.float32)
CUBE_CLIP = np.array([
    [-0.43889722, -0.53184521, 0.85293502, 1.0], [-0.37635487, 0.22206162, 0.90555805, 1.0],
    [-0.22849123, 0.76811147, 0.80993629, 1.0], [-0.2805393, -0.14092168, 0.71602166, 1.0],
    [0.18631913, -0.62634289, 0.88603103, 1.0], [0.16183566, 0.08129397, 0.93020856, 1.0],
    [0.44147962, 0.53497446, 0.85076219, 1.0], [0.53008741, -0.31276882, 0.77620775, 1.0]],
    np.float32)
CUBE_TRIANGLES = np.array([[0, 1, 2], [2, 3, 0], [3, 2, 6], [6, 7, 3], [7, 6, 5], [5, 4, 7],
                           [4, 5, 1], [1, 0, 4], [5, 6, 2], [2, 1, 5], [7, 4, 0], [0, 3, 7]],
                          np.int32)


def jacobian_outlier_fraction(fn, x, delta, strict=False):
    (analytic,), (numeric,) = tf.test.compute_gradient(fn, [x], delta=delta)
    assert np.abs(analytic).max() > 0.1  # the check is not vacuous
    if strict:
        outliers = np.abs(analytic - numeric) > 0.01 * np.abs(numeric) + 1e-6
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            outliers = np.abs(numeric - analytic) / numeric > 0.01
    return float(np.mean(outliers))


def maybe_function(fn, use_function):
    return tf.function(fn) if use_function else fn


@pytest.mark.parametrize("use_function", [False, True], ids=["eager", "tf_function"])
def test_jacobian_one_pixel_of_the_simple_triangle(use_function):
    def pixel(clip):
        barycentrics, _, _ = rasterize_triangles(clip, [[0, 1, 2]], 640, 480)
        return barycentrics[245, 325]

    for strict in (False, True):
        fraction = jacobian_outlier_fraction(maybe_function(pixel, use_function),
                                             tf.constant(SIMPLE), delta=4e-2, strict=strict)
        assert fraction == 0.0


@pytest.mark.parametrize("use_function", [False, True], ids=["eager", "tf_function"])
def test_jacobian_of_the_cube_image(use_function):
    def image(clip):
        barycentrics, _, _ = rasterize_triangles(clip, CUBE_TRIANGLES, 28, 21)
        return barycentrics

    fraction = jacobian_outlier_fraction(maybe_function(image, use_function),
                                         tf.constant(CUBE_CLIP), delta=4e-2)
    assert fraction <= 0.01


def test_jacobian_of_the_cube_image_with_a_small_step_and_strict_rule():
    def image(clip):
        barycentrics, _, _ = rasterize_triangles(clip, CUBE_TRIANGLES, 28, 21)
        return barycentrics

    fraction = jacobian_outlier_fraction(image, tf.constant(CUBE_CLIP), delta=2e-3, strict=True)
    assert fraction <= 0.005


def test_analytic_gradient_matches_float64_reference():
    rng = np.random.default_rng(7)
    clip = rng.uniform(-1, 1, (40, 4)).astype(np.float32)
    clip[:, 3] = rng.uniform(0.5, 2.0, 40)
    clip[:, :3] *= clip[:, 3:]
    triangles = rng.integers(0, 40, (50, 3)).astype(np.int32)
    upstream = rng.normal(size=(30, 40, 3)).astype(np.float32)
    clip_t = tf.constant(clip)
    with tf.GradientTape() as tape:
        tape.watch(clip_t)
        barycentrics, ids, _ = rasterize_triangles(clip_t, triangles, 40, 30)
        loss = tf.reduce_sum(barycentrics * upstream)
    analytic = tape.gradient(loss, clip_t).numpy()
    expected = reference_rasterizer.barycentric_gradient(
        clip, triangles, barycentrics.numpy(), ids.numpy(), upstream)
    assert np.all(analytic[:, 2] == 0.0)
    np.testing.assert_allclose(analytic, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_gradient_is_zero_where_nothing_is_drawn():
    clip = tf.constant(SIMPLE * np.array([[1, 1, 1, -1]], np.float32))  # behind the eye
    with tf.GradientTape() as tape:
        tape.watch(clip)
        barycentrics, _, _ = rasterize_triangles(clip, [[0, 1, 2]], 16, 16)
        loss = tf.reduce_sum(barycentrics)
    np.testing.assert_array_equal(tape.gradient(loss, clip).numpy(), 0.0)


def grid_mesh(n):
    """An n x n vertex grid over NDC [-0.8, 0.8]^2 and its triangles."""
    u, v = np.meshgrid(np.linspace(-0.8, 0.8, n), np.linspace(-0.8, 0.8, n))
    points = np.stack([u.ravel(), v.ravel()], axis=1).astype(np.float32)
    index = np.arange(n * n).reshape(n, n)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    triangles = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3),
                                np.stack([a, d, c], -1).reshape(-1, 3)]).astype(np.int32)
    border = (np.abs(points) > 0.79).any(axis=1)
    return points, triangles, border


def test_optimisation_moves_vertices_to_match_a_target_attribute_image():
    points, triangles, border = grid_mesh(6)
    rng = np.random.default_rng(1)
    attributes = rng.uniform(0, 1, (1, len(points), 3)).astype(np.float32)
    offsets = np.where(border[:, None], 0.0, rng.uniform(-0.06, 0.06, points.shape))
    size = 48

    def render(xy):
        clip = tf.concat([xy, tf.zeros_like(xy[:, :1]), tf.ones_like(xy[:, :1])], axis=1)
        barycentrics, ids, _ = rasterize_triangles(clip[tf.newaxis], triangles, size, size)
        return interpolate(attributes, triangles, barycentrics, ids)[0]

    target = render(tf.constant(points + offsets, tf.float32))
    interior = tf.constant(~border[:, None], tf.float32)  # the silhouette stays fixed
    xy = tf.Variable(points)
    optimizer = tf.keras.optimizers.Adam(learning_rate=0.005)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(render(xy) - target))
        gradient = tape.gradient(loss, xy) * interior
        optimizer.apply_gradients([(gradient, xy)])
        return loss

    first = float(step())
    for _ in range(150):
        last = float(step())
    error_before = np.abs(offsets).max()
    error_after = np.abs(xy.numpy() - (points + offsets)).max()
    assert last < 0.05 * first
    assert error_after < 0.3 * error_before
