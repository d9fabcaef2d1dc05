"""Times the rasterizer op on a face-sized mesh and writes the tables to
docs/PERFORMANCE.md.

The mesh is the 35,709-vertex / 70,789-triangle BFM front topology with its
mean shape (bfm09_topology/bfm09_front_mean.npz, x100 to millimetres), placed
by MGCNet's default pose and intrinsics (experiments/scenes.py) so that the
face fills about three quarters of the height of a 224x224 image. The
backward pass takes a dense random upstream gradient.

    python -m experiments.bench_rasterizer [--repeats=20] [--write_docs]
        [--upstream_kernels=/path/to/tf_mesh_renderer]

--upstream_kernels (or $MGC_UPSTREAM_KERNELS) names a copy of
google/tf_mesh_renderer (its root or its mesh_renderer/kernels folder) that
the user supplies; its CPU kernels are compiled here against the installed
TensorFlow, under renamed op names so both libraries load in one process, and
timed in the same run, interleaved with ours, as upstream's Python wrapper
calls them (one op per image in a Python loop). Without it the comparison is
skipped with a message; no upstream code is kept in this repository.

Tables: per image, the forward op, forward+backward (the loss and its
gradient included, as a training step sees it), and where the time of
forward+backward goes (forward op, gradient op alone, the rest: TensorFlow's
multiply, sum and their gradients). --repeats defaults to 20; --write_docs
replaces the tables in docs/PERFORMANCE.md.
"""
import os
import subprocess
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from experiments import common_flags, doc_blocks, scenes
from mgc import paths
from mgc.render import rasterize_triangles
from mgc.render.op_loader import load_ops

FLAGS = flags.FLAGS
common_flags.use("data_root", "write_docs", "repeats")
flags.DEFINE_string(
    "upstream_kernels", None, "A copy of google/tf_mesh_renderer (its root or its "
    "mesh_renderer/kernels folder) to compile and time beside ours (default: "
    "$MGC_UPSTREAM_KERNELS; neither: the comparison is skipped).")
DEFAULT_REPEATS = 20

PERFORMANCE_DOC = os.path.join(paths.REPO_ROOT, "docs", "PERFORMANCE.md")
# (batch, width, height)
CONFIGS = [(1, 224, 224), (8, 224, 224), (32, 224, 224), (1, 640, 480), (8, 640, 480)]
UPSTREAM_SOURCES = ("rasterize_triangles_impl.cc", "rasterize_triangles_op.cc",
                    "rasterize_triangles_grad.cc")
UPSTREAM_HEADER = "rasterize_triangles_impl.h"
UPSTREAM_PREFIX = "Upstream"  # RasterizeTriangles -> UpstreamRasterizeTriangles


def face_clip_vertices(width, height):
    """Clip-space vertices [V, 4] and triangles of the BFM mean face."""
    vertices, triangles = scenes.bfm_mean_face(FLAGS.data_root)
    camera = scenes.default_camera_matrix(width, height)
    clip = np.concatenate([vertices, np.ones_like(vertices[:, :1])], axis=1) @ camera.T
    return clip.astype(np.float32), triangles


def upstream_kernel_dir(path):
    """The folder holding upstream's kernel sources under `path`, or an
    error message naming what is missing."""
    for folder in (path, os.path.join(path, "mesh_renderer", "kernels")):
        if all(os.path.isfile(os.path.join(folder, name))
               for name in UPSTREAM_SOURCES + (UPSTREAM_HEADER,)):
            return folder, None
    return None, (f"{path} holds no tf_mesh_renderer kernels ({', '.join(UPSTREAM_SOURCES)} "
                  f"in it or in mesh_renderer/kernels/)")


