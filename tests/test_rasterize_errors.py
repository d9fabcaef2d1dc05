"""Bad input gives InvalidArgumentError naming the problem, from the Python
wrapper and from the raw ops; nothing crashes the process."""
import numpy as np
import pytest
import tensorflow as tf

from mgc.render import rasterize, rasterize_triangles
from mgc.render.op_loader import load_ops

TRIANGLE = np.array([[-0.5, -0.5, 0.5, 1.0], [0.0, 0.5, 0.5, 1.0], [0.5, -0.5, 0.5, 1.0]], np.float32)


def raw_rasterize(clip, triangles, width=8, height=6):
    return load_ops().rasterize_triangles(clip, triangles, image_width=width, image_height=height)


@pytest.mark.parametrize("call", [rasterize_triangles, raw_rasterize], ids=["wrapper", "raw_op"])
@pytest.mark.parametrize("clip, triangles, message", [
    (np.zeros((2, 3, 4, 4), np.float32), [[0, 1, 2]], r"clip_vertices must have shape"),
    (np.zeros((1, 3, 3), np.float32), [[0, 1, 2]], r"clip_vertices must have shape"),
    (TRIANGLE[np.newaxis], [0, 1, 2], r"triangles must have shape \[T, 3\]"),
    (TRIANGLE[np.newaxis], [[0, 1, 2, 0]], r"triangles must have shape \[T, 3\]"),
    (TRIANGLE[np.newaxis], [[0, 1, 3]], r"triangles\[0, 2\] = 3 is not a vertex index in \[0, 3\)"),
    (TRIANGLE[np.newaxis], [[0, 1, 2], [0, -1, 2]], r"triangles\[1, 1\] = -1 is not a vertex index"),
])
def test_bad_shapes_and_indices(call, clip, triangles, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(clip, np.asarray(triangles, np.int32), 8, 6)


def test_rank_one_vertices_in_the_raw_op():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"clip_vertices must have shape"):
        raw_rasterize(np.zeros((4,), np.float32), np.zeros((0, 3), np.int32))


@pytest.mark.parametrize("width, height", [(0, 6), (8, 0), (-3, 6), (8, -1)])
def test_non_positive_image_size(width, height):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_width and image_height must be positive|must be a positive int"):
        rasterize_triangles(TRIANGLE, [[0, 1, 2]], width, height)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be positive"):
        raw_rasterize(TRIANGLE[np.newaxis], np.array([[0, 1, 2]], np.int32), width, height)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vertex_is_named(bad):
    clip = np.stack([TRIANGLE, TRIANGLE])
    clip[1, 2, 3] = bad
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be finite: clip_vertices\[1, 2\]"):
        rasterize_triangles(clip, [[0, 1, 2]], 8, 6)


def test_non_finite_vertex_is_named_inside_tf_function():
    render = tf.function(lambda clip: rasterize_triangles(clip, [[0, 1, 2]], 8, 6))
    clip = TRIANGLE.copy()
    clip[1, 0] = np.nan
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must be finite.*\[\[0 1\]\]"):
        render(clip)


def test_gradient_op_checks_its_inputs():
    ops = load_ops()
    clip = TRIANGLE[np.newaxis]
    triangles = np.array([[0, 1, 2]], np.int32)
    barycentrics, ids, _ = raw_rasterize(clip, triangles)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"barycentrics and d_barycentrics must have shape"):
        ops.rasterize_triangles_grad(clip, triangles, barycentrics, ids, barycentrics[:, :3],
                                     image_width=8, image_height=6)
    bad_ids = tf.fill(ids.shape, 7)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"triangle_ids holds 7"):
        ops.rasterize_triangles_grad(clip, triangles, barycentrics, bad_ids, barycentrics,
                                     image_width=8, image_height=6)


def test_rasterize_checks_attributes_rank():
    eye = np.eye(4, dtype=np.float32)[np.newaxis]
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"attributes must have shape"):
        rasterize(TRIANGLE[np.newaxis, :, :3], np.ones((3, 2), np.float32), [[0, 1, 2]], eye,
                  8, 6, [0.0, 0.0])


def test_process_survives_and_op_still_works_after_errors():
    with pytest.raises(tf.errors.InvalidArgumentError):
        raw_rasterize(TRIANGLE[np.newaxis], np.array([[0, 1, 1000000]], np.int32))
    _, ids, _ = rasterize_triangles(TRIANGLE, [[0, 1, 2]], 8, 6)
    assert np.any(ids.numpy() == 0)
