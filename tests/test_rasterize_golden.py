"""Scenes A-E of shared/spec/GOLDEN_SCENES.md against tf_mesh_renderer's
golden renders. Both tolerances are upstream's: the "Python" one (at most
0.1 % of pixels off by more than 0.01 in a channel) absorbs the one-level
uint8 differences of float rounding; the "C++" one is exact equality of
trunc(255 * barycentric) and holds because our arithmetic is the reference
formula's, in float32."""
import numpy as np
import pytest

from conftest import as_uint8, load_golden, outlier_fraction
from mgc.geometry import look_at, perspective
from mgc.render import rasterize

W, H = 640, 480
SIMPLE = np.array([[-0.5, -0.5, 0.8, 1.0], [0.0, 0.5, 0.3, 1.0], [0.5, -0.5, 0.3, 1.0]], np.float32)
ONE_TRIANGLE = np.array([[0, 1, 2]], np.int32)
PYTHON_TOLERANCE = 0.001


def with_alpha(barycentrics):
    return np.concatenate([barycentrics, np.ones_like(barycentrics[..., :1])], axis=-1)


def test_scene_a_simple_triangle(backend):
    barycentrics, ids, _ = backend(SIMPLE, ONE_TRIANGLE, W, H)
    golden = load_golden("Simple_Triangle.png")
    assert outlier_fraction(with_alpha(barycentrics), golden) <= PYTHON_TOLERANCE
    np.testing.assert_array_equal(as_uint8(barycentrics), golden[..., :3])
    assert 0 < np.sum(ids == 0) < W * H and set(np.unique(ids)) == {-1, 0}


def test_scene_b_perspective_corrected_triangle(backend):
    w = np.array([[0.2], [0.5], [2.0]], np.float32)
    barycentrics, _, _ = backend(SIMPLE * w, ONE_TRIANGLE, W, H)
    golden = load_golden("Perspective_Corrected_Triangle.png")
    assert outlier_fraction(with_alpha(barycentrics), golden) <= PYTHON_TOLERANCE


def test_scene_c_external_triangle(backend):
    clip = np.array([[-0.5, -0.5, 0.0, 1.0], [0.0, -0.5, 0.0, -1.0], [0.5, -0.5, 0.0, 1.0]],
                    np.float32)
    barycentrics, _, _ = backend(clip, ONE_TRIANGLE, W, H)
    np.testing.assert_array_equal(as_uint8(barycentrics), load_golden("External_Triangle.png"))


def test_scene_d_tetrahedron(backend):
    clip = np.concatenate([SIMPLE, [[0.0, 0.0, 0.0, 1.0]]]).astype(np.float32)
    triangles = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]], np.int32)
    barycentrics, ids, _ = backend(clip, triangles, W, H)
    np.testing.assert_array_equal(as_uint8(barycentrics), load_golden("Simple_Tetrahedron.png"))
    # The apex (0, 0, 0) is nearer than the base triangle (z 0.3-0.8): no
    # pixel shows the base, and the three sides are all visible.
    assert set(np.unique(ids)) == {-1, 1, 2, 3}


CUBE_VERTICES = np.array([[-1, -1, 1], [-1, -1, -1], [-1, 1, -1], [-1, 1, 1],
                          [1, -1, 1], [1, -1, -1], [1, 1, -1], [1, 1, 1]], np.float32)
CUBE_TRIANGLES = np.array([[0, 1, 2], [2, 3, 0], [3, 2, 6], [6, 7, 3], [7, 6, 5], [5, 4, 7],
                           [4, 5, 1], [1, 0, 4], [5, 6, 2], [2, 1, 5], [7, 4, 0], [0, 3, 7]],
                          np.int32)


def test_scene_e_two_unlit_cubes_in_one_batch():
    eyes = np.array([[2.0, 3.0, 6.0], [-3.0, 1.0, 6.0]], np.float32)
    view = look_at(eyes, np.zeros_like(eyes), np.tile([[0.0, 1.0, 0.0]], [2, 1]))
    projection = perspective([W / H] * 2, [40.0] * 2, [0.01] * 2, [10.0] * 2)
    colors = np.concatenate([0.5 * CUBE_VERTICES + 0.5, np.ones((8, 1))], axis=1)
    images, alphas, ids = rasterize(
        np.stack([CUBE_VERTICES] * 2), np.stack([colors] * 2).astype(np.float32),
        CUBE_TRIANGLES, projection @ view, W, H, [0.0, 0.0, 0.0, 0.0])
    assert images.shape == (2, H, W, 4) and alphas.shape == (2, H, W, 1) and ids.shape == (2, H, W)
    for index in range(2):
        golden = load_golden(f"Unlit_Cube_{index}.png")
        assert outlier_fraction(images[index].numpy(), golden) <= PYTHON_TOLERANCE
    np.testing.assert_array_equal(alphas.numpy()[..., 0], (ids.numpy() >= 0).astype(np.float32))


@pytest.mark.parametrize("name", ["Simple_Triangle.png", "External_Triangle.png"])
def test_golden_check_detects_a_wrong_orientation(name, backend):
    """The comparison is sensitive: a vertically flipped render fails it."""
    clip = SIMPLE if name == "Simple_Triangle.png" else np.array(
        [[-0.5, -0.5, 0.0, 1.0], [0.0, -0.5, 0.0, -1.0], [0.5, -0.5, 0.0, 1.0]], np.float32)
    barycentrics, _, _ = backend(clip, ONE_TRIANGLE, W, H)
    golden = load_golden(name)
    assert outlier_fraction(with_alpha(barycentrics[::-1])[..., :golden.shape[-1]], golden) > 0.01
