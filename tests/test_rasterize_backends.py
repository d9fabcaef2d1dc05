"""One test base for every rasterizer backend (tests/rasterizer_backends.py:
the NumPy reference, the TensorFlow op on the CPU, the TensorFlow-free C++
core (its SSE2 build and its scalar build, whose arithmetic is the CUDA
kernels') and the TensorFlow-free CUDA core, the last three through their C
interface): tf_mesh_renderer's golden scenes A-E (shared/spec/
GOLDEN_SCENES.md), the edge and tie cases of the DESIGN.md contract, the
comparison with the NumPy reference on random scenes, and the gradient
checks. A backend that cannot run here (no GPU, library not built) skips
with the reason. Nothing here imports TensorFlow unless tf_op_cpu runs.

Tolerances, stated once:
- Golden images: upstream's "Python" rule (at most GOLDEN_OUTLIER_FRACTION of
  the pixels differ from golden / 255 by more than GOLDEN_CHANNEL_THRESHOLD
  in a channel; it absorbs the one-level uint8 differences of float
  rounding) and its "C++" rule, exact equality of trunc(255 * barycentric),
  which holds because every backend evaluates upstream's barycentric
  formula in float32.
- Reference comparison: the same float32 formula, so ids and depths must be
  equal and barycentrics within REFERENCE_BARYCENTRIC_ATOL; only pixels on an
  edge (smallest barycentric below EDGE) or at a depth tie may differ, at
  most MAX_REFERENCE_MISMATCHES over the four scenes (in practice none).
- Gradients against the float64 reference: GRADIENT_RTOL relative, plus
  GRADIENT_ATOL_FRACTION of the largest entry (float32 sums over hundreds of
  pixels).
- Jacobians (upstream's checks, central differences of the backend's own
  forward pass against its gradient): with upstream's step 4e-2 an entry is
  an outlier when |numerical - analytic| / numerical > JACOBIAN_RELATIVE_ERROR
  (the division signed, as upstream wrote it); that step moves a vertex by half a pixel of
  the 28x21 cube image, so pixels near edges change triangle, hence
  CUBE_JACOBIAN_OUTLIERS. With a small step the strict two-sided rule
  |numerical - analytic| > JACOBIAN_RELATIVE_ERROR |numerical| + 1e-6, at
  most STRICT_JACOBIAN_OUTLIERS.
- CPU against CUDA: both run rasterize_math.h without FMA contraction, so ids
  and depths are identical and barycentrics within CPU_CUDA_BARYCENTRIC_ATOL
  (a margin); gradients differ only in summation order (atomicAdd), within
  CPU_CUDA_GRADIENT_RTOL of the largest entry.
"""
import os

import numpy as np
import pytest

from conftest import as_uint8, load_golden, outlier_fraction
from rasterizer_backends import BACKENDS

GOLDEN_OUTLIER_FRACTION = 0.001
GOLDEN_CHANNEL_THRESHOLD = 0.01
REFERENCE_BARYCENTRIC_ATOL = 1e-5
EDGE = 1e-5
MAX_REFERENCE_MISMATCHES = 3
GRADIENT_RTOL = 1e-3
GRADIENT_ATOL_FRACTION = 1e-4
JACOBIAN_RELATIVE_ERROR = 0.01
CUBE_JACOBIAN_OUTLIERS = 0.01
STRICT_JACOBIAN_OUTLIERS = 0.005
CPU_CUDA_BARYCENTRIC_ATOL = 1e-6
CPU_CUDA_GRADIENT_RTOL = 1e-5

W, H = 640, 480
SIMPLE = np.array([[-0.5, -0.5, 0.8, 1.0], [0.0, 0.5, 0.3, 1.0], [0.5, -0.5, 0.3, 1.0]], np.float32)
EXTERNAL = np.array([[-0.5, -0.5, 0.0, 1.0], [0.0, -0.5, 0.0, -1.0], [0.5, -0.5, 0.0, 1.0]],
                    np.float32)
