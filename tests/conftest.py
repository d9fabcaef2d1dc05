"""Shared fixtures: the data root, golden images and the rasterizer backends.

Every backend takes clip vertices [V, 4] and triangles [T, 3] and returns
NumPy (barycentrics [H, W, 3], triangle_ids [H, W], z_buffer [H, W]),
bottom-up, so one test body checks them all (TF Graphics' test-base idea).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import parity_inputs  # noqa: E402
import reference_rasterizer  # noqa: E402
from mgc import paths  # noqa: E402

GOLDEN_DIR = "tf_mesh_renderer_golden"


def load_golden(name):
    """Golden PNG as uint8 [H, W, C]; row 0 of the file is row 0 here."""
    return np.asarray(Image.open(paths.data_file(os.path.join(GOLDEN_DIR, name))))


def outlier_fraction(image, golden_uint8, threshold=0.01):
    """tf_mesh_renderer's image tolerance: after clipping to [0, 1], a pixel is
    an outlier when any channel differs from golden / 255 by more than
    `threshold`. Returns the fraction of outlier pixels."""
    difference = np.abs(np.clip(image, 0, 1) - golden_uint8 / 255.0)
    return float(np.mean(np.any(difference > threshold, axis=-1)))


def as_uint8(barycentrics):
    """The C++ golden encoding: trunc(255 * lambda)."""
    return np.trunc(255.0 * barycentrics).astype(np.uint8)


def _op_backend(clip_vertices, triangles, width, height):
    from mgc.render import rasterize_triangles
    return tuple(t.numpy() for t in rasterize_triangles(clip_vertices, triangles, width, height))


BACKENDS = {
    "op_cpu": _op_backend,
    "numpy_reference": reference_rasterizer.rasterize,
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


# The original MGCNet's outputs and their inputs (tests/parity_inputs.py),
# once per session: the h5 alone takes seconds to load.

@pytest.fixture(scope="session")
def oracle():
    return parity_inputs.load_oracle()


@pytest.fixture(scope="session")
def parity_checkpoint(oracle):
    """(prefix of the seeded checkpoint, its 4 input crops uint8)."""
    return parity_inputs.encoder_checkpoint(oracle)


@pytest.fixture(scope="session")
def parity_model(oracle):
    """The synthetic face model in the original's h5 layout, loaded."""
    from mgc.facemodel import load_mgcnet_h5  # TensorFlow: only for the tests that need it
    return load_mgcnet_h5(parity_inputs.synthetic_h5(oracle))
