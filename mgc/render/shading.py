"""Phong shading, tone mapping and a complete mesh renderer.

The semantics of tf_mesh_renderer's mesh_renderer.py (MGCNET_REFERENCE.md
§6.3). Unlike the rasterizer, the shader and render_mesh return TOP-DOWN
images (row 0 = image top): the original's shader flips its output, and the
golden images were made that way.
"""
import tensorflow as tf

from mgc.geometry import look_at, perspective
from mgc.render.rasterize import rasterize


def _float(value, name):
    return tf.convert_to_tensor(value, tf.float32, name=name)


def _safe_pow(base, exponent):
    """base ** exponent for base in [0, 1], 0 where base is 0.

    tf.pow(0, s) has gradient 0 * log(0) = NaN with respect to s, and the
    original's per-vertex shininess is -1 (the background value) off the mesh,
    where pow(0, -1) = inf; both are kept out of the graph.
    """
    positive = base > 0.0
    powered = tf.pow(tf.where(positive, base, tf.ones_like(base)), exponent)
    return tf.where(positive, powered, tf.zeros_like(powered))


def _normalize_across_pixels(dots):
    """The original's quirk: l2-normalises the [B, L, H, W] reflection/view
    dot products over all pixels of each image and light (background pixels
    included), instead of leaving them as per-pixel cosines."""
    return tf.math.l2_normalize(dots, axis=[2, 3])


def _specular(normals, positions, to_lights, normals_dot_lights, light_intensities,
              camera_position, specular_colors, shininess_coefficients):
    """Phong specular term, [B, H, W, 3]; light-indexed tensors are [B, L, H, W, ...]."""
    camera = _float(camera_position, "camera_position")
    camera = tf.reshape(camera, [-1, 1, 1, 1, 3])
    # Reflection of the light direction about the normal (the clamped n.l is
    # the original's; wherever it was clamped the term is zeroed below).
    reflections = tf.math.l2_normalize(
        2.0 * normals_dot_lights[..., tf.newaxis] * normals - to_lights, axis=-1)
    to_camera = tf.math.l2_normalize(camera - positions, axis=-1)  # [B, 1, H, W, 3]
    dots = tf.reduce_sum(reflections * to_camera, axis=-1)  # [B, L, H, W]
    dots = tf.clip_by_value(_normalize_across_pixels(dots), 0.0, 1.0)
    # Only where the light also lights the surface (diffuse term non-zero).
    dots = tf.where(normals_dot_lights > 0.0, dots, tf.zeros_like(dots))
    shininess = _float(shininess_coefficients, "shininess_coefficients")
    if shininess.shape.rank is not None and shininess.shape.rank < 3:
        shininess = tf.reshape(shininess, [-1, 1, 1])  # scalar or one per image
    specularity = _safe_pow(dots, shininess[:, tf.newaxis])  # [B, L, H, W]
    specular_colors = _float(specular_colors, "specular_colors")[:, tf.newaxis]
    return tf.reduce_sum(specular_colors * specularity[..., tf.newaxis] * light_intensities,
                         axis=1)