ONE_TRIANGLE = np.array([[0, 1, 2]], np.int32)
CUBE_VERTICES = np.array([[-1, -1, 1], [-1, -1, -1], [-1, 1, -1], [-1, 1, 1],
                          [1, -1, 1], [1, -1, -1], [1, 1, -1], [1, 1, 1]], np.float32)
CUBE_TRIANGLES = np.array([[0, 1, 2], [2, 3, 0], [3, 2, 6], [6, 7, 3], [7, 6, 5], [5, 4, 7],
                           [4, 5, 1], [1, 0, 4], [5, 6, 2], [2, 1, 5], [7, 4, 0], [0, 3, 7]],
                          np.int32)
CUBE_CLIP = np.array([
    [-0.43889722, -0.53184521, 0.85293502, 1.0], [-0.37635487, 0.22206162, 0.90555805, 1.0],
    [-0.22849123, 0.76811147, 0.80993629, 1.0], [-0.2805393, -0.14092168, 0.71602166, 1.0],
    [0.18631913, -0.62634289, 0.88603103, 1.0], [0.16183566, 0.08129397, 0.93020856, 1.0],
    [0.44147962, 0.53497446, 0.85076219, 1.0], [0.53008741, -0.31276882, 0.77620775, 1.0]],
    np.float32)


@pytest.fixture(params=sorted(BACKENDS), scope="module")
def backend(request):
    chosen = BACKENDS[request.param]
    reason = chosen.unavailable()
    if reason:
        pytest.skip(reason)
    return chosen


def render(backend, clip, triangles, width, height):
    """One image ([V, 4] clip) or a batch ([B, V, 4]) through the backend."""
    clip = np.asarray(clip, np.float32)
    outputs = backend.rasterize(clip if clip.ndim == 3 else clip[np.newaxis],
                                np.asarray(triangles, np.int32), width, height)
    return outputs if clip.ndim == 3 else tuple(output[0] for output in outputs)


def clip_2d(points, z=0.0, w=1.0):
    """Clip vertices [V, 4] from NDC (x, y) points."""
    points = np.asarray(points, np.float32)
    return np.concatenate([points * w, np.full((len(points), 1), z * w),
                           np.full((len(points), 1), w)], axis=1).astype(np.float32)


def with_alpha(barycentrics):
    return np.concatenate([barycentrics, np.ones_like(barycentrics[..., :1])], axis=-1)


def golden_outliers(image, name):
    return outlier_fraction(image, load_golden(name), GOLDEN_CHANNEL_THRESHOLD)


# Golden scenes.

def test_scene_a_simple_triangle(backend):
    barycentrics, ids, _ = render(backend, SIMPLE, ONE_TRIANGLE, W, H)
    assert golden_outliers(with_alpha(barycentrics), "Simple_Triangle.png") <= \
        GOLDEN_OUTLIER_FRACTION
    np.testing.assert_array_equal(as_uint8(barycentrics), load_golden("Simple_Triangle.png")[..., :3])
    assert 0 < np.sum(ids == 0) < W * H and set(np.unique(ids)) == {-1, 0}


def test_scene_b_perspective_corrected_triangle(backend):
    w = np.array([[0.2], [0.5], [2.0]], np.float32)
    barycentrics, _, _ = render(backend, SIMPLE * w, ONE_TRIANGLE, W, H)
    assert golden_outliers(with_alpha(barycentrics), "Perspective_Corrected_Triangle.png") <= \
        GOLDEN_OUTLIER_FRACTION


def test_scene_c_external_triangle(backend):
    barycentrics, _, _ = render(backend, EXTERNAL, ONE_TRIANGLE, W, H)
    np.testing.assert_array_equal(as_uint8(barycentrics), load_golden("External_Triangle.png"))


