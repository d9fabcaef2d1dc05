"""Times the TensorFlow-free rasterizer cores through their C interface
(build/rasterize_core/, `make core-libs`): the CPU core on one thread and,
where a GPU is found, the CUDA core (kernels only, inputs already on the
device, CUDA events). These are the timings the parity harness used to
print. The cores need no TensorFlow; the face scene is loaded with
experiments.bench_rasterizer's helper, which imports it.

    python -m experiments.bench_rasterizer_cores [--repeats=20]

Scene: the BFM mean face of experiments.bench_rasterizer under MGCNet's
default camera, a dense random upstream gradient. CPU: batch 1 and 8 at
224x224 and 640x480. GPU: batch 1 to 256 at 224x224 and 1024x1024, with the
floor set by the bytes the forward pass must write (barycentrics, ids and
depth, 20 bytes a pixel) at the device's memory bandwidth.
"""
import ctypes
import os
import sys

import numpy as np
from absl import app, flags

from experiments import common_flags

FLAGS = flags.FLAGS
common_flags.use("data_root", "repeats")
DEFAULT_REPEATS = 20
CPU_CONFIGS = [(1, 224, 224), (8, 224, 224), (1, 640, 480), (8, 640, 480)]
GPU_CONFIGS = [(b, s, s) for s in (224, 1024) for b in (1, 8, 32, 128, 256)]
BYTES_WRITTEN_PER_PIXEL = 3 * 4 + 4 + 4
# H100/H200 HBM3(e) bandwidth, for the floor column (bytes / bandwidth).
GPU_BANDWIDTH_BYTES_PER_S = float(os.environ.get("MGC_GPU_BANDWIDTH", 4.8e12))


def _backends():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "tests"))
    from rasterizer_backends import BACKENDS  # noqa: E402  (the tests' ctypes loader)
    return BACKENDS["core_cpu"], BACKENDS["core_cuda"]


def time_core(core, batch, width, height, repeats):
    from experiments.bench_rasterizer import face_clip_vertices
    clip, triangles = face_clip_vertices(width, height)
    clip = np.ascontiguousarray(np.broadcast_to(clip, (batch,) + clip.shape), np.float32)
    triangles = np.ascontiguousarray(triangles, np.int32)
    upstream = np.random.default_rng(0).normal(size=(batch, height, width, 3)).astype(np.float32)
    forward, backward = ctypes.c_double(), ctypes.c_double()
    library = core._load()  # pylint: disable=protected-access
    library.mgc_core_benchmark.restype = ctypes.c_int
    pointer = ctypes.c_void_p
    library.mgc_core_benchmark.argtypes = [pointer, pointer, ctypes.c_int64, ctypes.c_int64,
                                           ctypes.c_int64, ctypes.c_int32, ctypes.c_int32,
                                           pointer, ctypes.c_int32, pointer, pointer]
    status = library.mgc_core_benchmark(
        clip.ctypes.data, triangles.ctypes.data, batch, clip.shape[1], len(triangles), width,
        height, upstream.ctypes.data, repeats, ctypes.byref(forward), ctypes.byref(backward))
    if status != 0:
        raise RuntimeError(library.mgc_core_last_error().decode())
    return forward.value / batch, backward.value / batch


def main(argv):
    del argv
    repeats = common_flags.value_or("repeats", DEFAULT_REPEATS)
    cpu, cuda = _backends()
    reason = cpu.unavailable()
    if reason:
        print(f"CPU core skipped: {reason}")
    else:
        print(f"CPU core, one thread, median of {repeats}, ms per image:")
        print("| image | batch | forward | backward |\n|---|---|---|---|")
        for batch, width, height in CPU_CONFIGS:
            forward, backward = time_core(cpu, batch, width, height, repeats)
            print(f"| {width}x{height} | {batch} | {forward:.3f} | {backward:.3f} |")
    reason = cuda.unavailable()
    if reason:
        print(f"CUDA core skipped: {reason}")
        return
    print(f"\nCUDA core, kernels only, median of {repeats}, ms per image:")
    print("| image | batch | forward | backward | floor (bytes written / bandwidth) |")
    print("|---|---|---|---|---|")
    for batch, width, height in GPU_CONFIGS:
        forward, backward = time_core(cuda, batch, width, height, repeats)
        floor = 1e3 * BYTES_WRITTEN_PER_PIXEL * width * height / GPU_BANDWIDTH_BYTES_PER_S
        print(f"| {width}x{height} | {batch} | {forward:.4f} | {backward:.4f} | {floor:.4f} |")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
