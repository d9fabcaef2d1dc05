"""The MGCNet forward model: coefficients -> the pictures its losses use.

Everything returned here is top-down (row 0 = image top), triangle ids
included (-1 on background): the op's bottom-up rows are flipped once, here.
Pixel conventions are the original's (docs/DIFFERENCES.md): a rendered pixel
(r, c) shows the surface point projecting to (c + 0.5, r + 0.5), while
landmarks use integer pixel centres.
"""
import collections

import tensorflow as tf

from mgc import geometry
from mgc.facemodel import CoefficientLayout, decode_albedo, decode_shape
from mgc.render.rasterize import interpolate, rasterize_triangles
from mgc.render.shading import phong_shader

DEPTH_RANGE_MM = (0.0, 7500.0)  # MGCNet's depth_min / depth_max
COLOR_MAX = 1e5  # the original clips lit colours to [0, 1e5] (no tone mapping)
# MGCNet's gray geometry picture: one colour, three point lights in the model
# frame, Lambert only (MGCNET_REFERENCE.md §3.5).
GRAY_ALBEDO = 0.7529
GRAY_LIGHTS = ((0.0, 0.0, 1000.0), (-1000.0, 0.0, 1000.0), (1000.0, 0.0, 1000.0))
GRAY_INTENSITY = 0.5

FaceRender = collections.namedtuple("FaceRender", [
    "vertices",      # [B, N, 3] model frame, mm
    "normals",       # [B, N, 3] unit, model frame (no gradient)
    "albedo",        # [B, N, 3] in [0, 1]
    "shading",       # [B, N, 3] SH irradiance L
    "colors",        # [B, N, 3] albedo * shading
    "pose",          # [B, 6] absolute [rz, ry, rx, tx, ty, tz]
    "landmarks_3d",  # [B, 68, 3] model frame (NaN where the model has no landmark)
    "landmarks_2d",  # [B, 68, 2] image pixels, x right, y down, integer = centre
    "image",         # [B, H, W, 3] lit colour, 0 on background
    "mask",          # [B, H, W, 1] float, 1 where the face is drawn
    "depth",         # [B, H, W, 1] camera z in mm, 0 on background
    "triangle_ids",  # [B, H, W] int32 into the rendered triangles, -1 background
])

ImageLayers = collections.namedtuple("ImageLayers", ["attributes", "mask", "triangle_ids"])


def flip_rows(image):
    """Bottom-up <-> top-down for [B, H, ...] tensors."""
    return tf.reverse(image, axis=[1])


def render_attributes(vertices, attributes, triangles, pose, intrinsics=geometry.MGCNET_INTRINSICS):
    """Rasterizes model-frame vertices [B, N, 3] at poses [B, 6] and
    interpolates per-vertex attributes [B, N, A].

    Returns ImageLayers, top-down: attributes [B, H, W, A] (0 on background),
    mask [B, H, W, 1] float, triangle_ids [B, H, W] (-1 on background).
    """
    clip = geometry.clip_space(vertices, pose, intrinsics)
    barycentrics, triangle_ids, _ = rasterize_triangles(clip, triangles, intrinsics.width,
                                                        intrinsics.height)
    mask = tf.cast(triangle_ids >= 0, tf.float32)[..., tf.newaxis]
    values = interpolate(attributes, triangles, barycentrics, triangle_ids) * mask
    return ImageLayers(flip_rows(values), flip_rows(mask), flip_rows(triangle_ids))


