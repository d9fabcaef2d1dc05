"""What only the TensorFlow op has (the backend test base,
test_rasterize_backends.py, checks the scenes, edges and gradients on every
backend): unbatched input, tf.function with an unknown batch, the
registered gradient inside a graph, calls from several threads at once on
the one intra-op pool, and optimising a mesh through it."""
import threading

import numpy as np
import tensorflow as tf

from mgc.render import interpolate, rasterize_triangles

TRIANGLE = np.array([[-1, -1, 0, 1], [1, -1, 0, 1], [0, 1, 0, 1]], np.float32)


def test_unbatched_input_gives_unbatched_outputs_equal_to_batched():
    single = rasterize_triangles(TRIANGLE, [[0, 1, 2]], 7, 5)
    batched = rasterize_triangles(TRIANGLE[np.newaxis], [[0, 1, 2]], 7, 5)
    assert [t.shape.as_list() for t in single] == [[5, 7, 3], [5, 7], [5, 7]]
    for one, many in zip(single, batched):
        np.testing.assert_array_equal(one.numpy(), many.numpy()[0])


def test_works_inside_tf_function_with_unknown_batch():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
    def render(clip):
        return rasterize_triangles(clip, [[0, 1, 2]], 8, 6)

    barycentrics, ids, _ = render(TRIANGLE[np.newaxis])
    assert barycentrics.shape == (1, 6, 8, 3) and np.any(ids.numpy() == 0)


def test_gradient_in_a_graph_equals_the_eager_gradient():
    rng = np.random.default_rng(4)
    clip = tf.constant(TRIANGLE * rng.uniform(0.8, 1.2, (3, 1)).astype(np.float32))
    upstream = tf.constant(rng.normal(size=(9, 11, 3)).astype(np.float32))

    def gradient(clip):
        with tf.GradientTape() as tape:
            tape.watch(clip)
            loss = tf.reduce_sum(rasterize_triangles(clip, [[0, 1, 2]], 11, 9)[0] * upstream)
        return tape.gradient(loss, clip)

    eager = gradient(clip).numpy()
    assert np.abs(eager).max() > 0.1
    np.testing.assert_array_equal(tf.function(gradient)(clip).numpy(), eager)


def test_calls_from_several_threads_at_once_repeat_the_serial_results():
    # The op's passes share TensorFlow's intra-op pool through the core's
    # SharedCounterFor; calls that overlap must not mix up their work.
    points, triangles, _ = grid_mesh(30)
    rng = np.random.default_rng(7)

    def scene(batch):
        w = rng.uniform(1.0, 2.0, (batch, len(points), 1)).astype(np.float32)
        z = rng.uniform(-0.5, 0.5, (batch, len(points), 1)).astype(np.float32)
        return np.concatenate([points[np.newaxis].repeat(batch, 0) * w, z * w, w], axis=-1)

    def run(clip):
        clip = tf.constant(clip)
        upstream = tf.constant(np.sin(np.arange(clip.shape[0] * 40 * 48 * 3)).reshape(
            clip.shape[0], 40, 48, 3).astype(np.float32))
        with tf.GradientTape() as tape:
            tape.watch(clip)
            barycentrics, ids, z = rasterize_triangles(clip, triangles, 48, 40)
            loss = tf.reduce_sum(barycentrics * upstream)
        return [barycentrics.numpy(), ids.numpy(), z.numpy(), tape.gradient(loss, clip).numpy()]

    scenes = [scene(batch) for batch in (1, 3, 1, 2, 5, 1)]
    serial = [run(clip) for clip in scenes]
    assert all((ids >= 0).mean() > 0.3 for _, ids, _, _ in serial)
    results = [[] for _ in scenes]

    def worker(i):
        for _ in range(3):
            results[i].append(run(scenes[i]))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(scenes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for expected, repeats in zip(serial, results):
        assert len(repeats) == 3
        for got in repeats:
            for a, b in zip(expected, got):
                np.testing.assert_array_equal(b, a)


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
