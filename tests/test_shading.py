"""Shading and the whole renderer: scenes F and G of
shared/spec/GOLDEN_SCENES.md at upstream's Python tolerance, upstream's
whole-renderer Jacobian and cube-rotation checks, and direct unit tests of
phong_shader and tone_mapper.

The Euler angles (-20, 0, 60) are used as radians, as upstream did.
"""
import numpy as np
import pytest
import tensorflow as tf

from conftest import load_golden, outlier_fraction
from mgc.geometry import euler_matrices
from mgc.render import phong_shader, render_mesh, tone_mapper

W, H = 640, 480
PYTHON_TOLERANCE = 0.001
CUBE = np.array([[-1, -1, 1], [-1, -1, -1], [-1, 1, -1], [-1, 1, 1],
                 [1, -1, 1], [1, -1, -1], [1, 1, -1], [1, 1, 1]], np.float32)
CUBE_TRIANGLES = np.array([[0, 1, 2], [2, 3, 0], [3, 2, 6], [6, 7, 3], [7, 6, 5], [5, 4, 7],
                           [4, 5, 1], [1, 0, 4], [5, 6, 2], [2, 1, 5], [7, 4, 0], [0, 3, 7]],
                          np.int32)
ANGLES_0 = [[-20.0, 0.0, 60.0]]
EYE, CENTER, UP = [0.0, 0.0, 6.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]
DIFFUSE_G = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1],
                      [1, 1, 0], [1, 0, 1], [0, 1, 1], [0.5, 0.5, 0.5]], np.float32)
SPECULAR_G = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 1, 0],
                       [1, 0, 1], [0, 1, 1], [0.5, 0.5, 0.5], [1, 0, 0]], np.float32)


def rotated_cube(angles, cube=CUBE):
    """Vertices and normals (normalised positions) rotated by R = Rz Ry Rx;
    [B, 8, 3] each, B = len(angles)."""
    rotations = euler_matrices(angles)[:, :3, :3]
    batch = tf.shape(rotations)[0]
    vertices = tf.broadcast_to(cube, [batch, 8, 3])
    normals = tf.math.l2_normalize(vertices, axis=-1)
    return (tf.matmul(vertices, rotations, transpose_b=True),
            tf.matmul(normals, rotations, transpose_b=True))


def render_gray_cube(angles, width=W, height=H, cube=CUBE):
    """Scene F: white cube, one unit light at the eye, no specular/ambient."""
    vertices, normals = rotated_cube(angles, cube)
    batch = tf.shape(vertices)[0]
    return render_mesh(vertices, CUBE_TRIANGLES, normals, tf.ones_like(vertices), EYE, CENTER,
                       UP, tf.broadcast_to([[EYE]], [batch, 1, 3]), tf.ones([batch, 1, 3]),
                       width, height)


def render_colored_cube(shininess):
    """Scene G before tone mapping, [1, H, W, 4]."""
    vertices, normals = rotated_cube(ANGLES_0)
    return render_mesh(vertices, CUBE_TRIANGLES, normals, DIFFUSE_G[np.newaxis], EYE, CENTER, UP,
                       [[EYE, [1.0, 2.0, 6.0]]], tf.ones([1, 2, 3]), W, H,
                       specular_colors=SPECULAR_G[np.newaxis], shininess_coefficients=shininess,
                       ambient_color=[[0.0, 0.0, 0.0]], fov_y=40.0, near_clip=0.1, far_clip=25.0)


def tone_mapped(render):
    return tf.concat([tone_mapper(render[..., :3], 0.7), render[..., 3:]], axis=-1)


# Golden scenes.

@pytest.mark.parametrize("use_function", [False, True], ids=["eager", "tf_function"])
def test_scene_f_gray_cube(use_function):
    render = tf.function(render_gray_cube) if use_function else render_gray_cube
    image = render(tf.constant(ANGLES_0)).numpy()
    assert image.shape == (1, H, W, 4)
    assert outlier_fraction(image[0], load_golden("Gray_Cube_0.png")) <= PYTHON_TOLERANCE


def test_scene_f_fails_unflipped():
    """The comparison is sensitive: the bottom-up buffer does not match."""
    image = render_gray_cube(ANGLES_0).numpy()[0]
    assert outlier_fraction(image[::-1], load_golden("Gray_Cube_0.png")) > 0.01