def render_gray(vertices, normals, triangles, pose, intrinsics=geometry.MGCNET_INTRINSICS):
    """MGCNet's gray geometry render of meshes [B, N, 3] with vertex normals
    [B, N, 3] at poses [B, 6]: [B, H, W, 3] top-down, 0 on background.

    Normals are interpolated per pixel and re-normalised; the lights sit in
    the model frame, so the shading turns with the face.
    """
    clip = geometry.clip_space(vertices, pose, intrinsics)
    barycentrics, triangle_ids, _ = rasterize_triangles(clip, triangles, intrinsics.width,
                                                        intrinsics.height)
    pixels = interpolate(tf.concat([normals, vertices], axis=-1), triangles, barycentrics,
                         triangle_ids)
    batch = tf.shape(vertices)[0]
    lights = tf.broadcast_to(tf.constant(GRAY_LIGHTS), [batch, len(GRAY_LIGHTS), 3])
    rgba = phong_shader(
        normals=tf.math.l2_normalize(pixels[..., :3], axis=-1),
        alphas=tf.cast(triangle_ids >= 0, tf.float32)[..., tf.newaxis],
        pixel_positions=pixels[..., 3:],
        light_positions=lights,
        light_intensities=tf.fill(tf.shape(lights), GRAY_INTENSITY),
        diffuse_colors=tf.fill(tf.shape(pixels[..., :3]), GRAY_ALBEDO))
    return rgba[..., :3]


def gather_landmarks(vertices, landmark_indices):
    """vertices [B, N, 3] at landmark indices [68] (-1 -> NaN rows)."""
    indices = tf.constant(landmark_indices, tf.int32)
    points = tf.gather(vertices, tf.maximum(indices, 0), axis=1)
    present = (indices >= 0)[tf.newaxis, :, tf.newaxis]
    return tf.where(present, points, tf.fill(tf.shape(points), float("nan")))


def render_face(coefficients, model, layout=None, intrinsics=geometry.MGCNET_INTRINSICS,
                front_only=False, normals=None, albedo=None):
    """Renders faces from coefficient vectors, as MGCNet does.

    Args:
      coefficients: [B, layout.size] (MGCNet's 257 for the BFM), in the order
        identity, albedo, expression, pose delta, lighting.
      model: a mgc.facemodel.FaceModel.
      layout: CoefficientLayout; default: the model's ranks.
      intrinsics: camera and image size; default MGCNet's (224x224, f 4700).
      front_only: render only the model's front sub-mesh (MGCNet's training
        renders, flag_fore); triangle_ids then index front_triangles.
      normals: [B, N, 3] to use instead of the shape's own normals (e.g. held
        fixed for a finite-difference check); None computes them.
      albedo: [B, N, 3] per-vertex albedo to use instead of the model's
        (e.g. estimated for a model without an albedo basis); None decodes it.

    Returns:
      FaceRender (see its fields).
    """
    layout = layout or CoefficientLayout.for_model(model)
    parts = layout.split(coefficients)
    vertices = decode_shape(model, parts["identity"], parts["expression"])
    if albedo is None:
        albedo = decode_albedo(model, parts["albedo"])
    if normals is None:
        normals = geometry.vertex_normals(vertices, model.triangles)
    shading = geometry.sh_shading(normals, parts["lighting"])
    colors = albedo * shading
    pose = geometry.absolute_pose(parts["pose"])
    landmarks_3d = gather_landmarks(vertices, model.landmarks)
    landmarks_2d = geometry.project_to_image(geometry.transform_points(landmarks_3d, pose),
                                             intrinsics)

    mesh_vertices, mesh_colors, triangles = vertices, colors, model.triangles
    if front_only:
        mesh_vertices = tf.gather(vertices, model.front_vertices, axis=1)
        mesh_colors = tf.gather(colors, model.front_vertices, axis=1)
        triangles = model.front_triangles
    # Positions are interpolated in the model frame and then posed, as the
    # original's depth map does (same values up to rounding, closer parity).
    layers = render_attributes(mesh_vertices, tf.concat([mesh_colors, mesh_vertices], axis=-1),
                               triangles, pose, intrinsics)
    image = tf.clip_by_value(layers.attributes[..., :3], 0.0, COLOR_MAX)
    camera_z = geometry.transform_points(
        tf.reshape(layers.attributes[..., 3:], [tf.shape(pose)[0], -1, 3]), pose)[..., 2:]
    depth = layers.mask * tf.clip_by_value(tf.reshape(camera_z, tf.shape(layers.mask)),
                                           *DEPTH_RANGE_MM)
    return FaceRender(vertices, normals, albedo, shading, colors, pose, landmarks_3d,
                      landmarks_2d, image, layers.mask, depth, layers.triangle_ids)