def test_scene_d_tetrahedron(backend):
    clip = np.concatenate([SIMPLE, [[0.0, 0.0, 0.0, 1.0]]]).astype(np.float32)
    triangles = np.array([[0, 2, 1], [0, 1, 3], [1, 2, 3], [2, 0, 3]], np.int32)
    barycentrics, ids, _ = render(backend, clip, triangles, W, H)
    np.testing.assert_array_equal(as_uint8(barycentrics), load_golden("Simple_Tetrahedron.png"))
    # The apex (0, 0, 0) is nearer than the base triangle (z 0.3-0.8): no
    # pixel shows the base, and the three sides are all visible.
    assert set(np.unique(ids)) == {-1, 1, 2, 3}


def perspective(aspect, fov_y_degrees, near, far):
    """gluPerspective."""
    f = 1.0 / np.tan(np.radians(fov_y_degrees) / 2.0)
    return np.array([[f / aspect, 0, 0, 0], [0, f, 0, 0],
                     [0, 0, (far + near) / (near - far), 2 * far * near / (near - far)],
                     [0, 0, -1, 0]])


def look_at(eye, center, up):
    """gluLookAt."""
    forward = (center - eye) / np.linalg.norm(center - eye)
    side = np.cross(forward, up)
    side /= np.linalg.norm(side)
    rotation = np.stack([side, np.cross(side, forward), -forward])
    return np.block([[rotation, -(rotation @ eye)[:, None]], [np.zeros((1, 3)), np.ones((1, 1))]])


def test_scene_e_two_unlit_cubes_in_one_batch(backend):
    projection = perspective(W / H, 40.0, 0.01, 10.0)
    eyes = np.array([[2.0, 3.0, 6.0], [-3.0, 1.0, 6.0]])
    homogeneous = np.concatenate([CUBE_VERTICES, np.ones((8, 1))], axis=1)
    clip = np.stack([homogeneous @ (projection @ look_at(eye, np.zeros(3), np.array([0, 1, 0]))).T
                     for eye in eyes]).astype(np.float32)
    barycentrics, ids, _ = render(backend, clip, CUBE_TRIANGLES, W, H)
    colors = np.concatenate([0.5 * CUBE_VERTICES + 0.5, np.ones((8, 1))], axis=1)
    corners = colors[CUBE_TRIANGLES[np.maximum(ids, 0)]]  # [B, H, W, 3, 4]
    images = np.sum(barycentrics[..., np.newaxis] * corners, axis=-2) * (ids >= 0)[..., None]
    for index in range(2):
        assert golden_outliers(images[index], f"Unlit_Cube_{index}.png") <= GOLDEN_OUTLIER_FRACTION


def test_png_reader_matches_pillow():
    """tests/png_file.py, used for the golden images where pillow is missing."""
    image_module = pytest.importorskip("PIL.Image")
    import png_file
    from mgc import paths
    for name in ("External_Triangle.png", "Perspective_Corrected_Triangle.png"):
        path = paths.data_file(os.path.join("tf_mesh_renderer_golden", name))
        np.testing.assert_array_equal(png_file.read_png(path), np.asarray(image_module.open(path)))


@pytest.mark.parametrize("name, clip", [("Simple_Triangle.png", SIMPLE),
                                        ("External_Triangle.png", EXTERNAL)])
def test_golden_check_detects_a_wrong_orientation(name, clip):
    """The comparison is sensitive: a vertically flipped render fails it."""
    barycentrics, _, _ = render(BACKENDS["numpy_reference"], clip, ONE_TRIANGLE, W, H)
    golden = load_golden(name)
    assert outlier_fraction(with_alpha(barycentrics[::-1])[..., :golden.shape[-1]], golden) > 0.01


# Edges and ties (DESIGN.md contract).