def build_upstream_ops(path):
    """Compiles upstream's CPU kernels from `path` with TensorFlow's flags,
    the op names prefixed so they do not clash with ours. Returns (module,
    None) or (None, why not)."""
    folder, problem = upstream_kernel_dir(path)
    if problem:
        return None, problem
    # Under build/ (ignored by git): a build output, rebuilt on every run.
    work = os.path.join(paths.REPO_ROOT, "build", "upstream_rasterizer")
    os.makedirs(work, exist_ok=True)
    for name in UPSTREAM_SOURCES + (UPSTREAM_HEADER,):
        with open(os.path.join(folder, name)) as stream:
            text = stream.read()
        with open(os.path.join(work, name), "w") as stream:
            stream.write(text.replace('"RasterizeTriangles', f'"{UPSTREAM_PREFIX}RasterizeTriangles'))
    library = os.path.join(work, "upstream_rasterizer.so")
    # -O2 as upstream's Bazel opt build; TensorFlow's own ABI and include flags.
    # Upstream's rasterize_triangles_impl.cc calls std::floor and std::ceil
    # without including <cmath>, which GCC 12's <algorithm> no longer brings.
    command = (["g++", "-shared", "-fPIC", "-O2", "-DNDEBUG", "-include", "cmath",
                "-Wno-deprecated-declarations",
                "-Wno-interference-size", *tf.sysconfig.get_compile_flags()]
               + [os.path.join(work, name) for name in UPSTREAM_SOURCES]
               + ["-o", library, *tf.sysconfig.get_link_flags()])
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        return None, f"compiling {folder} failed:\n{result.stderr[-2000:]}"
    return tf.load_op_library(library), None


def register_upstream_gradient(module):
    @tf.RegisterGradient(f"{UPSTREAM_PREFIX}RasterizeTriangles")
    def _gradient(op, d_barycentrics, d_ids, d_z):
        del d_ids, d_z
        return [module.upstream_rasterize_triangles_grad(
            op.inputs[0], op.inputs[1], op.outputs[0], op.outputs[1], d_barycentrics,
            image_width=op.get_attr("image_width"),
            image_height=op.get_attr("image_height")), None]


def upstream_rasterize(module, clip, triangles, width, height):
    """Upstream's wrapper: one op per image, stacked."""
    outputs = [module.upstream_rasterize_triangles(clip[b], triangles, image_width=width,
                                                   image_height=height)
               for b in range(clip.shape[0])]
    return tuple(tf.stack(parts) for parts in zip(*outputs))


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_functions(rasterizer, clip, triangles, upstream):
    """(forward, forward_backward) tf.functions that return NumPy-ready
    tensors; the loss is sum(barycentrics * upstream)."""
    @tf.function
    def forward():
        return rasterizer(clip, triangles)[0]

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            tape.watch(clip)
            loss = tf.reduce_sum(rasterizer(clip, triangles)[0] * upstream)
        return tape.gradient(loss, clip)

    return forward, forward_backward


def time_config(batch, width, height, repeats, upstream_module=None):
    clip, triangles = face_clip_vertices(width, height)
    clip = tf.constant(np.broadcast_to(clip, (batch,) + clip.shape).copy())
    triangles = tf.constant(triangles)
    upstream = tf.constant(np.random.default_rng(0).normal(
        size=(batch, height, width, 3)).astype(np.float32))
    ours = lambda c, t: rasterize_triangles(c, t, width, height, validate=False)  # noqa: E731
    barycentrics, ids, _ = ours(clip, triangles)

    @tf.function
    def gradient_op():
        return load_ops().rasterize_triangles_grad(clip, triangles, barycentrics, ids, upstream,
                                                   image_width=width, image_height=height)

    forward, forward_backward = step_functions(ours, clip, triangles, upstream)
    runs = {"forward": forward, "forward_backward": forward_backward,
            "gradient_op": gradient_op}
    if upstream_module is not None:
        theirs = lambda c, t: upstream_rasterize(upstream_module, c, t, width, height)  # noqa: E731
        up_forward, up_both = step_functions(theirs, clip, triangles, upstream)
        runs.update(upstream_forward=up_forward, upstream_forward_backward=up_both)
    for fn in runs.values():
        fn().numpy()  # trace and warm up
    times = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, so load changes hit all alike
        for name, fn in runs.items():
            times[name].append(timed(lambda: fn().numpy()))
    row = {name: 1e3 * float(np.median(values)) / batch for name, values in times.items()}
    row.update(batch=batch, size=f"{width}x{height}", coverage=float(np.mean(ids.numpy() >= 0)),
               triangles_per_s=int(triangles.shape[0]) / (row["forward"] / 1e3))
    return row


