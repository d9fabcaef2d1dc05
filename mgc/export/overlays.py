"""Pictures people open: MGCNet's test-time overlays (MGCNET_REFERENCE.md §8),
multi-pose strips, turntables and the paste-back into the original photo.

Conventions:
  * Every image is top-down (row 0 = image top), x right, as FaceRender.
  * Inputs may be NumPy arrays or tensors; images may be uint8 in [0, 255] or
    float in [0, 1]; a leading batch axis of size 1 is accepted.
  * Every picture returned is uint8 NumPy [H, W, 3], made as MGCNet makes them:
    clip to [0, 1], then tf.image.convert_image_dtype, which multiplies by
    255.5 and truncates (so 1.0 -> 255 and an input uint8 value comes back
    unchanged) -- not the usual round(255 x).
  * Renders sample pixel (r, c) at (c + 0.5, r + 0.5) while landmarks and the
    crop warp use integer centres (§9 B6); paste_back keeps the original's
    0.5-pixel offset.
"""
import os

import cv2
import numpy as np
import tensorflow as tf
from PIL import Image

from mgc import geometry
from mgc.geometry.pose import LEFT_POSE, RIGHT_POSE
from mgc.render import render_attributes
from mgc.render.face import COLOR_MAX, render_gray


def _numpy(value):
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _unbatch(array, rank):
    """Drops a leading batch axis of size 1 from an array of the given rank."""
    if array.ndim == rank + 1 and array.shape[0] == 1:
        return array[0]
    return array


def _float_image(image):
    """[H, W, C] float32 in [0, 1] from uint8 [0, 255] or float input."""
    array = _unbatch(_numpy(image), 3)
    if array.dtype == np.uint8:
        # MGCNet's preprocess_image: convert_image_dtype(uint8 -> float) = x / 255.
        return array.astype(np.float32) / 255.0
    return array.astype(np.float32)


def _rgb(image):
    """[H, W, 3] float32 from a gray [H, W] / [H, W, 1] or colour image."""
    array = _numpy(image)
    if array.ndim == 2:
        array = array[..., np.newaxis]
    array = _float_image(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"expected an image [H, W, 3], got shape {list(array.shape)}")
    return array


def _mask(mask):
    """[H, W, 1] float32 in [0, 1] from [H, W], [H, W, 1] or [H, W, 3] masks
    (uint8 masks are read as 0..255)."""
    array = _unbatch(_numpy(mask), 3)
    if array.ndim == 2:
        array = array[..., np.newaxis]
    scale = 255.0 if array.dtype == np.uint8 else 1.0
    return array[..., :1].astype(np.float32) / scale


def to_uint8(image):
    """MGCNet's display conversion: clip to [0, 1], then trunc(255.5 x)
    (tf.image.convert_image_dtype float -> uint8). uint8 input is returned as
    is. [H, W, C] -> uint8 [H, W, C]."""
    array = _unbatch(_numpy(image), 3)
    if array.dtype == np.uint8:
        return array
    clipped = np.clip(array.astype(np.float32), 0.0, 1.0)
    return (clipped * np.float32(255.5)).astype(np.uint8)


def composite(render, mask, image):
    """MGCNet's gpmm_face_replace, for display.

    Args:
      render: [H, W, 3] render (>= 0, unclipped), 0 on background.
      mask: [H, W, 1] (or [H, W]) 1 on the face, 0 elsewhere.
      image: [H, W, 3] the picture under the face, uint8 or float in [0, 1].

    Returns:
      uint8 [H, W, 3]: to_uint8(render * mask + (1 - mask) * image), which is
      the original's render + (1 - mask) * image for a render that is 0 off
      the face.
    """
    render, mask, image = _rgb(render), _mask(mask), _rgb(image)
    if render.shape != image.shape or mask.shape[:2] != image.shape[:2]:
        raise ValueError(f"render {list(render.shape)}, mask {list(mask.shape)} and image "
                         f"{list(image.shape)} must have the same height and width")
    return to_uint8(render * mask + (1.0 - mask) * image)


def _repeat_face(field, index, count):
    """Face `index` of a batched FaceRender field, repeated `count` times:
    [count, ...] float32."""
    return tf.repeat(tf.cast(field[index:index + 1], tf.float32), count, axis=0)


def _render_layers(face, triangles, poses, intrinsics, index,
                   fields=("colors", "albedo", "shading")):
    """The per-vertex `fields` of face `index` rendered at poses [P, 6]
    (default: lit colour, albedo and shading).

    Returns (layers [P, H, W, 3 * len(fields)] clipped to [0, 1e5], mask
    [P, H, W, 1]), top-down.
    """
    poses = tf.convert_to_tensor(poses, tf.float32)
    count = int(poses.shape[0])
    attributes = tf.concat([_repeat_face(getattr(face, field), index, count)
                            for field in fields], axis=-1)
    layers = render_attributes(_repeat_face(face.vertices, index, count), attributes, triangles,
                               poses, intrinsics)
    # Clipped to [0, 1e5] as the original renders; to [0, 1] only for display (§9 B12).
    return tf.clip_by_value(layers.attributes, 0.0, COLOR_MAX).numpy(), layers.mask.numpy()