@pytest.mark.parametrize("triangle", [[0, 1, 2], [0, 2, 1], [1, 3, 2], [1, 2, 3]])
def test_pixel_on_a_shared_edge_is_covered_for_both_windings(triangle, backend):
    # 641 pixels wide: the centre of column 320 is exactly NDC x = 0, the edge
    # shared by the left triangle (0, 1, 2) and the right one (1, 3, 2).
    clip = clip_2d([[-1.0, -1.0], [0.0, -1.0], [0.0, 1.0], [1.0, -1.0]])
    barycentrics, ids, _ = render(backend, clip, [triangle], 641, 10)
    assert ids[5, 320] == 0
    assert barycentrics[5, 320].min() == 0.0  # exactly on the edge
    np.testing.assert_allclose(barycentrics[5, 320].sum(), 1.0, rtol=1e-6)


def test_full_screen_quad_covers_every_corner_pixel(backend):
    clip = clip_2d([[-1, -1], [1, -1], [1, 1], [-1, 1]])
    _, ids, _ = render(backend, clip, [[0, 1, 2], [0, 2, 3]], 64, 48)
    assert np.all(ids >= 0)
    assert {ids[0, 0], ids[0, -1], ids[-1, 0], ids[-1, -1]} <= {0, 1}


@pytest.mark.parametrize("size", [1, 16])
@pytest.mark.parametrize("triangle", [[0, 1, 2], [0, 0, 1]])
def test_degenerate_triangle_covers_nothing(size, triangle, backend):
    # Collinear through the image centre, or two equal corners.
    clip = clip_2d([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    barycentrics, ids, z = render(backend, clip, [triangle], size, size)
    assert np.all(ids == -1) and np.all(z == 1.0) and np.all(barycentrics == 0.0)


def test_no_triangles_or_no_images_give_empty_outputs(backend):
    for num_vertices in (0, 3):
        barycentrics, ids, z = render(backend, np.zeros((2, num_vertices, 4)),
                                      np.zeros((0, 3), np.int32), 5, 4)
        assert ids.shape == (2, 4, 5) and barycentrics.shape == (2, 4, 5, 3)
        assert np.all(ids == -1) and np.all(z == 1.0) and np.all(barycentrics == 0.0)
    outputs = render(backend, np.zeros((0, 3, 4)), ONE_TRIANGLE, 5, 4)
    assert [o.shape for o in outputs] == [(0, 4, 5, 3), (0, 4, 5), (0, 4, 5)]


def test_nearest_depth_wins_whatever_the_order(backend):
    near = clip_2d([[-1, -1], [1, -1], [0, 1]], z=-0.5)
    far = clip_2d([[-1, -1], [1, -1], [0, 1]], z=0.5)
    for order, nearest_id in (((near, far), 0), ((far, near), 1)):
        _, ids, z = render(backend, np.concatenate(order), [[0, 1, 2], [3, 4, 5]], 8, 8)
        assert ids[4, 4] == nearest_id
        np.testing.assert_allclose(z[4, 4], -0.5, rtol=1e-6)


def test_equal_depth_goes_to_the_later_triangle(backend):
    clip = clip_2d([[-1, -1], [1, -1], [0, 1]], z=0.25)
    _, ids, _ = render(backend, clip, [[0, 1, 2], [1, 2, 0], [2, 0, 1]], 8, 8)
    covered = ids >= 0
    assert covered.sum() > 10 and np.all(ids[covered] == 2)


def test_triangle_behind_the_eye_or_outside_the_depth_range_covers_nothing(backend):
    for clip in (clip_2d([[-1, -1], [1, -1], [0, 1]], w=-1.0),
                 clip_2d([[-1, -1], [1, -1], [0, 1]], z=1.5)):
        _, ids, _ = render(backend, clip, ONE_TRIANGLE, 8, 8)
        assert np.all(ids == -1)


def test_triangle_with_a_non_finite_vertex_covers_nothing(backend):
    clip = clip_2d([[-1, -1], [1, -1], [0, 1], [-1, 1]])
    for bad in (np.nan, np.inf):
        broken = clip.copy()
        broken[3, 0] = bad
        _, ids, _ = render(backend, broken, [[0, 1, 2], [0, 2, 3]], 16, 16)
        assert np.all(ids != 1) and np.sum(ids == 0) > 50


def random_scene(seed, batch=2, num_vertices=60, num_triangles=80):
    """Triangles over and beyond the image, a few vertices behind the eye."""
    rng = np.random.default_rng(seed)
    clip = rng.uniform(-1.2, 1.2, (batch, num_vertices, 4)).astype(np.float32)
    w = rng.uniform(0.3, 3.0, (batch, num_vertices)).astype(np.float32)
    w[:, :3] *= -1
    clip[..., :3] *= w[..., np.newaxis]
    clip[..., 3] = w
    return clip, rng.integers(0, num_vertices, (num_triangles, 3)).astype(np.int32)


def test_batch_elements_are_independent_and_results_repeat_exactly(backend):
    clip, triangles = random_scene(3, batch=3)
    batched = render(backend, clip, triangles, 33, 17)
    again = render(backend, clip, triangles, 33, 17)
    for image in range(3):
        alone = render(backend, clip[image], triangles, 33, 17)
        for one, many, repeat in zip(alone, batched, again):
            np.testing.assert_array_equal(one, many[image])
            np.testing.assert_array_equal(repeat[image], many[image])


# The NumPy reference.

def not_the_reference(backend):
    if backend.name == "numpy_reference":
        pytest.skip("the reference itself")


def ambiguous(barycentrics, depth, other_depth):
    """Pixels where a result lies on an edge or the depths tie."""
    return (barycentrics.min(-1) < EDGE) | np.isclose(depth, other_depth, rtol=0, atol=1e-7)


def test_matches_the_numpy_reference_on_random_scenes(backend):
    not_the_reference(backend)
    reference = BACKENDS["numpy_reference"]
    width, height = 71, 53
    mismatches = 0
    for seed in range(4):
        clip, triangles = random_scene(seed)
        ours = render(backend, clip, triangles, width, height)
        theirs = render(reference, clip, triangles, width, height)
        for (b, ids, z), (ref_b, ref_ids, ref_z) in zip(zip(*ours), zip(*theirs)):
            assert np.sum(ref_ids >= 0) > 0.2 * width * height  # not an empty scene
            mismatch = ((ids != ref_ids) | (z != ref_z)
                        | (np.abs(b - ref_b).max(-1) > REFERENCE_BARYCENTRIC_ATOL))
            explained = ambiguous(b, z, ref_z) | ambiguous(ref_b, ref_z, z)
            assert not np.any(mismatch & ~explained), np.argwhere(mismatch & ~explained)[:5]
            mismatches += int(mismatch.sum())
    assert mismatches <= MAX_REFERENCE_MISMATCHES


# Gradients.

def test_gradient_matches_the_float64_reference(backend):
    not_the_reference(backend)
    rng = np.random.default_rng(7)
    clip = rng.uniform(-1, 1, (2, 40, 4)).astype(np.float32)
    clip[..., 3] = rng.uniform(0.5, 2.0, (2, 40))
    clip[..., :3] *= clip[..., 3:]
    triangles = rng.integers(0, 40, (50, 3)).astype(np.int32)
    upstream = rng.normal(size=(2, 30, 40, 3)).astype(np.float32)
    analytic = backend.gradient(clip, triangles, 40, 30, upstream)
    expected = BACKENDS["numpy_reference"].gradient(clip, triangles, 40, 30, upstream)
    assert np.all(analytic[..., 2] == 0.0)
    assert np.abs(expected).max() > 1.0
    np.testing.assert_allclose(analytic, expected, rtol=GRADIENT_RTOL,
                               atol=GRADIENT_ATOL_FRACTION * np.abs(expected).max())


def jacobians(backend, clip, triangles, width, height, delta, outputs=None):
    """(analytic, numerical) Jacobians [inputs, outputs] of the flat
    barycentrics (or the flat indices `outputs` of them) w.r.t. the flat
    clip vertices; each in one batched call. Analytic rows of pixels the
    forward pass leaves empty are 0 by the op's definition, not computed."""
    num_inputs = clip.size
    steps = delta * np.eye(num_inputs, dtype=np.float32).reshape((num_inputs,) + clip.shape)
    plus = backend.rasterize(clip + steps, triangles, width, height)[0].reshape(num_inputs, -1)
    minus = backend.rasterize(clip - steps, triangles, width, height)[0].reshape(num_inputs, -1)
    barycentrics, ids, _ = backend.rasterize(clip[np.newaxis], triangles, width, height)
    outputs = np.arange(barycentrics.size) if outputs is None else np.asarray(outputs)
    covered = outputs[np.repeat(ids.reshape(-1) >= 0, 3)[outputs]]
    one_hot = np.zeros((len(covered), barycentrics.size), np.float32)
    one_hot[np.arange(len(covered)), covered] = 1.0
    rows = backend.gradient(np.broadcast_to(clip, (len(covered),) + clip.shape), triangles,
                            width, height, one_hot.reshape((-1,) + barycentrics.shape[1:]))
    analytic = np.zeros((num_inputs, len(outputs)), np.float32)
    analytic[:, np.isin(outputs, covered)] = rows.reshape(len(covered), num_inputs).T
    numerical = (plus[:, outputs] - minus[:, outputs]) / (2 * delta)
    assert np.abs(analytic).max() > 0.1  # the check is not vacuous
    return analytic, numerical


def upstream_outliers(analytic, numerical):
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.mean(np.abs(numerical - analytic) / numerical > JACOBIAN_RELATIVE_ERROR))


def strict_outliers(analytic, numerical):
    return float(np.mean(np.abs(analytic - numerical)
                         > JACOBIAN_RELATIVE_ERROR * np.abs(numerical) + 1e-6))


def test_jacobian_of_one_pixel_of_the_simple_triangle(backend):
    pixel = 3 * (245 * W + 325)
    analytic, numerical = jacobians(backend, SIMPLE, ONE_TRIANGLE, W, H, delta=4e-2,
                                    outputs=[pixel, pixel + 1, pixel + 2])
    assert upstream_outliers(analytic, numerical) == 0.0
    assert strict_outliers(analytic, numerical) == 0.0


def test_jacobian_of_the_cube_image(backend):
    analytic, numerical = jacobians(backend, CUBE_CLIP, CUBE_TRIANGLES, 28, 21, delta=4e-2)
    assert upstream_outliers(analytic, numerical) <= CUBE_JACOBIAN_OUTLIERS
    analytic, numerical = jacobians(backend, CUBE_CLIP, CUBE_TRIANGLES, 28, 21, delta=2e-3)
    assert strict_outliers(analytic, numerical) <= STRICT_JACOBIAN_OUTLIERS


def test_gradient_is_zero_where_nothing_is_drawn(backend):
    behind = SIMPLE * np.array([[1, 1, 1, -1]], np.float32)
    d_clip = backend.gradient(behind[np.newaxis], ONE_TRIANGLE, 16, 16,
                              np.ones((1, 16, 16, 3), np.float32))
    np.testing.assert_array_equal(d_clip, 0.0)


# CPU against CUDA, on the scenes of the former parity harness.

def soup_scene():
    """3 images, 300 random triangles: some crossing the eye plane, some
    degenerate, front triangles drawn three times (an exact later copy must
    win the depth tie; a copy with rotated corners may differ in the last
    bit)."""
    clip, triangles = random_scene(11, batch=3, num_vertices=200, num_triangles=300)
    front = clip_2d([[-0.6, -0.6], [0.6, -0.5], [0.0, 0.7]], z=-0.9)
    clip[:, :3] = front
    triangles[3::25, 2] = triangles[3::25, 1]
    triangles[[5, 290, 299]] = [[0, 1, 2], [1, 2, 0], [0, 1, 2]]
    return clip, triangles


def grid_scene():
    """4 images of 224 x 224, a perturbed 120 x 120 vertex grid, varying w."""
    rng = np.random.default_rng(2)
    u, v = np.meshgrid(np.linspace(-0.95, 0.95, 120), np.linspace(-0.95, 0.95, 120))
    index = np.arange(120 * 120).reshape(120, 120)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    triangles = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3),
                                np.stack([a, d, c], -1).reshape(-1, 3)]).astype(np.int32)
    clips = []
    for image in range(4):
        x = u.ravel() + rng.uniform(-0.004, 0.004, u.size)
        y = v.ravel() + rng.uniform(-0.004, 0.004, v.size)
        z = 0.5 * np.sin(3 * x + image) * np.cos(2 * y)
        w = 1.0 + 0.25 * image + 0.2 * x
        clips.append(np.stack([x * w, y * w, z * w, w], axis=1))
    return np.stack(clips).astype(np.float32), triangles


