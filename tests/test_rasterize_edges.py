"""Edge behaviour of the op (DESIGN.md contract): shared edges, image
borders, degenerate and empty input, ties, triangles behind the eye."""
import numpy as np
import pytest
import tensorflow as tf

from mgc.render import rasterize_triangles


def clip_2d(points, z=0.0, w=1.0):
    """Clip vertices [V, 4] from NDC (x, y) points."""
    points = np.asarray(points, np.float32)
    return np.concatenate([points * w, np.full((len(points), 1), z * w),
                           np.full((len(points), 1), w)], axis=1).astype(np.float32)


@pytest.mark.parametrize("triangle", [[0, 1, 2], [0, 2, 1], [1, 3, 2], [1, 2, 3]])
def test_pixel_on_a_shared_edge_is_covered_for_both_windings(triangle, backend):
    # 641 pixels wide: the centre of column 320 is exactly NDC x = 0, the edge
    # shared by the left triangle (0, 1, 2) and the right one (1, 3, 2).
    clip = clip_2d([[-1.0, -1.0], [0.0, -1.0], [0.0, 1.0], [1.0, -1.0]])
    barycentrics, ids, _ = backend(clip, np.array([triangle], np.int32), 641, 10)
    assert ids[5, 320] == 0
    assert barycentrics[5, 320].min() == 0.0  # exactly on the edge
    np.testing.assert_allclose(barycentrics[5, 320].sum(), 1.0, rtol=1e-6)


def test_full_screen_quad_covers_every_corner_pixel(backend):
    clip = clip_2d([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    _, ids, _ = backend(clip, np.array([[0, 1, 2], [0, 2, 3]], np.int32), 64, 48)
    assert np.all(ids >= 0)
    assert {ids[0, 0], ids[0, -1], ids[-1, 0], ids[-1, -1]} <= {0, 1}


@pytest.mark.parametrize("size", [1, 16])
@pytest.mark.parametrize("triangle", [[0, 1, 2], [0, 0, 1]])
def test_degenerate_triangle_covers_nothing(size, triangle, backend):
    # Collinear through the image centre, or two equal corners.
    clip = clip_2d([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    barycentrics, ids, z = backend(clip, np.array([triangle], np.int32), size, size)
    assert np.all(ids == -1) and np.all(z == 1.0) and np.all(barycentrics == 0.0)


def test_no_triangles_gives_an_empty_image():
    for num_vertices in (0, 3):
        clip = np.zeros((2, num_vertices, 4), np.float32)
        barycentrics, ids, z = rasterize_triangles(clip, np.zeros((0, 3), np.int32), 5, 4)
        assert ids.shape == (2, 4, 5) and barycentrics.shape == (2, 4, 5, 3)
        assert np.all(ids.numpy() == -1) and np.all(z.numpy() == 1.0)
        assert np.all(barycentrics.numpy() == 0.0)


def test_empty_batch_gives_empty_outputs():
    barycentrics, ids, z = rasterize_triangles(np.zeros((0, 3, 4), np.float32), [[0, 1, 2]], 5, 4)
    assert barycentrics.shape == (0, 4, 5, 3) and ids.shape == (0, 4, 5) and z.shape == (0, 4, 5)


def test_nearest_depth_wins_whatever_the_order(backend):
    near, far = clip_2d([[-1, -1], [1, -1], [0, 1]], z=-0.5), clip_2d([[-1, -1], [1, -1], [0, 1]], z=0.5)
    for order, nearest_id in (((near, far), 0), ((far, near), 1)):
        _, ids, z = backend(np.concatenate(order), np.array([[0, 1, 2], [3, 4, 5]], np.int32), 8, 8)
        assert ids[4, 4] == nearest_id
        np.testing.assert_allclose(z[4, 4], -0.5, rtol=1e-6)


def test_equal_depth_goes_to_the_later_triangle(backend):
    clip = clip_2d([[-1, -1], [1, -1], [0, 1]], z=0.25)
    triangles = np.array([[0, 1, 2], [1, 2, 0], [2, 0, 1]], np.int32)
    _, ids, _ = backend(clip, triangles, 8, 8)
    covered = ids >= 0
    assert covered.sum() > 10 and np.all(ids[covered] == 2)


def test_triangle_behind_the_eye_or_outside_the_depth_range_covers_nothing(backend):
    behind = clip_2d([[-1, -1], [1, -1], [0, 1]], w=-1.0)
    beyond_far = clip_2d([[-1, -1], [1, -1], [0, 1]], z=1.5)
    for clip in (behind, beyond_far):
        _, ids, _ = backend(clip, np.array([[0, 1, 2]], np.int32), 8, 8)
        assert np.all(ids == -1)


def test_triangle_with_a_non_finite_vertex_covers_nothing_without_validation():
    clip = clip_2d([[-1, -1], [1, -1], [0, 1], [-1, 1]])
    for bad in (np.nan, np.inf):
        broken = clip.copy()
        broken[3, 0] = bad
        _, ids, _ = rasterize_triangles(broken, [[0, 1, 2], [0, 2, 3]], 16, 16, validate=False)
        ids = ids.numpy()
        assert np.all(ids != 1) and np.sum(ids == 0) > 50


def test_unbatched_input_gives_unbatched_outputs_equal_to_batched():
    clip = clip_2d([[-1, -1], [1, -1], [0, 1]])
    single = rasterize_triangles(clip, [[0, 1, 2]], 7, 5)
    batched = rasterize_triangles(clip[np.newaxis], [[0, 1, 2]], 7, 5)
    assert [t.shape.as_list() for t in single] == [[5, 7, 3], [5, 7], [5, 7]]
    for one, many in zip(single, batched):
        np.testing.assert_array_equal(one.numpy(), many.numpy()[0])


def test_batch_elements_are_independent_and_results_repeat_exactly():
    rng = np.random.default_rng(3)
    clip = rng.uniform(-1, 1, (5, 40, 4)).astype(np.float32)
    clip[..., 3] = rng.uniform(0.5, 2.0, (5, 40))
    triangles = rng.integers(0, 40, (60, 3)).astype(np.int32)
    batched = [t.numpy() for t in rasterize_triangles(clip, triangles, 33, 17)]
    again = [t.numpy() for t in rasterize_triangles(clip, triangles, 33, 17)]
    for image in range(5):
        alone = rasterize_triangles(clip[image], triangles, 33, 17)
        for one, many, repeat in zip(alone, batched, again):
            np.testing.assert_array_equal(one.numpy(), many[image])
            np.testing.assert_array_equal(repeat[image], many[image])


def test_works_inside_tf_function_with_unknown_batch():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
    def render(clip):
        return rasterize_triangles(clip, [[0, 1, 2]], 8, 6)

    clip = clip_2d([[-1, -1], [1, -1], [0, 1]])[np.newaxis]
    barycentrics, ids, z = render(clip)
    assert barycentrics.shape == (1, 6, 8, 3) and np.any(ids.numpy() == 0)
