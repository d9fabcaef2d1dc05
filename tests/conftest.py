"""Shared fixtures and helpers: the data root, golden images and their
tolerance. The rasterizer's backends and their test base are in
tests/rasterizer_backends.py and tests/test_rasterize_backends.py.
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import parity_inputs  # noqa: E402
from mgc import paths  # noqa: E402

GOLDEN_DIR = "tf_mesh_renderer_golden"


def load_golden(name):
    """Golden PNG as uint8 [H, W, C]; row 0 of the file is row 0 here. With
    pillow, or without it (tests/png_file.py) on a machine that has only
    numpy and pytest."""
    path = paths.data_file(os.path.join(GOLDEN_DIR, name))
    try:
        from PIL import Image
    except ImportError:
        import png_file
        return png_file.read_png(path)
    return np.asarray(Image.open(path))


def outlier_fraction(image, golden_uint8, threshold=0.01):
    """tf_mesh_renderer's image tolerance: after clipping to [0, 1], a pixel is
    an outlier when any channel differs from golden / 255 by more than
    `threshold`. Returns the fraction of outlier pixels."""
    difference = np.abs(np.clip(image, 0, 1) - golden_uint8 / 255.0)
    return float(np.mean(np.any(difference > threshold, axis=-1)))


def as_uint8(barycentrics):
    """The C++ golden encoding: trunc(255 * lambda)."""
    return np.trunc(255.0 * barycentrics).astype(np.uint8)


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
