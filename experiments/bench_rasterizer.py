"""Times the rasterizer op on a face-sized mesh and writes the table to
docs/PERFORMANCE.md.

The mesh is the 35,709-vertex / 70,789-triangle BFM front topology with its
mean shape (bfm09_topology/bfm09_front_mean.npz, x100 to millimetres), placed
by MGCNet's default pose and intrinsics (experiments/scenes.py) so that the
face fills about three quarters of the height of a 224x224 image. The
backward pass takes a dense random upstream gradient.

    python -m experiments.bench_rasterizer [--repeats=20] [--write_docs]

--repeats defaults to 20 here; --write_docs replaces the table in
docs/PERFORMANCE.md.
"""
import os
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from experiments import common_flags, doc_blocks, scenes
from mgc import paths
from mgc.render import rasterize_triangles

FLAGS = flags.FLAGS
common_flags.use("data_root", "write_docs", "repeats")
DEFAULT_REPEATS = 20

PERFORMANCE_DOC = os.path.join(paths.REPO_ROOT, "docs", "PERFORMANCE.md")
# (batch, width, height)
CONFIGS = [(1, 224, 224), (8, 224, 224), (32, 224, 224), (1, 640, 480), (8, 640, 480)]


def face_clip_vertices(width, height):
    """Clip-space vertices [V, 4] and triangles of the BFM mean face."""
    vertices, triangles = scenes.bfm_mean_face(FLAGS.data_root)
    camera = scenes.default_camera_matrix(width, height)
    clip = np.concatenate([vertices, np.ones_like(vertices[:, :1])], axis=1) @ camera.T
    return clip.astype(np.float32), triangles


def median_seconds(fn, repeats):
    fn()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def time_config(batch, width, height, repeats):
    clip, triangles = face_clip_vertices(width, height)
    clip = tf.constant(np.broadcast_to(clip, (batch,) + clip.shape).copy())
    triangles = tf.constant(triangles)
    upstream = tf.constant(np.random.default_rng(0).normal(
        size=(batch, height, width, 3)).astype(np.float32))

    @tf.function
    def forward():
        return rasterize_triangles(clip, triangles, width, height, validate=False)

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(clip)
            barycentrics, _, _ = rasterize_triangles(clip, triangles, width, height,
                                                     validate=False)
            loss = tf.reduce_sum(barycentrics * upstream)
        return tape.gradient(loss, clip)

    coverage = float(np.mean(forward()[1].numpy() >= 0))
    fwd = median_seconds(lambda: forward()[0].numpy(), repeats) / batch
    both = median_seconds(lambda: forward_backward().numpy(), repeats) / batch
    return {"batch": batch, "size": f"{width}x{height}", "coverage": coverage,
            "forward_ms": 1e3 * fwd, "forward_backward_ms": 1e3 * both,
            "triangles_per_s": int(triangles.shape[0]) / fwd}


def table(rows):
    lines = ["| image | batch | face pixels | forward ms/image | forward+backward ms/image "
             "| triangles/s (forward) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['batch']} | {100 * r['coverage']:.0f} % "
                     f"| {r['forward_ms']:.3f} | {r['forward_backward_ms']:.3f} "
                     f"| {r['triangles_per_s'] / 1e6:.1f} M |")
    return "\n".join(lines)


def main(argv):
    del argv
    rows = [time_config(b, w, h, common_flags.value_or("repeats", DEFAULT_REPEATS)) for b, w, h in CONFIGS]
    text = table(rows)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    print(f"RasterizeTriangles, CPU kernel, {threads} threads, "
          f"70,789-triangle BFM face:\n{text}")
    if FLAGS.write_docs:
        doc_blocks.replace_block(PERFORMANCE_DOC, "bench_rasterizer", text)
        print(f"wrote {PERFORMANCE_DOC}")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