def test_scene_g_colored_cube_with_scalar_and_per_vertex_shininess():
    golden = load_golden("Colored_Cube_0.png")
    per_vertex = tone_mapped(render_colored_cube(np.full([1, 8], 6.0, np.float32))).numpy()
    scalar = tone_mapped(render_colored_cube(6.0)).numpy()
    assert outlier_fraction(per_vertex[0], golden) <= PYTHON_TOLERANCE
    assert outlier_fraction(scalar[0], golden) <= PYTHON_TOLERANCE
    np.testing.assert_allclose(scalar, per_vertex, rtol=0, atol=1e-6)


def test_render_mesh_needs_specular_colors_and_shininess_together():
    vertices, normals = rotated_cube(ANGLES_0)
    with pytest.raises(ValueError, match="shininess"):
        render_mesh(vertices, CUBE_TRIANGLES, normals, tf.ones_like(vertices), EYE, CENTER, UP,
                    [[EYE]], [[[1.0, 1.0, 1.0]]], 8, 6, specular_colors=tf.ones_like(vertices))


# Gradients.

def test_whole_renderer_jacobian_wrt_cube_vertices():
    """Upstream's check: d(render at 28x21)/d(model-space cube vertices), the
    normals being the normalised vertices; outlier = (numerical - analytic) /
    numerical > 0.01 (signed division, as upstream and
    the rasterizer backend test base), at most 1 % of the entries."""
    render = tf.function(lambda cube: render_gray_cube(ANGLES_0, 28, 21, cube))
    (analytic,), (numeric,) = tf.test.compute_gradient(render, [tf.constant(CUBE)], delta=1e-3)
    assert np.all(np.isfinite(analytic)) and np.abs(analytic).max() > 0.1
    with np.errstate(divide="ignore", invalid="ignore"):
        outliers = np.abs(numeric - analytic) / numeric > 0.01
    assert np.mean(outliers) <= 0.01


def test_cube_rotates_to_match_a_target_render():
    """Upstream's testThatCubeRotates. Upstream called
    MomentumOptimizer(0.7, 0.1), i.e. learning rate 0.7 and momentum 0.1 (its
    positional arguments); the reverse (0.1, 0.7) barely moves the cube in 35
    steps."""
    target = render_gray_cube(tf.constant(ANGLES_0))[0]
    assert outlier_fraction(target.numpy(), load_golden("Gray_Cube_0.png")) <= PYTHON_TOLERANCE
    angles = tf.Variable([[0.0, 0.0, 0.0]])
    optimizer = tf.keras.optimizers.SGD(learning_rate=0.7, momentum=0.1)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(render_gray_cube(angles)[0] - target))
        gradients, _ = tf.clip_by_global_norm(tape.gradient(loss, [angles]), 1.0)
        optimizer.apply_gradients(zip(gradients, [angles]))
        return loss

    first = float(step())
    for _ in range(34):
        last = float(step())
    assert last < 0.1 * first
    final = render_gray_cube(angles)[0].numpy()
    target_uint8 = np.round(np.clip(target.numpy(), 0, 1) * 255)
    assert outlier_fraction(final, target_uint8, threshold=0.04) <= 0.01


# Direct unit tests of the shader and the tone mapper.

def one_pixel(values):
    return np.asarray(values, np.float32).reshape([1, 1, 1, -1])


def test_phong_shader_one_pixel_is_lambert_of_each_light_plus_ambient():
    diffuse = [0.2, 0.4, 0.6]
    lights = [[[0.0, 0.0, 2.0], [1.0, 0.0, 1.0]]]  # cos 0 and cos 45 degrees
    intensities = [[[1.0, 2.0, 0.5], [1.0, 1.0, 1.0]]]
    ambient = [[0.1, 0.2, 0.3]]
    rgba = phong_shader(one_pixel([0, 0, 1]), one_pixel([1]), one_pixel([0, 0, 0]), lights,
                        intensities, one_pixel(diffuse), ambient_color=ambient).numpy()
    expected = np.array(diffuse) * (np.array([1.0, 2.0, 0.5]) + np.sqrt(0.5) + ambient[0])
    np.testing.assert_allclose(rgba[0, 0, 0], np.append(expected, 1.0), rtol=1e-6)


def test_phong_shader_light_behind_the_surface_gives_no_diffuse():
    rgba = phong_shader(one_pixel([0, 0, 1]), one_pixel([1]), one_pixel([0, 0, 0]),
                        [[[0.0, 0.0, -1.0]]], [[[1.0, 1.0, 1.0]]], one_pixel([1, 1, 1])).numpy()
    np.testing.assert_array_equal(rgba[0, 0, 0], [0, 0, 0, 1])