@pytest.mark.parametrize("scene, width, height", [(soup_scene, 97, 61), (grid_scene, 224, 224)])
def test_cuda_core_matches_cpu_core(scene, width, height):
    cpu, cuda = BACKENDS["core_cpu"], BACKENDS["core_cuda"]
    for candidate in (cpu, cuda):
        reason = candidate.unavailable()
        if reason:
            pytest.skip(reason)
    clip, triangles = scene()
    cpu_b, cpu_ids, cpu_z = cpu.rasterize(clip, triangles, width, height)
    gpu_b, gpu_ids, gpu_z = cuda.rasterize(clip, triangles, width, height)
    assert np.mean(cpu_ids >= 0) > 0.2
    np.testing.assert_array_equal(gpu_ids, cpu_ids)
    np.testing.assert_array_equal(gpu_z.view(np.int32), cpu_z.view(np.int32))
    np.testing.assert_allclose(gpu_b, cpu_b, rtol=0, atol=CPU_CUDA_BARYCENTRIC_ATOL)
    upstream = np.random.default_rng(5).normal(size=cpu_b.shape).astype(np.float32)
    cpu_d = cpu.gradient(clip, triangles, width, height, upstream, cpu_b, cpu_ids)
    gpu_d = cuda.gradient(clip, triangles, width, height, upstream, gpu_b, gpu_ids)
    np.testing.assert_allclose(gpu_d, cpu_d, rtol=0,
                               atol=CPU_CUDA_GRADIENT_RTOL * max(1.0, np.abs(cpu_d).max()))