def _render_gray(face, triangles, poses, intrinsics, index):
    """MGCNet's gray Phong geometry render of face `index` at poses [P, 6]:
    [P, H, W, 3], 0 on background, top-down."""
    poses = tf.convert_to_tensor(poses, tf.float32)
    count = int(poses.shape[0])
    gray = render_gray(_repeat_face(face.vertices, index, count),
                       _repeat_face(face.normals, index, count), triangles, poses,
                       intrinsics=intrinsics)
    return _numpy(gray)


def overlay_set(face, triangles, crop, index=0, intrinsics=geometry.MGCNET_INTRINSICS):
    """MGCNet's test-time pictures of one face (test_image.py, §8).

    Args:
      face: a FaceRender (mgc.render.render_face) for the crop; its vertices,
        normals, albedo, shading, colors and pose are used.
      triangles: [T, 3] the mesh to draw (MGCNet's test pictures use the full
        mesh, model.triangles, even when training used the front sub-mesh).
      crop: [H, W, 3] the aligned input crop, uint8 or float in [0, 1].
      index: which face of the batch.
      intrinsics: the crop camera.

    Returns:
      dict of uint8 [H, W, 3] pictures, keyed by MGCNet's file suffixes:
      "overlay" (lit colour over the crop), "overlayTex" (albedo),
      "overlayLight" (shading only), "overlayGeo" (gray geometry),
      "overlayMain", "overlayTexMain", "overlayLightMain", "overlayGeoMain"
      (the same at the default frontal pose on black), and "mask" (the face
      mask at the predicted pose, 0 or 255 in every channel), which
      paste_back takes.
    """
    crop = _rgb(crop)
    poses = tf.stack([tf.cast(face.pose[index], tf.float32),
                      tf.constant(geometry.DEFAULT_POSE, tf.float32)])
    layers, masks = _render_layers(face, triangles, poses, intrinsics, index)
    gray = _render_gray(face, triangles, poses, intrinsics, index)
    mask = masks[0]
    pictures = {}
    for name, channels in (("", slice(0, 3)), ("Tex", slice(3, 6)), ("Light", slice(6, 9))):
        pictures[f"overlay{name}"] = composite(layers[0, ..., channels], mask, crop)
        pictures[f"overlay{name}Main"] = to_uint8(layers[1, ..., channels])
    # As the original, the gray overlay is cut out with the colour render's mask.
    pictures["overlayGeo"] = composite(gray[0], mask, crop)
    pictures["overlayGeoMain"] = to_uint8(gray[1])
    pictures["mask"] = _mask_picture(mask)
    return pictures


def _mask_picture(mask):
    return np.repeat((mask > 0.5).astype(np.uint8) * 255, 3, axis=-1)


@tf.function(reduce_retracing=True)
def _result_renders(vertices, colors, normals, poses, triangles, intrinsics):
    """result_pictures' renders as one graph (a reconstruction makes them for
    every face; eagerly, op dispatch costs more than the pixels): the lit
    colour [P, H, W, 3] clipped to [0, 1e5] and its mask at poses [P, 6],
    and the gray geometry at poses[0], all top-down."""
    count = tf.shape(poses)[0]
    repeat = lambda field: tf.repeat(field[tf.newaxis], count, axis=0)  # noqa: E731
    layers = render_attributes(repeat(vertices), repeat(colors), triangles, poses, intrinsics)
    gray = render_gray(vertices[tf.newaxis], normals[tf.newaxis], triangles, poses[:1],
                       intrinsics=intrinsics)
    return tf.clip_by_value(layers.attributes, 0.0, COLOR_MAX), layers.mask, gray


def trace_result_renders(num_vertices, triangles, intrinsics=geometry.MGCNET_INTRINSICS):
    """Traces result_pictures' graph for meshes of num_vertices and these
    triangles (seconds of tracing): a batch run pays it at start-up instead
    of on its first face. The face is a point (every triangle empty)."""
    point = tf.zeros([num_vertices, 3])
    poses = tf.tile(tf.constant([geometry.DEFAULT_POSE], tf.float32), [4, 1])
    _result_renders(point, point, point, poses, tf.convert_to_tensor(triangles, tf.int32),
                    intrinsics)