def test_phong_shader_zeroes_uncovered_pixels_and_flips_rows():
    rows = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    diffuse = np.broadcast_to(rows[None, :, None, None], [1, 4, 2, 3])
    normals = np.broadcast_to(np.float32([0, 0, 1]), [1, 4, 2, 3])
    positions = np.zeros([1, 4, 2, 3], np.float32)
    alphas = np.broadcast_to(np.float32([1.0, 0.5, 0.51, 0.0])[None, :, None, None], [1, 4, 2, 1])
    rgba = phong_shader(normals, alphas, positions, [[[0.0, 0.0, 5.0]]], [[[1.0, 1.0, 1.0]]],
                        diffuse).numpy()
    # Output row i is input row 3 - i; rows with alpha <= 0.5 are black.
    np.testing.assert_allclose(rgba[0, :, 0, 0], [0.0, 0.3, 0.0, 0.1], rtol=1e-6)
    np.testing.assert_array_equal(rgba[0, :, :, 3], alphas[0, ::-1, :, 0])


def test_phong_shader_specular_dot_products_are_normalised_across_pixels():
    """Upstream quirk: r.v is l2-normalised over the pixels of each image and
    light, so a single lit pixel always has a specular factor of 1, whatever
    its true r.v (here 0.6) and shininess."""
    specular = [0.5, 0.25, 1.0]
    camera = [[0.8, 0.0, 0.6]]  # r = (0, 0, 1) for a light along the normal; r.v = 0.6
    rgba = phong_shader(one_pixel([0, 0, 1]), one_pixel([1]), one_pixel([0, 0, 0]),
                        [[[0.0, 0.0, 3.0]]], [[[1.0, 1.0, 1.0]]], one_pixel([0, 0, 0]),
                        camera_position=camera, specular_colors=one_pixel(specular),
                        shininess_coefficients=6.0).numpy()
    np.testing.assert_allclose(rgba[0, 0, 0, :3], specular, rtol=1e-6)


def test_phong_shader_specular_shininess_per_pixel_is_finite_with_gradient():
    normals = tf.constant(np.broadcast_to(np.float32([0, 0, 1]), [1, 2, 2, 3]))
    shininess = tf.constant([[[6.0, -1.0], [6.0, 6.0]]])  # -1: the background value
    with tf.GradientTape() as tape:
        tape.watch(shininess)
        rgba = phong_shader(normals, tf.ones([1, 2, 2, 1]), tf.zeros([1, 2, 2, 3]),
                            [[[0.0, 0.0, -1.0]]], [[[1.0, 1.0, 1.0]]], tf.ones([1, 2, 2, 3]),
                            camera_position=[[0.0, 0.0, 1.0]],
                            specular_colors=tf.ones([1, 2, 2, 3]),
                            shininess_coefficients=shininess)
        total = tf.reduce_sum(rgba)
    gradient = tape.gradient(total, shininess).numpy()
    assert np.all(np.isfinite(rgba.numpy())) and np.all(np.isfinite(gradient))


def test_tone_mapper_maps_each_image_max_to_one_and_is_monotone():
    rng = np.random.default_rng(3)
    images = rng.uniform(0, 5, [2, 4, 5, 3]).astype(np.float32)
    images[1] *= 10.0
    mapped = tone_mapper(images, 0.7).numpy()
    expected = images ** 0.7 / ((images ** 0.7).max(axis=(1, 2, 3), keepdims=True) + 1e-6)
    np.testing.assert_allclose(mapped, expected, rtol=1e-5)
    np.testing.assert_allclose(mapped.max(axis=(1, 2, 3)), 1.0, atol=1e-6)
    order = np.argsort(images[0].ravel())
    assert np.all(np.diff(mapped[0].ravel()[order]) >= 0)
    assert mapped.min() >= 0.0


def test_tone_mapper_floors_zero_and_has_a_finite_gradient():
    image = tf.constant(np.array([0.0, 1.0, 4.0], np.float32).reshape([1, 1, 3, 1]))
    with tf.GradientTape() as tape:
        tape.watch(image)
        mapped = tone_mapper(image, 0.5)
    np.testing.assert_allclose(mapped.numpy().ravel(), [0.01 / 2, 0.5, 1.0], rtol=1e-4)
    assert np.all(np.isfinite(tape.gradient(mapped, image).numpy()))
