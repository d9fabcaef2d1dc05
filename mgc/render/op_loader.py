"""Finds and loads the compiled rasterizer op library.

Looked for, in order: next to this file (built by `pip install
--no-build-isolation -e .` or `make build`), then in Bazel's output tree
(`bazel build //ops/...`), then at $MGC_OPS_LIBRARY.
"""
import functools
import glob
import os

import tensorflow as tf

_LIBRARY = "_rasterize_triangles_ops"
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(os.path.dirname(_PACKAGE_DIR))


def _candidates():
    override = os.environ.get("MGC_OPS_LIBRARY")
    if override:
        yield override
    yield from sorted(glob.glob(os.path.join(_PACKAGE_DIR, _LIBRARY + "*.so")))
    yield os.path.join(_REPO_ROOT, "bazel-bin", "ops", "rasterize_triangles", _LIBRARY + ".so")


@functools.lru_cache(maxsize=None)
def load_ops():
    """Returns the loaded op module (its functions are the raw ops)."""
    tried = []
    for path in _candidates():
        if os.path.exists(path):
            return tf.load_op_library(path)
        tried.append(path)
    raise ImportError(
        "The rasterizer op library is not built. Build it with `make build` "
        "(or `pip install --no-build-isolation -e .`, or "
        "`bazel build //ops/...`). Looked for: " + ", ".join(tried))