def result_pictures(face, triangles, crop, index=0, intrinsics=geometry.MGCNET_INTRINSICS):
    """The pictures a reconstruction writes, from the fewest renders: the
    lit colour at four poses and the gray geometry at one.

    Args: as overlay_set.

    Returns:
      dict with overlay_set's "overlay", "overlayGeo" and "mask" (the same
      pictures) and "mulPoses" (multi_pose_strip's).
    """
    crop = _rgb(crop)
    poses = tf.stack([tf.cast(face.pose[index], tf.float32),
                      tf.constant(LEFT_POSE, tf.float32),
                      tf.constant(geometry.DEFAULT_POSE, tf.float32),
                      tf.constant(RIGHT_POSE, tf.float32)])
    fields = [tf.cast(field[index], tf.float32) for field in (face.vertices, face.colors,
                                                               face.normals)]
    colours, masks, gray = [value.numpy() for value in _result_renders(
        *fields, poses, tf.convert_to_tensor(triangles, tf.int32), intrinsics)]
    pictures = dict(overlay=composite(colours[0], masks[0], crop),
                    overlayGeo=composite(gray[0], masks[0], crop), mask=_mask_picture(masks[0]))
    # The crop, the lit and gray overlays, the lit face at left, default, right.
    pictures["mulPoses"] = np.concatenate(
        [to_uint8(crop), pictures["overlay"], pictures["overlayGeo"]]
        + [to_uint8(colours[view]) for view in (1, 2, 3)], axis=1)
    return pictures


def multi_pose_strip(face, triangles, crop, index=0, intrinsics=geometry.MGCNET_INTRINSICS):
    """MGCNet's `_mulPoses.jpg`: one row of six pictures, uint8 [H, 6W, 3]:
    the crop, the lit overlay, the gray overlay, and the lit face at the left
    (-22.5 deg), default and right (+22.5 deg) poses on black.

    Args: as overlay_set.
    """
    return result_pictures(face, triangles, crop, index, intrinsics)["mulPoses"]


def turntable_poses(vertices, yaw_degrees, base_pose=geometry.DEFAULT_POSE):
    """Poses [P, 6] that turn a face about its own centre.

    The yaw is added to base_pose's ry (positive turns the nose towards the
    image's right); the translation keeps the centre of the vertices'
    bounding box where base_pose puts it, so the face stays in the picture.

    Args:
      vertices: [N, 3] model-frame vertices (mm).
      yaw_degrees: sequence of P angles in degrees.
      base_pose: [6] pose of yaw 0.
    """
    vertices = _numpy(vertices).reshape(-1, 3).astype(np.float64)
    centre = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    base = np.asarray(base_pose, np.float64)
    angles = np.repeat(base[np.newaxis, :3], len(yaw_degrees), axis=0)
    angles[:, 1] += np.radians(np.asarray(yaw_degrees, np.float64))
    rotations = geometry.rotation_matrix(angles.astype(np.float32)).numpy().astype(np.float64)
    base_rotation = geometry.rotation_matrix(base[np.newaxis, :3].astype(np.float32)).numpy()[0]
    target = base_rotation.astype(np.float64) @ centre + base[3:]
    translations = target[np.newaxis] - rotations @ centre
    return np.concatenate([angles, translations], axis=1).astype(np.float32)


def turntable(face, triangles, yaw_degrees=(-60, -30, 0, 30, 60), index=0, appearance="color",
              intrinsics=geometry.MGCNET_INTRINSICS):
    """The same face seen at several yaws, one row: uint8 [H, P*W, 3].

    Args:
      face: a FaceRender.
      triangles: [T, 3] mesh to draw.
      yaw_degrees: P yaw angles (degrees) added to the default pose, turning
        about the face's centre (turntable_poses).
      index: which face of the batch.
      appearance: "color" (lit colour), "albedo", "light" (shading only) or
        "gray" (MGCNet's gray geometry render).
      intrinsics: camera of each view.
    """
    poses = turntable_poses(_numpy(face.vertices[index]), yaw_degrees)
    channels = {"color": slice(0, 3), "albedo": slice(3, 6), "light": slice(6, 9)}
    if appearance == "gray":
        views = _render_gray(face, triangles, poses, intrinsics, index)
    elif appearance in channels:
        layers, _ = _render_layers(face, triangles, poses, intrinsics, index)
        views = layers[..., channels[appearance]]
    else:
        raise ValueError(f"appearance must be color, albedo, light or gray; got {appearance!r}")
    return np.concatenate([to_uint8(view) for view in views], axis=1)