def table(rows):
    lines = ["| image | batch | face pixels | forward ms/image | forward+backward ms/image "
             "| triangles/s (forward) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['batch']} | {100 * r['coverage']:.0f} % "
                     f"| {r['forward']:.3f} | {r['forward_backward']:.3f} "
                     f"| {r['triangles_per_s'] / 1e6:.1f} M |")
    return "\n".join(lines)


def profile_table(rows):
    lines = ["| image | batch | forward op | gradient op alone | rest of forward+backward "
             "(TensorFlow ops) |",
             "|---|---|---|---|---|"]
    for r in rows:
        rest = r["forward_backward"] - r["forward"] - r["gradient_op"]
        lines.append(f"| {r['size']} | {r['batch']} | {r['forward']:.3f} | "
                     f"{r['gradient_op']:.3f} | {rest:.3f} |")
    return "\n".join(lines)


def upstream_table(rows):
    lines = ["| image | batch | upstream forward ms/image | ours | faster by "
             "| upstream forward+backward ms/image | ours | faster by |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['batch']} | {r['upstream_forward']:.3f} | {r['forward']:.3f} "
            f"| {r['upstream_forward'] / r['forward']:.2f}x "
            f"| {r['upstream_forward_backward']:.3f} | {r['forward_backward']:.3f} "
            f"| {r['upstream_forward_backward'] / r['forward_backward']:.2f}x |")
    return "\n".join(lines)


def load_upstream():
    """Upstream's op module, or None after printing why it is skipped."""
    path = FLAGS.upstream_kernels or os.environ.get("MGC_UPSTREAM_KERNELS")
    if not path:
        print("upstream comparison skipped: pass --upstream_kernels=/path/to/tf_mesh_renderer "
              "(or set MGC_UPSTREAM_KERNELS) to time google/tf_mesh_renderer's CPU kernels "
              "in the same run")
        return None
    module, problem = build_upstream_ops(path)
    if problem:
        print(f"upstream comparison skipped: {problem}")
        return None
    register_upstream_gradient(module)
    return module


def main(argv):
    del argv
    repeats = common_flags.value_or("repeats", DEFAULT_REPEATS)
    upstream_module = load_upstream()
    rows = [time_config(b, w, h, repeats, upstream_module) for b, w, h in CONFIGS]
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"RasterizeTriangles, CPU kernel, {threads} threads, 70,789-triangle BFM face, "
          f"median of {repeats}, load average at the end {load}:\n{table(rows)}\n")
    print(f"Where forward+backward goes, ms per image:\n{profile_table(rows)}\n")
    if upstream_module is not None:
        print(f"Against tf_mesh_renderer in the same run:\n{upstream_table(rows)}")
    if FLAGS.write_docs:
        note = (f"\n\nMeasured {time.strftime('%Y-%m-%d')}, {threads} threads, median of "
                f"{repeats}; load average at the end: {load}.")
        doc_blocks.replace_block(PERFORMANCE_DOC, "bench_rasterizer", table(rows) + note)
        doc_blocks.replace_block(PERFORMANCE_DOC, "bench_rasterizer_profile", profile_table(rows))
        if upstream_module is not None:
            doc_blocks.replace_block(PERFORMANCE_DOC, "bench_rasterizer_upstream",
                                     upstream_table(rows))
        print(f"wrote {PERFORMANCE_DOC}")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
