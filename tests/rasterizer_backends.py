"""The rasterizer's backends behind one interface, for the backend test
base (tests/test_rasterize_backends.py), as TensorFlow Graphics' rasterizer
test base and PyTorch3D's Python-vs-CPU-vs-CUDA tests do it:

  numpy_reference  tests/reference_rasterizer.py (per pixel, no shortcuts)
  tf_op_cpu        mgc.render.rasterize_triangles pinned to /CPU:0, its
                   registered gradient through a GradientTape
  core_cpu         the TensorFlow-free C++ core through its C interface
                   (build/rasterize_core/librasterize_core_cpu.so, ctypes)
  core_cpu_scalar  the same core built with -DMGC_RASTERIZE_SCALAR
                   (librasterize_core_cpu_scalar.so): rasterize_math.h's
                   scalar functions, the CUDA kernels' arithmetic, instead
                   of the CPU's SSE2 code
  core_cpu_sse2    the same core built with -DMGC_RASTERIZE_NO_AVX2
                   (librasterize_core_cpu_sse2.so): the SSE2 path, which
                   core_cpu replaces with AVX2 groups of small triangles
                   where the CPU has AVX2
  core_cuda        the TensorFlow-free CUDA core through the same interface
                   (librasterize_core_cuda.so)

A backend takes batched NumPy arrays and returns NumPy arrays:
rasterize(clip [B, V, 4], triangles [T, 3], width, height) ->
(barycentrics [B, H, W, 3], triangle_ids [B, H, W], z_buffer [B, H, W]);
gradient(clip, triangles, width, height, d_barycentrics [B, H, W, 3]) ->
dL/dclip [B, V, 4] at the visibility of its own forward pass. Only
tf_op_cpu imports TensorFlow, and only when used, so the core backends run
on a machine without it. `unavailable()` says why a backend cannot run here
(missing library, no GPU), or None.
"""
import ctypes
import os

import numpy as np

import reference_rasterizer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE_LIBRARY_DIR = os.environ.get("MGC_CORE_LIBRARY_DIR",
                                  os.path.join(REPO_ROOT, "build", "rasterize_core"))


def _as_inputs(clip, triangles):
    clip = np.ascontiguousarray(clip, np.float32)
    triangles = np.ascontiguousarray(np.reshape(triangles, (-1, 3)), np.int32)
    if clip.ndim != 3 or clip.shape[-1] != 4:
        raise ValueError(f"clip must be [B, V, 4], got {clip.shape}")
    return clip, triangles


class NumpyReference:
    name = "numpy_reference"

    def unavailable(self):
        return None

    def rasterize(self, clip, triangles, width, height):
        clip, triangles = _as_inputs(clip, triangles)
        if len(clip) == 0:
            return (np.zeros((0, height, width, 3), np.float32),
                    np.zeros((0, height, width), np.int32), np.zeros((0, height, width), np.float32))
        images = [reference_rasterizer.rasterize(c, triangles, width, height) for c in clip]
        return tuple(np.stack(parts) for parts in zip(*images))

    def gradient(self, clip, triangles, width, height, d_barycentrics):
        clip, triangles = _as_inputs(clip, triangles)
        if len(clip) > 1 and np.all(clip == clip[:1]):  # one scene, many upstream gradients
            barycentrics, ids, _ = (np.broadcast_to(o, (len(clip),) + o.shape[1:])
                                    for o in self.rasterize(clip[:1], triangles, width, height))
        else:
            barycentrics, ids, _ = self.rasterize(clip, triangles, width, height)
        return np.stack([reference_rasterizer.barycentric_gradient(c, triangles, b, i, g)
                         for c, b, i, g in zip(clip, barycentrics, ids, d_barycentrics)]
                        ).astype(np.float32)