def paste_back(overlay, mask, original_image, crop_matrix):
    """Warps a crop-space picture back into the original photo (§7).

    With M_inv = inv(crop_matrix), the overlay and its mask are warped with
    cv2.warpAffine(M_inv[:2], original size, INTER_LINEAR, BORDER_REPLICATE)
    and composited as the original does:
    uint8(warped_overlay * warped_mask) + uint8((1 - warped_mask) * original),
    each term truncated. BORDER_REPLICATE is kept: where the face touches the
    crop's edge, the edge pixels are smeared outwards.

    Args:
      overlay: [h, w, 3] crop-space picture (e.g. overlay_set()["overlay"]),
        uint8 or float in [0, 1].
      mask: [h, w, 1], [h, w] or [h, w, 3] face mask (float 0..1 or uint8 0..255).
      original_image: [H, W, 3] uint8 (or float in [0, 1]) photo.
      crop_matrix: [3, 3] similarity M mapping original pixels to crop pixels
        (the crop was warpAffine(original, M[:2], (w, h))).

    Returns:
      uint8 [H, W, 3].
    """
    return paste_back_all([overlay], mask, [original_image], crop_matrix)[0]


def paste_back_all(overlays, mask, original_images, crop_matrix):
    """paste_back of several overlays of one crop (e.g. the lit and the gray
    face) into their photos [H, W, 3] (all the same size), the mask warped
    once. A mask whose outermost pixels are 0 (results clears them) is 0
    outside the crop's footprint, where the photo stays as it is: only the
    footprint's box is warped then (in a large photo, a small part of it),
    with the warp's translation moved to the box; OpenCV's fixed-point
    sampling then rounds a few pixels differently, by at most 1 of 255."""
    # The original warps the uint8 overlay (cv2 rounds) and a float mask.
    mask = np.repeat(_mask(mask), 3, axis=-1)
    originals = [to_uint8(_rgb(image)) for image in original_images]
    inverse = np.linalg.inv(np.asarray(_numpy(crop_matrix), np.float64))[:2]
    height, width = originals[0].shape[:2]
    left, top, right, bottom = 0, 0, width, height
    if not (mask[[0, -1]].any() or mask[:, [0, -1]].any()):
        left, top, right, bottom = _footprint_box(inverse, mask.shape[:2], width, height)
    results = [image.copy() for image in originals]
    if right <= left or bottom <= top:
        return results
    crop_to_box = inverse - np.array([[0, 0, left], [0, 0, top]], np.float64)
    size = (right - left, bottom - top)

    def warp(image):
        return cv2.warpAffine(image, crop_to_box, size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    warped_mask = warp(mask)
    for overlay, result in zip(overlays, results):
        region = result[top:bottom, left:right]
        face_part = (warp(to_uint8(_rgb(overlay))) * warped_mask).astype(np.uint8)
        region[...] = face_part + ((1.0 - warped_mask) * region).astype(np.uint8)
    return results


def _footprint_box(crop_to_photo, crop_shape, width, height):
    """(left, top, right, bottom): the photo pixels whose crop position
    lies inside the crop's pixel centres, a pixel of margin each side,
    within the photo."""
    crop_height, crop_width = crop_shape
    corners = np.array([[0, 0, 1], [crop_width - 1, 0, 1], [0, crop_height - 1, 1],
                        [crop_width - 1, crop_height - 1, 1]], np.float64) @ crop_to_photo.T
    left, top = np.floor(corners.min(0)).astype(int) - 1
    right, bottom = np.ceil(corners.max(0)).astype(int) + 2
    return max(left, 0), max(top, 0), min(right, width), min(bottom, height)


_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_PNG_OPTIONS = [cv2.IMWRITE_PNG_COMPRESSION, 1,
                cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]


def save_image(path, image, overwrite=True, quality=95):
    """Writes a picture as PNG or JPEG (by extension), creating folders.

    Args:
      path: file name ending in .png, .jpg or .jpeg.
      image: [H, W, 3] or [H, W] (gray), uint8 or float in [0, 1] (converted
        with to_uint8).
      overwrite: if False, an existing file raises FileExistsError.
      quality: JPEG quality.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in _FORMATS:
        raise ValueError(f"{path}: unknown image extension (use one of {sorted(_FORMATS)})")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    array = _unbatch(_numpy(image), 3)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    array = to_uint8(array[..., np.newaxis])[..., 0] if array.ndim == 2 else to_uint8(array)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if _FORMATS[extension] == "JPEG":
        Image.fromarray(array).save(path, "JPEG", quality=quality)
        return
    # PNG through OpenCV, zlib level 1 with run-length matching: on a baked
    # texture as small as PIL's default and about ten times faster to write.
    bgr = array if array.ndim == 2 else array[..., ::-1]
    ok, encoded = cv2.imencode(".png", bgr, _PNG_OPTIONS)
    if not ok:
        raise OSError(f"cannot encode {path} as PNG")
    with open(path, "wb") as stream:
        stream.write(encoded.tobytes())