def phong_shader(normals, alphas, pixel_positions, light_positions, light_intensities,
                 diffuse_colors, camera_position=None, specular_colors=None,
                 shininess_coefficients=None, ambient_color=None):
    """Per-pixel Phong lighting of rasterized buffers (point lights, no falloff).

    colour = ambient_color * diffuse
             + sum_lights diffuse * clamp(n . l, 0, 1) * intensity
             + sum_lights specular * (r . v) ** shininess * intensity,
    with l the unit direction to the light, r its reflection about n and v the
    unit direction to the camera. The specular dot products are l2-normalised
    across the pixels of each image and light, as in the original
    (MGCNET_REFERENCE.md §6.3; docs/DIFFERENCES.md); the specular term is only
    computed when camera_position is given.

    Args:
      normals: [B, H, W, 3] unit normals (bottom-up buffers, as rasterized).
      alphas: [B, H, W, 1] coverage; pixels with alpha <= 0.5 become 0.
      pixel_positions: [B, H, W, 3] positions, in the lights' space.
      light_positions: [B, L, 3] point-light positions.
      light_intensities: [B, L, 3] RGB intensities (may exceed 1).
      diffuse_colors: [B, H, W, 3] diffuse reflectance.
      camera_position: [B, 3] or [3] eye position; enables the specular term.
      specular_colors: [B, H, W, 3]; required with camera_position.
      shininess_coefficients: exponents broadcastable to [B, H, W]: a scalar,
        [B] (one per image) or [B, H, W] (per pixel).
      ambient_color: [B, 3] RGB ambient light; None for black.

    Returns:
      [B, H, W, 4] float32 RGBA, flipped vertically (TOP-DOWN); RGB in
      [0, inf), alpha = alphas.

    Raises:
      ValueError: camera_position without specular colours or shininess.
    """
    with tf.name_scope("phong_shader"):
        normals = _float(normals, "normals")[:, tf.newaxis]  # [B, 1, H, W, 3]
        positions = _float(pixel_positions, "pixel_positions")[:, tf.newaxis]
        alphas = _float(alphas, "alphas")
        diffuse_colors = _float(diffuse_colors, "diffuse_colors")
        lights = _float(light_positions, "light_positions")[:, :, tf.newaxis, tf.newaxis]
        intensities = _float(light_intensities, "light_intensities")[:, :, tf.newaxis, tf.newaxis]

        to_lights = tf.math.l2_normalize(lights - positions, axis=-1)  # [B, L, H, W, 3]
        normals_dot_lights = tf.clip_by_value(
            tf.reduce_sum(normals * to_lights, axis=-1), 0.0, 1.0)  # [B, L, H, W]
        rgb = tf.reduce_sum(diffuse_colors[:, tf.newaxis] * normals_dot_lights[..., tf.newaxis]
                            * intensities, axis=1)
        if ambient_color is not None:
            ambient = _float(ambient_color, "ambient_color")[:, tf.newaxis, tf.newaxis]
            rgb += ambient * diffuse_colors
        if camera_position is not None:
            if specular_colors is None or shininess_coefficients is None:
                raise ValueError("The specular term needs specular_colors and "
                                 "shininess_coefficients with camera_position.")
            rgb += _specular(normals, positions, to_lights, normals_dot_lights, intensities,
                             camera_position, specular_colors, shininess_coefficients)
        rgb = tf.where(alphas > 0.5, rgb, tf.zeros_like(rgb))
        return tf.reverse(tf.concat([rgb, alphas], axis=-1), axis=[1])


def tone_mapper(image, gamma):
    """Gamma tone mapping scaled so each image's maximum is about 1.

    out = clip(max(x, 1e-4) ** gamma / (max_image(...) + 1e-6), 0, 1); the
    epsilons (the fork's) keep pow's gradient and the division finite.

    Args:
      image: [B, H, W, C] non-negative values (e.g. the RGB of render_mesh).
      gamma: scalar exponent; < 1 compresses contrast.

    Returns:
      [B, H, W, C] float32 in [0, 1].
    """
    with tf.name_scope("tone_mapper"):
        corrected = tf.pow(tf.maximum(_float(image, "image"), 1e-4), gamma)
        image_max = tf.reduce_max(corrected, axis=[1, 2, 3], keepdims=True)
        return tf.clip_by_value(corrected / (image_max + 1e-6), 0.0, 1.0)


def _per_image(value, batch_size, name):
    """A scalar or [B] camera parameter as [B]."""
    return tf.broadcast_to(tf.reshape(_float(value, name), [-1]), [batch_size])


def _per_image_vector(value, batch_size, name):
    """A [3] or [B, 3] camera vector as [B, 3]."""
    return tf.broadcast_to(_float(value, name), [batch_size, 3])


def _vertex_attributes(normals, vertices, diffuse_colors, specular_colors,
                       shininess_coefficients):
    """Attributes to interpolate, and whether shininess is among them."""
    attributes = [normals, vertices, diffuse_colors]
    per_vertex_shininess = False
    if specular_colors is not None:
        attributes.append(_float(specular_colors, "specular_colors"))
        shininess = _float(shininess_coefficients, "shininess_coefficients")
        if shininess.shape.rank == 2:
            attributes.append(shininess[..., tf.newaxis])
            per_vertex_shininess = True
    return tf.concat(attributes, axis=-1), per_vertex_shininess