class TfOpCpu:
    name = "tf_op_cpu"

    def unavailable(self):
        try:
            from mgc.render.op_loader import load_ops
            load_ops()
        except ImportError as error:  # no TensorFlow, or the op is not built
            return f"TensorFlow op not available: {error}"
        return None

    def rasterize(self, clip, triangles, width, height):
        import tensorflow as tf
        from mgc.render import rasterize_triangles
        clip, triangles = _as_inputs(clip, triangles)
        with tf.device("/CPU:0"):
            outputs = rasterize_triangles(clip, triangles, width, height, validate=False)
        return tuple(t.numpy() for t in outputs)

    def gradient(self, clip, triangles, width, height, d_barycentrics):
        import tensorflow as tf
        from mgc.render import rasterize_triangles
        clip, triangles = _as_inputs(clip, triangles)
        with tf.device("/CPU:0"):
            clip_t = tf.constant(clip)
            with tf.GradientTape() as tape:
                tape.watch(clip_t)
                barycentrics, _, _ = rasterize_triangles(clip_t, triangles, width, height,
                                                         validate=False)
                loss = tf.reduce_sum(barycentrics * d_barycentrics)
            return tape.gradient(loss, clip_t).numpy()


class CoreError(RuntimeError):
    """A call the C interface refused (its message names the problem)."""


class CoreLibrary:
    """The C interface of ops/rasterize_triangles/rasterize_core_c_api.h."""

    def __init__(self, device):
        self.device = device
        self.name = f"core_{device}"  # device: "cpu", "cpu_scalar", "cpu_sse2" or "cuda"
        self._path = os.path.join(CORE_LIBRARY_DIR, f"librasterize_core_{device}.so")
        self._library = None

    def _load(self):
        if self._library is None:
            library = ctypes.CDLL(self._path)
            pointer = ctypes.c_void_p
            for name, extra in (("mgc_core_rasterize", 3), ("mgc_core_rasterize_grad", 4)):
                function = getattr(library, name)
                function.restype = ctypes.c_int
                function.argtypes = ([pointer, pointer, ctypes.c_int64, ctypes.c_int64,
                                      ctypes.c_int64, ctypes.c_int32, ctypes.c_int32]
                                     + [pointer] * extra)
            library.mgc_core_last_error.restype = ctypes.c_char_p
            library.mgc_core_device_count.restype = ctypes.c_int
            self._library = library
        return self._library

    def unavailable(self):
        if not os.path.exists(self._path):
            return f"{self._path} is not built (make core-libs)"
        library = self._load()
        if library.mgc_core_device_count() < 1:
            return (f"no {self.device.upper()} device: "
                    f"{library.mgc_core_last_error().decode()}")
        return None

    def _call(self, function, *arrays):
        pointers = [a.ctypes.data_as(ctypes.c_void_p) if isinstance(a, np.ndarray) else a
                    for a in arrays]
        if function(*pointers) != 0:
            raise CoreError(self._load().mgc_core_last_error().decode())

    def rasterize(self, clip, triangles, width, height):
        clip, triangles = _as_inputs(clip, triangles)
        batch, num_vertices = clip.shape[:2]
        barycentrics = np.empty((batch, height, width, 3), np.float32)
        ids = np.empty((batch, height, width), np.int32)
        z = np.empty((batch, height, width), np.float32)
        self._call(self._load().mgc_core_rasterize, clip, triangles, batch, num_vertices,
                   len(triangles), width, height, barycentrics, ids, z)
        return barycentrics, ids, z

    def gradient(self, clip, triangles, width, height, d_barycentrics,
                 barycentrics=None, ids=None):
        clip, triangles = _as_inputs(clip, triangles)
        if barycentrics is None:
            barycentrics, ids, _ = self.rasterize(clip, triangles, width, height)
        d_barycentrics = np.ascontiguousarray(d_barycentrics, np.float32)
        d_clip = np.empty_like(clip)
        self._call(self._load().mgc_core_rasterize_grad, clip, triangles, clip.shape[0],
                   clip.shape[1], len(triangles), width, height,
                   np.ascontiguousarray(barycentrics, np.float32),
                   np.ascontiguousarray(ids, np.int32), d_barycentrics, d_clip)
        return d_clip


BACKENDS = {backend.name: backend for backend in
            (NumpyReference(), TfOpCpu(), CoreLibrary("cpu"), CoreLibrary("cpu_scalar"),
             CoreLibrary("cpu_sse2"),
             CoreLibrary("cuda"))}
