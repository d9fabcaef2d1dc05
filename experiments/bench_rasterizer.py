"""Times the rasterizer op on a face-sized mesh and writes the table to
docs/PERFORMANCE.md.

The mesh is the 35,709-vertex / 70,789-triangle BFM front topology with its
mean shape (bfm09_topology/bfm09_front_mean.npz, x100 to millimetres), placed
by MGCNet's default pose and intrinsics (f = 4700, 224x224, near 3000, far
7000) so that the face fills about three quarters of the image height. The
backward pass takes a dense random upstream gradient.

    python -m experiments.bench_rasterizer [--repeats=20] [--write_docs]
"""
import os
import re
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from mgc import paths
from mgc.render import rasterize_triangles

FLAGS = flags.FLAGS
flags.DEFINE_string("data_root", None, "Data root (default: $MGC_DATA or ../shared/data).")
flags.DEFINE_integer("repeats", 20, "Timed repetitions per configuration (median reported).")
flags.DEFINE_bool("write_docs", False, "Replace the table in docs/PERFORMANCE.md.")

PERFORMANCE_DOC = os.path.join(paths.REPO_ROOT, "docs", "PERFORMANCE.md")
# (batch, width, height)
CONFIGS = [(1, 224, 224), (8, 224, 224), (32, 224, 224), (1, 640, 480), (8, 640, 480)]
# MGCNet's default pose (rz, ry, rx, tx, ty, tz) and frustum (MGCNET_REFERENCE.md §3.2-3.3).
DEFAULT_POSE = (0.0, 0.0, 3.141593, 0.17440447, 9.1053238, 4994.3359)
FOCAL, CENTER, NEAR, FAR = 4700.0, 112.0, 3000.0, 7000.0


def face_clip_vertices(width, height):
    """Clip-space vertices [V, 4] and triangles of the BFM mean face."""
    model = np.load(paths.data_file("bfm09_topology/bfm09_front_mean.npz", FLAGS.data_root))
    vertices = model["meanshape"].astype(np.float64) * 100.0  # millimetres
    rz, ry, rx, tx, ty, tz = DEFAULT_POSE
    c, s = np.cos, np.sin
    rot_x = np.array([[1, 0, 0], [0, c(rx), -s(rx)], [0, s(rx), c(rx)]])
    rot_y = np.array([[c(ry), 0, s(ry)], [0, 1, 0], [-s(ry), 0, c(ry)]])
    rot_z = np.array([[c(rz), -s(rz), 0], [s(rz), c(rz), 0], [0, 0, 1]])
    camera = vertices @ (rot_x @ rot_y @ rot_z).T + [tx, ty, tz]  # OpenCV camera
    camera = camera * [1, -1, -1]  # OpenGL camera
    # Same focal length in pixels; a wider image shows more around the face.
    frustum = np.array([
        [2 * FOCAL / width, 0, 0, 0],
        [0, 2 * FOCAL / height, 0, 0],
        [0, 0, -(FAR + NEAR) / (FAR - NEAR), -2 * FAR * NEAR / (FAR - NEAR)],
        [0, 0, -1, 0]])
    clip = np.concatenate([camera, np.ones_like(camera[:, :1])], 1) @ frustum.T
    return clip.astype(np.float32), model["triangles"].astype(np.int32)


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


def write_docs(text):
    begin, end = "<!-- bench_rasterizer:begin -->", "<!-- bench_rasterizer:end -->"
    with open(PERFORMANCE_DOC) as f:
        doc = f.read()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(doc):
        raise ValueError(f"{PERFORMANCE_DOC} has no {begin} ... {end} block")
    with open(PERFORMANCE_DOC, "w") as f:
        f.write(pattern.sub(lambda _: f"{begin}\n{text}\n{end}", doc))


def main(argv):
    del argv
    rows = [time_config(b, w, h, FLAGS.repeats) for b, w, h in CONFIGS]
    text = table(rows)
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    print(f"RasterizeTriangles, CPU kernel, {threads} threads, "
          f"70,789-triangle BFM face:\n{text}")
    if FLAGS.write_docs:
        write_docs(text)
        print(f"wrote {PERFORMANCE_DOC}")


if __name__ == "__main__":
    app.run(main)