def tied_grid_scene():
    """grid_scene with every triangle drawn twice: every covered pixel is a
    depth tie, which the copy (the later triangle) wins."""
    clip, triangles = grid_scene()
    return clip, np.concatenate([triangles, triangles])


@pytest.mark.parametrize("name", ["core_cpu", "core_cpu_sse2", "tf_op_cpu"])
@pytest.mark.parametrize("scene, width, height", [(soup_scene, 97, 61), (grid_scene, 224, 224),
                                                  (grid_scene, 640, 480),
                                                  (tied_grid_scene, 224, 224)])
def test_cpu_paths_give_the_scalar_builds_bits(name, scene, width, height):
    """The CPU kernel's SSE2 and AVX2 paths (the AVX2 one draws small
    triangles in groups, out of order) and the op's row blocks (batch 1 on
    several threads) give exactly the outputs of the scalar build."""
    scalar, candidate = BACKENDS["core_cpu_scalar"], BACKENDS[name]
    for backend in (scalar, candidate):
        reason = backend.unavailable()
        if reason:
            pytest.skip(reason)
    clip, triangles = scene()
    for images in (clip, clip[:1]):
        expected = scalar.rasterize(images, triangles, width, height)
        got = candidate.rasterize(images, triangles, width, height)
        assert np.mean(expected[1] >= 0) > 0.2
        if scene is tied_grid_scene:
            assert np.all(got[1][got[1] >= 0] >= len(triangles) // 2)
        for want, have in zip(expected, got):
            np.testing.assert_array_equal(np.asarray(have).view(np.int32),
                                          np.asarray(want).view(np.int32))