def render_mesh(vertices, triangles, normals, diffuse_colors, camera_position, camera_lookat,
                camera_up, light_positions, light_intensities, image_width, image_height,
                specular_colors=None, shininess_coefficients=None, ambient_color=None,
                fov_y=40.0, near_clip=0.01, far_clip=10.0):
    """Renders a Phong-shaded mesh: the working version of the original's
    mesh_renderer (gluLookAt + gluPerspective, one rasterization, phong_shader).

    Args:
      vertices: [B, V, 3] world-space positions.
      triangles: [T, 3] int32, shared by the batch (either winding; no culling).
      normals: [B, V, 3] unit vertex normals (world space); interpolated per
        pixel and re-normalised.
      diffuse_colors: [B, V, 3] per-vertex diffuse reflectance.
      camera_position, camera_lookat, camera_up: [B, 3] or [3].
      light_positions, light_intensities: [B, L, 3] (world space).
      image_width, image_height: positive ints.
      specular_colors: [B, V, 3] or None (then no specular term).
      shininess_coefficients: scalar, [B] or per-vertex [B, V]; required with
        (and only with) specular_colors.
      ambient_color: [B, 3] or None.
      fov_y: vertical field of view in degrees, scalar or [B].
      near_clip, far_clip: scalars or [B].

    Returns:
      [B, H, W, 4] float32 RGBA, TOP-DOWN; RGB before tone mapping, in
      [0, inf); alpha 1 on the mesh, 0 elsewhere. Differentiable w.r.t.
      vertices, normals, colours and lights.

    Raises:
      ValueError: specular colours without shininess or vice versa, or bad
        ranks.
    """
    if (specular_colors is None) != (shininess_coefficients is None):
        raise ValueError("specular_colors and shininess_coefficients go together.")
    with tf.name_scope("render_mesh"):
        vertices = _float(vertices, "vertices")
        normals = _float(normals, "normals")
        diffuse_colors = _float(diffuse_colors, "diffuse_colors")
        for name, value in (("vertices", vertices), ("normals", normals),
                            ("diffuse_colors", diffuse_colors)):
            if value.shape.rank != 3:
                raise ValueError(f"{name} must have shape [B, V, 3], got {value.shape}")
        batch_size = tf.shape(vertices)[0]
        eye = _per_image_vector(camera_position, batch_size, "camera_position")
        view = look_at(eye, _per_image_vector(camera_lookat, batch_size, "camera_lookat"),
                       _per_image_vector(camera_up, batch_size, "camera_up"))
        projection = perspective(
            tf.fill([batch_size], float(image_width) / float(image_height)),
            _per_image(fov_y, batch_size, "fov_y"), _per_image(near_clip, batch_size, "near_clip"),
            _per_image(far_clip, batch_size, "far_clip"))
        attributes, per_vertex_shininess = _vertex_attributes(
            normals, vertices, diffuse_colors, specular_colors, shininess_coefficients)
        # Background -1 everywhere, as the original: off the mesh the normal and
        # position are junk, zeroed by the shader through alpha.
        pixels, alphas, _ = rasterize(vertices, attributes, triangles, projection @ view,
                                      image_width, image_height,
                                      -tf.ones([tf.shape(attributes)[-1]]))
        if specular_colors is not None:
            specular_colors = pixels[..., 9:12]
            if per_vertex_shininess:
                shininess_coefficients = pixels[..., 12]
        return phong_shader(
            normals=tf.math.l2_normalize(pixels[..., 0:3], axis=-1), alphas=alphas,
            pixel_positions=pixels[..., 3:6], light_positions=light_positions,
            light_intensities=light_intensities, diffuse_colors=pixels[..., 6:9],
            camera_position=eye if specular_colors is not None else None,
            specular_colors=specular_colors, shininess_coefficients=shininess_coefficients,
            ambient_color=ambient_color)
