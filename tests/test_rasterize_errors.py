"""Bad input gives InvalidArgumentError naming the problem, from the Python
wrapper and from the raw ops; nothing crashes the process."""
import numpy as np
import pytest
import tensorflow as tf

from mgc.render import interpolate, rasterize, rasterize_triangles
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


# Triangle indices: a cast to int32 would wrap or truncate them silently.

def render_ids(triangles):
    return rasterize_triangles(TRIANGLE, triangles, 8, 6)[1]


@pytest.mark.parametrize("triangles, message", [
    (np.array([[0, 1, 2.99]]), r"integer vertex indices, got dtype float64"),
    (np.array([[0, 1, 2]], np.float32), r"integer vertex indices, got dtype float32"),
    (np.array([[True, True, False]]), r"integer vertex indices, got dtype bool"),
    ([[0, 1, 2.0]], r"integer vertex indices, got float triangles\[0, 2\] = 2.0"),
    ([[0, True, 2]], r"integer vertex indices, got bool triangles\[0, 1\] = True"),
    (tf.constant([[0.0, 1.0, 2.99]]), r"integer vertex indices, got dtype float32"),
    (tf.constant([[0, 1, 2]], tf.float64), r"integer vertex indices, got dtype float64"),
])
def test_non_integer_indices_are_refused(triangles, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        render_ids(triangles)


@pytest.mark.parametrize("triangles, message", [
    (np.array([[0, 1, 2**32]], np.int64), r"triangles\[0, 2\] = 4294967296 does not fit in int32"),
    (np.array([[0, 1, 2], [2**32 + 1, 0, 1]], np.int64), r"triangles\[1, 0\] = 4294967297 does not"),
    (np.array([[0, -2**31 - 1, 2]], np.int64), r"triangles\[0, 1\] = -2147483649 does not"),
    (np.array([[0, 1, 2**32 - 1]], np.uint32), r"triangles\[0, 2\] = 4294967295 does not"),
    (np.array([[0, 2**63, 2]], np.uint64), r"triangles\[0, 1\] = 9223372036854775808 does not"),
    ([[0, 1, 2**32]], r"triangles\[0, 2\] = 4294967296 does not fit in int32"),
    ([[0, 1, 2**63]], r"triangles\[0, 2\] = 9223372036854775808 does not fit"),
    ([[0, 1, 2**70]], r"triangles\[0, 2\] = 1180591620717411303424 does not fit"),
    (tf.constant([[0, 1, 2**32]], tf.int64), r"triangles\[0, 2\] = 4294967296 does not fit"),
    (tf.constant([[0, 1, 2**32]], tf.uint64), r"triangles\[0, 2\] = 4294967296 does not fit"),
])
def test_indices_outside_int32_are_refused(triangles, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        render_ids(triangles)


@pytest.mark.parametrize("triangles", [
    np.array([[0, 1, 2]], np.int64), np.array([[0, 1, 2]], np.uint64),
    np.array([[0, 1, 2]], np.uint8), [[0, 1, 2]], [[np.int64(0), 1, 2]],
    tf.constant([[0, 1, 2]], tf.int64), tf.constant([[0, 1, 2]], tf.uint32),
    tf.Variable([[0, 1, 2]], dtype=tf.int64),
])
def test_wider_integer_indices_that_fit_are_accepted(triangles):
    assert np.array_equal(render_ids(triangles), render_ids(np.array([[0, 1, 2]], np.int32)))


def test_int64_indices_inside_tf_function():
    render = tf.function(lambda t: rasterize_triangles(TRIANGLE, t, 8, 6)[1])
    expected = render_ids(np.array([[0, 1, 2]], np.int32))
    assert np.array_equal(render(tf.constant([[0, 1, 2]], tf.int64)), expected)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must fit in int32.*\[\[0 2\]\].*4294967296"):
        render(tf.constant([[0, 1, 2**32]], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must fit in int32.*\[\[0 1\]\].*-2147483649"):
        render(tf.constant([[0, -2**31 - 1, 2]], tf.int64))


def test_float_tensor_indices_refused_inside_tf_function():
    render = tf.function(lambda t: rasterize_triangles(TRIANGLE, t, 8, 6)[1])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"got dtype float32"):
        render(tf.constant([[0.0, 1.0, 2.0]]))


def test_rasterize_and_interpolate_check_indices_too():
    eye = np.eye(4, dtype=np.float32)[np.newaxis]
    vertices, colors = TRIANGLE[np.newaxis, :, :3], np.ones((1, 3, 2), np.float32)
    for bad, message in ((np.array([[0, 1, 2**32 + 2]]), r"does not fit in int32"),
                         (np.array([[0.0, 1.0, 2.99]]), r"got dtype float64")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            rasterize(vertices, colors, bad, eye, 8, 6, [0.0, 0.0])
        barycentrics, ids, _ = rasterize_triangles(TRIANGLE[np.newaxis], [[0, 1, 2]], 8, 6)
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            interpolate(colors, bad, barycentrics, ids)
    image, _, _ = rasterize(vertices, colors, np.array([[0, 1, 2]], np.int64), eye, 8, 6, [0.0, 0.0])
    assert np.any(image.numpy() == 1.0)


@pytest.mark.parametrize("dtype", [tf.int64, tf.float32, tf.float64, tf.uint32])
def test_raw_op_refuses_tensors_not_int32(dtype):
    """TensorFlow enforces the op's int32 input type for tensors: eagerly as
    InvalidArgumentError, when building a graph as TypeError. (Numpy arrays
    and lists are cast by TensorFlow's conversion before the op sees them,
    wrapping like tf.convert_to_tensor; the wrapper is the checked entry.)"""
    triangles = tf.constant([[0, 1, 2]], dtype)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"expected to be a int32 tensor"):
        raw_rasterize(TRIANGLE[np.newaxis], triangles)
    graph = tf.function(lambda t: raw_rasterize(TRIANGLE[np.newaxis], t))
    with pytest.raises(TypeError, match=r"int32"):
        graph.get_concrete_function(tf.TensorSpec([None, 3], dtype))


# Image sizes: refused before anything image-sized is allocated.

HUGE = r"image of 65536 x 65536 pixels x batch 1 has 12884901888 barycentric values, " \
       r"more than the op supports \(2147483647\)"
# Each image fits, the batch does not (and 4096 of them could never be allocated).
HUGE_BATCH = r"image of 16384 x 16384 pixels x batch 4096 has 3298534883328 barycentric values"


def test_huge_image_is_refused_up_front():
    for call in (rasterize_triangles, raw_rasterize):
        with pytest.raises(tf.errors.InvalidArgumentError, match=HUGE):
            call(TRIANGLE[np.newaxis], np.array([[0, 1, 2]], np.int32), 65536, 65536)
    clip = np.tile(TRIANGLE, [4096, 1, 1])
    for call in (rasterize_triangles, raw_rasterize):
        with pytest.raises(tf.errors.InvalidArgumentError, match=HUGE_BATCH):
            call(clip, np.array([[0, 1, 2]], np.int32), 16384, 16384)


def test_huge_image_without_a_batch_dimension():
    with pytest.raises(tf.errors.InvalidArgumentError, match=HUGE):
        rasterize_triangles(TRIANGLE, [[0, 1, 2]], 65536, 65536)


def test_size_limit_boundary():
    """3 * 715827882 = 2^31 - 2 values fit, one pixel more does not. Empty
    batches keep the outputs empty (one image must fit all the same), and
    the batch of 4096 could not be allocated by the code without the check."""
    empty = np.zeros((0, 3, 4), np.float32)
    barycentrics, _, _ = rasterize_triangles(empty, [[0, 1, 2]], 715827882, 1)
    assert barycentrics.shape == (0, 1, 715827882, 3)
    for call in (rasterize_triangles, raw_rasterize):
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"image of 715827883 x 1 pixels has 2147483649 barycentric"):
            call(empty, np.array([[0, 1, 2]], np.int32), 715827883, 1)
    eye = np.tile(np.eye(4, dtype=np.float32), [4096, 1, 1])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"715827882 x 1 pixels x batch 4096 has 8796093014016 barycentric"):
        rasterize(np.zeros((4096, 3, 3), np.float32), np.ones((4096, 3, 1), np.float32),
                  [[0, 1, 2]], eye, 715827882, 1, [0.0])


def test_huge_image_refused_by_the_shape_function():
    render = tf.function(lambda c: raw_rasterize(c, np.array([[0, 1, 2]], np.int32), 65536, 65536))
    with pytest.raises(ValueError, match=HUGE):
        render.get_concrete_function(tf.TensorSpec([1, 3, 4]))
    per_image = r"image of 65536 x 65536 pixels has 12884901888 barycentric values"
    with pytest.raises(ValueError, match=per_image):
        render.get_concrete_function(tf.TensorSpec([None, 3, 4]))


def test_huge_image_with_unknown_batch_refused_by_the_kernel():
    """The wrapper cannot see a batch unknown when tracing; the kernel does."""
    render = tf.function(lambda c: rasterize_triangles(c, [[0, 1, 2]], 16384, 16384),
                         input_signature=[tf.TensorSpec([None, 3, 4])])
    with pytest.raises(tf.errors.InvalidArgumentError, match=HUGE_BATCH):
        render(np.tile(TRIANGLE, [4096, 1, 1]))


def test_gradient_op_refuses_huge_images_up_front():
    clip = TRIANGLE[np.newaxis]
    triangles = np.array([[0, 1, 2]], np.int32)
    barycentrics, ids, _ = raw_rasterize(clip, triangles)
    with pytest.raises(tf.errors.InvalidArgumentError, match=HUGE):
        load_ops().rasterize_triangles_grad(clip, triangles, barycentrics, ids, barycentrics,
                                            image_width=65536, image_height=65536)


def test_largest_int_attributes_do_not_overflow_the_size_check():
    """(2^31 - 1)^2 * 3 pixels' values overflow int64: still a size error."""
    big = 2**31 - 1
    count = r"13835058042397261827 barycentric values"
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x batch 1 has " + count):
        raw_rasterize(TRIANGLE[np.newaxis], np.array([[0, 1, 2]], np.int32), big, big)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x batch 2 has at least 2\^64"):
        raw_rasterize(np.stack([TRIANGLE] * 2), np.array([[0, 1, 2]], np.int32), big, big)
    render = tf.function(lambda c: raw_rasterize(c, np.array([[0, 1, 2]], np.int32), big, big))
    with pytest.raises(ValueError, match=r"x batch 1 has " + count):
        render.get_concrete_function(tf.TensorSpec([1, 3, 4]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x batch 1 has " + count):
        rasterize_triangles(TRIANGLE, [[0, 1, 2]], big, big)
