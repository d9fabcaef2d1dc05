"""MGCNet's multi-view losses (MGCNET_REFERENCE.md §5.5, §5.6), as the
original executes them.

View 0 is the target, views i = 1, 2 the sources. The pieces, in the order
the training step uses them:

    relative_pose        T_i T_0^-1 as [rz, ry, rx, tx, ty, tz] (Euler round trip)
    covisibility_mask    C_i: target pixels on triangles both views see (B9)
    inverse_warp         source image (and depth) sampled at the target's pixels
    pixel_consistency_loss, ssim_loss, depth_consistency_loss, epipolar_loss
                         per-sample errors [B]
    gate_multi_view      flag_sgl_mul gating and the sum over sources (B3)

The depth and epipolar terms come in two forms (TermForms): the original's,
the default (B5: the warped source-camera depth against the target-camera
depth; B4: F from R [t]x), and the geometrically consistent one
(depth_frame="target": the sampled source surface re-expressed in the target
camera, source_depth_in_target, where the sample is wholly on the source's
face, on_source_face; epipolar="textbook": F from [t]x R): the first is
(nearly) zero where the views agree on the shape, the second least at the true
pose (docs/DIFFERENCES.md).

Conventions: images are top-down [B, H, W, C] (row 0 = top); poses are
mgc.geometry.pose's [rz, ry, rx, tx, ty, tz] with R = Rx Ry Rz and
X_cam = R X + t; pixels follow OpenCV (x right, y down, integer = centre).
The warp's pixel grid is integer while renders sample at +0.5 (B6), as in
the original. Functions keep their input's float dtype (float32 or float64)
except covisibility_mask, which renders in float32.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from mgc import geometry
from mgc.render.face import flip_rows
from mgc.render.rasterize import rasterize_triangles

# The original's epsilons.
PROJECTION_EPS = 1e-10  # on q_z in the warp
PIXEL_EPS = 1e-6  # inside the sqrt and on the normaliser of the pixel loss
RATIO_EPS = 1e-6  # on the mean source depth
LINE_EPS = 1e-6  # on the epipolar line norm
FLAG_EPS = 1e-6  # on the flag sum of the flag-normalised gate
GIMBAL_EPS = 1e-6  # cos(ry) below which the Euler extraction sets rx = 0
SSIM_C1, SSIM_C2 = 0.01 ** 2, 0.03 ** 2
# Floor on the source-camera z of a target point when the source depth is
# re-expressed in the target frame, mm: only background pixels (target depth
# 0, masked out) get near it; a face is thousands of mm away.
SOURCE_Z_FLOOR = 1.0
# A bilinear sample of four mask values of 1 is 1 up to float rounding.
WHOLE_SAMPLE_TOLERANCE = 1e-3

DEPTH_FRAMES = ("source", "target")
EPIPOLAR_FORMS = ("original", "textbook")


@dataclasses.dataclass(frozen=True)
class TermForms:
    """Which form of the depth and epipolar terms to compute.

    depth_frame: "source" (the original's, B5) compares the warped
      source-camera depth with the target-camera depth; "target" first
      re-expresses the sampled source surface in the target camera
      (source_depth_in_target) and compares only where the sample lies
      wholly on the source's face (on_source_face), so that views that agree
      on the shape give (nearly) zero error, whatever their poses: both
      depth maps are renders of the predictions, so this form is a
      shape-agreement term with no pose cue.
    epipolar: "original" (B4) builds F from R [t]x; "textbook" from [t]x R,
      the epipolar constraint of X_source = R X_target + t.
    """
    depth_frame: str = "source"
    epipolar: str = "original"

    def __post_init__(self):
        if self.depth_frame not in DEPTH_FRAMES:
            raise ValueError(f"depth_frame must be one of {DEPTH_FRAMES}, got {self.depth_frame!r}")
        if self.epipolar not in EPIPOLAR_FORMS:
            raise ValueError(f"epipolar must be one of {EPIPOLAR_FORMS}, got {self.epipolar!r}")

# name -> (flag offset, mode) of combine_flag_sgl_mul_loss's four calls.
GATES = {
    "pixel_loss": (0.0, "batch_mean"),
    "ssim_loss": (0.0, "batch_mean"),
    "depth_loss": (0.0, "flag_normalised"),
    "epi_loss": (1.0, "flag_normalised"),
}


# ---------------------------------------------------------------- checks

def _float_tensor(value, name):
    """A float tensor (float32 unless it already is float32/float64)."""
    if isinstance(value, (tf.Tensor, tf.Variable)) and value.dtype in (tf.float32, tf.float64):
        return tf.convert_to_tensor(value)
    if isinstance(value, np.ndarray) and value.dtype == np.float64:
        return tf.convert_to_tensor(value)
    return tf.convert_to_tensor(value, tf.float32, name=name)


def _check_shape(tensor, name, pattern):
    """Raises ValueError unless tensor's static shape fits pattern: a list of
    dimension names (anything) or ints (that size)."""
    shape = tensor.shape
    text = "[" + ", ".join(str(d) for d in pattern) + "]"
    if shape.rank is None:
        return tensor
    fits = shape.rank == len(pattern) and all(
        not isinstance(want, int) or have is None or have == want
        for have, want in zip(shape.as_list(), pattern))
    if not fits:
        raise ValueError(f"{name} must have shape {text}, got {shape.as_list()}")
    return tensor


def _image(value, name, channels=None):
    """[B, H, W, C] float tensor."""
    return _check_shape(_float_tensor(value, name), name,
                        ["B", "H", "W", "C" if channels is None else channels])


def _single_channel(value, name):
    """[B, H, W, 1] float tensor from [B, H, W, 1] or [B, H, W]."""
    tensor = _float_tensor(value, name)
    if tensor.shape.rank == 3:
        tensor = tensor[..., tf.newaxis]
    if tensor.shape.rank != 4 or tensor.shape[-1] not in (1, None):
        raise ValueError(f"{name} must have shape [B, H, W, 1] or [B, H, W], "
                         f"got {tensor.shape.as_list()}")
    return tensor


def _pose(value, name):
    return _check_shape(_float_tensor(value, name), name, ["B", 6])


def _same_dtype(*tensors):
    """Casts every tensor to the widest float dtype among them."""
    dtype = tf.float64 if any(t.dtype == tf.float64 for t in tensors) else tf.float32
    return [tf.cast(t, dtype) for t in tensors]


# ---------------------------------------------------------------- poses

def pose_to_matrix(pose):
    """[..., 6] poses [rz, ry, rx, tx, ty, tz] -> [..., 4, 4] [R | t; 0 0 0 1]
    with R = Rx(rx) Ry(ry) Rz(rz), in the pose's dtype (the original's
    pose_vec2mat; mgc.geometry.extrinsic_matrix is the float32 version)."""
    pose = _float_tensor(pose, "pose")
    if pose.shape.rank is not None and (pose.shape.rank < 1 or pose.shape[-1] not in (6, None)):
        raise ValueError(f"pose must have shape [..., 6], got {pose.shape.as_list()}")
    rz, ry, rx = tf.unstack(pose[..., :3], axis=-1)
    cz, sz, cy, sy, cx, sx = tf.cos(rz), tf.sin(rz), tf.cos(ry), tf.sin(ry), tf.cos(rx), tf.sin(rx)
    zero, one = tf.zeros_like(rz), tf.ones_like(rz)
    rows = [
        [cy * cz, -cy * sz, sy, pose[..., 3]],
        [cx * sz + sx * sy * cz, cx * cz - sx * sy * sz, -sx * cy, pose[..., 4]],
        [sx * sz - cx * sy * cz, sx * cz + cx * sy * sz, cx * cy, pose[..., 5]],
        [zero, zero, zero, one],
    ]
    return tf.stack([tf.stack(row, axis=-1) for row in rows], axis=-2)


def matrix_to_pose(matrix):
    """[..., 3 or 4, 4] rigid transforms -> [..., 6] [rz, ry, rx, tx, ty, tz]:
    the original's mat2euler (with cy = hypot(r22, r12): z = atan2(-r01, r00),
    y = atan2(r02, cy), x = atan2(-r12, r22); below cy 1e-6 z = atan2(r10, r11),
    x = 0), the same as mgc.geometry.pose_from_extrinsic, batched."""
    matrix = _float_tensor(matrix, "matrix")
    r = matrix[..., :3, :3]
    cy = tf.sqrt(r[..., 2, 2] ** 2 + r[..., 1, 2] ** 2)
    y = tf.atan2(r[..., 0, 2], cy)
    regular = cy >= GIMBAL_EPS
    z = tf.where(regular, tf.atan2(-r[..., 0, 1], r[..., 0, 0]), tf.atan2(r[..., 1, 0], r[..., 1, 1]))
    x = tf.where(regular, tf.atan2(-r[..., 1, 2], r[..., 2, 2]), tf.zeros_like(y))
    return tf.concat([tf.stack([z, y, x], axis=-1), matrix[..., :3, 3]], axis=-1)


def _rigid_inverse(matrix):
    """[R | t] -> [R^T | -R^T t] for [..., 4, 4] (the original's get_ext_inv)."""
    rotation_t = tf.linalg.matrix_transpose(matrix[..., :3, :3])
    translation = -tf.linalg.matvec(rotation_t, matrix[..., :3, 3])
    top = tf.concat([rotation_t, translation[..., tf.newaxis]], axis=-1)
    return tf.concat([top, matrix[..., 3:, :]], axis=-2)


def relative_pose(target_pose, source_pose):
    """Relative pose from the target camera to a source camera.

    Args:
      target_pose, source_pose: [B, 6] absolute poses [rz, ry, rx, tx, ty, tz].

    Returns:
      [B, 6]: T_source T_target^-1 (maps target-camera coordinates to
      source-camera coordinates) as [rz, ry, rx, tx, ty, tz]. Like the original
      the matrix is converted to Euler angles (matrix_to_pose); the warp and the
      epipolar loss turn it back into a matrix. Differentiable.
    """
    target_pose, source_pose = _same_dtype(_pose(target_pose, "target_pose"),
                                           _pose(source_pose, "source_pose"))
    transform = tf.linalg.matmul(pose_to_matrix(source_pose),
                                 _rigid_inverse(pose_to_matrix(target_pose)))
    return matrix_to_pose(transform)


# ---------------------------------------------------------------- covisibility

def _triangle_ids(value, name):
    ids = tf.convert_to_tensor(value)
    if not ids.dtype.is_integer:
        raise ValueError(f"{name} must hold integer triangle ids, got dtype {ids.dtype.name}")
    if ids.shape.rank == 4 and ids.shape[-1] in (1, None):
        ids = ids[..., 0]
    if ids.shape.rank != 3:
        raise ValueError(f"{name} must have shape [B, H, W] or [B, H, W, 1], "
                         f"got {ids.shape.as_list()}")
    return tf.cast(ids, tf.int32)


def seen_vertices(triangle_ids, triangles, num_vertices):
    """Vertices of the triangles an id image shows, as the original's id
    image has them: background (id -1 here, 0 there) counts as triangle 0.

    Args:
      triangle_ids: [B, H, W] int, -1 on background.
      triangles: [T, 3] int32.
      num_vertices: V.

    Returns:
      [B, V] bool.
    """
    ids = tf.maximum(triangle_ids, 0)
    batch = tf.shape(ids)[0]
    corners = tf.reshape(tf.gather(triangles, ids), [batch, -1])  # [B, H*W*3]
    flat = corners + tf.range(batch)[:, tf.newaxis] * num_vertices
    counts = tf.math.bincount(tf.reshape(flat, [-1]), minlength=batch * num_vertices,
                              maxlength=batch * num_vertices)
    return tf.reshape(counts > 0, [batch, num_vertices])


def pad_like_set_intersection(covisible):
    """tf.sets.intersection densified with padding 0 gives every row shorter
    than the longest one vertex 0 as well (B9). covisible: [B, V] bool."""
    counts = tf.reduce_sum(tf.cast(covisible, tf.int32), axis=1)
    padded = counts < tf.reduce_max(counts)
    first = tf.logical_or(covisible[:, :1], padded[:, tf.newaxis])
    return tf.concat([first, covisible[:, 1:]], axis=1)


def covisible_triangles(target_triangle_ids, source_triangle_ids, triangles, num_vertices):
    """[B, T] bool: the triangles the original re-renders for the covisibility
    map, the 1-ring (all incident faces) of every covisible vertex.

    A triangle lies in the 1-ring of a vertex exactly when the vertex is one
    of its corners, so the union of the rings is the set of triangles with a
    covisible corner: no vertex -> faces table is needed (the original's padded
    ring repeats faces, which changes nothing in a mask).
    """
    covisible = tf.logical_and(seen_vertices(target_triangle_ids, triangles, num_vertices),
                               seen_vertices(source_triangle_ids, triangles, num_vertices))
    covisible = pad_like_set_intersection(covisible)
    return tf.reduce_any(tf.gather(covisible, triangles, axis=1), axis=-1)


def render_triangle_subset_mask(vertices, triangles, selected, pose,
                                intrinsics=geometry.MGCNET_INTRINSICS):
    """Coverage mask of only the selected triangles of each mesh.

    Args:
      vertices: [B, V, 3] model frame; triangles: [T, 3]; selected: [B, T] bool;
      pose: [B, 6].

    Returns:
      [B, H, W, 1] float32, top-down. Each triangle gets its own three clip
      vertices and unselected ones collapse to a point (zero area, they cover
      nothing), so one batched rasterization draws a different subset per
      sample: the original's per-sample loop of renders.
    """
    clip = geometry.clip_space(tf.cast(vertices, tf.float32), tf.cast(pose, tf.float32),
                               intrinsics)
    corners = tf.gather(clip, triangles, axis=1)  # [B, T, 3, 4]
    corners = tf.where(selected[:, :, tf.newaxis, tf.newaxis], corners, tf.zeros_like(corners))
    num_triangles = tf.shape(triangles)[0]
    unshared = tf.reshape(tf.range(3 * num_triangles), [num_triangles, 3])
    _, ids, _ = rasterize_triangles(tf.reshape(corners, [tf.shape(clip)[0], -1, 4]), unshared,
                                    intrinsics.width, intrinsics.height)
    return flip_rows(tf.cast(ids >= 0, tf.float32)[..., tf.newaxis])


def covisibility_mask(target_triangle_ids, source_triangle_ids, target_vertices, target_pose,
                      triangles, intrinsics=geometry.MGCNET_INTRINSICS):
    """The covisibility map C_i of §5.5.3 (occlusion awareness), no gradient.

    Vertices of the triangles seen by any target pixel and by any source pixel
    are intersected (background counts as triangle 0, and rows of the batch
    with fewer covisible vertices than the longest also get vertex 0, both as
    the original, B9); the 1-ring of every covisible vertex is re-rendered
    from the target mesh with the target camera, alone, so occluders that are
    not covisible are not drawn.

    Args:
      target_triangle_ids, source_triangle_ids: [B, H, W] (or [B, H, W, 1])
        int, top-down, -1 on background: render_face(front_only=True)
        .triangle_ids of the two views, both indexing `triangles`.
      target_vertices: [B, V, 3] model-frame vertices of the target's mesh
        (the front sub-mesh the ids index).
      target_pose: [B, 6] the target's absolute pose.
      triangles: [T, 3] int topology of that mesh.
      intrinsics: mgc.geometry.Intrinsics of the renders.

    Returns:
      [B, H, W, 1] float32 in {0, 1}, top-down.
    """
    target_ids = _triangle_ids(target_triangle_ids, "target_triangle_ids")
    source_ids = _triangle_ids(source_triangle_ids, "source_triangle_ids")
    vertices = _check_shape(_float_tensor(target_vertices, "target_vertices"), "target_vertices",
                            ["B", "V", 3])
    pose = _pose(target_pose, "target_pose")
    triangles = _check_shape(tf.convert_to_tensor(triangles, tf.int32), "triangles", ["T", 3])
    num_vertices = tf.shape(vertices)[1]
    selected = covisible_triangles(target_ids, source_ids, triangles, num_vertices)
    mask = render_triangle_subset_mask(tf.stop_gradient(vertices), triangles, selected,
                                       tf.stop_gradient(pose), intrinsics)
    return tf.stop_gradient(mask)


# ---------------------------------------------------------------- warping

def _intrinsic_matrices(intrinsics, dtype):
    """(K, K^-1) as [3, 3] tensors of dtype."""
    matrix = intrinsics.matrix().astype(np.float64)
    return tf.constant(matrix, dtype), tf.constant(np.linalg.inv(matrix), dtype)


def _pixel_rays(height, width, camera_inverse):
    """[H, W, 3] K^-1 [x, y, 1] of the integer pixel grid (z = 1)."""
    xs, ys = tf.meshgrid(tf.range(width), tf.range(height))
    pixels = tf.cast(tf.stack([xs, ys, tf.ones_like(xs)], axis=-1), camera_inverse.dtype)
    return tf.linalg.matvec(camera_inverse, pixels)


def bilinear_sample(image, x, y):
    """The original's bilinear_sampler (SfMLearner).

    Args:
      image: [B, Hs, Ws, C]; x, y: [B, H, W] sample positions in source pixels.

    Returns:
      (samples [B, H, W, C], valid [B, H, W, 1]). Corner indices are clipped to
      the image and the weights use the clipped corners, so outside
      [0, Ws-1) x [0, Hs-1) the weights cancel and the sample is 0 (up to
      rounding); valid is 1 exactly there, 0 elsewhere, without gradient.
    """
    height, width = tf.shape(image)[1], tf.shape(image)[2]
    x_max = tf.cast(width - 1, x.dtype)
    y_max = tf.cast(height - 1, y.dtype)
    x0, y0 = tf.floor(x), tf.floor(y)
    x0_safe, x1_safe = tf.clip_by_value(x0, 0, x_max), tf.clip_by_value(x0 + 1, 0, x_max)
    y0_safe, y1_safe = tf.clip_by_value(y0, 0, y_max), tf.clip_by_value(y0 + 1, 0, y_max)
    wx0, wx1 = x1_safe - x, x - x0_safe
    wy0, wy1 = y1_safe - y, y - y0_safe
    flat = tf.reshape(image, [tf.shape(image)[0], -1, tf.shape(image)[3]])

    def corner(xs, ys):
        index = tf.cast(ys, tf.int32) * width + tf.cast(xs, tf.int32)
        return tf.gather(flat, index, batch_dims=1)  # [B, H, W, C]

    samples = tf.add_n([
        (wx0 * wy0)[..., tf.newaxis] * corner(x0_safe, y0_safe),
        (wx0 * wy1)[..., tf.newaxis] * corner(x0_safe, y1_safe),
        (wx1 * wy0)[..., tf.newaxis] * corner(x1_safe, y0_safe),
        (wx1 * wy1)[..., tf.newaxis] * corner(x1_safe, y1_safe),
    ])
    inside = (x >= 0) & (x < x_max) & (y >= 0) & (y < y_max)
    return samples, tf.cast(inside, image.dtype)[..., tf.newaxis]


def inverse_warp(source_image, target_depth, relative_pose, intrinsics=geometry.MGCNET_INTRINSICS):
    """A source image seen from the target camera (§5.5.4, SfMLearner's
    projective_inverse_warp).

    Every target pixel (x, y) (integer grid, x = 0..W-1, y = 0..H-1) is lifted
    with the target depth, X = D(x, y) K^-1 [x, y, 1], moved into the source
    camera and projected, q = K (R X + t) / (q_z + 1e-10), and the source is
    sampled bilinearly at q (bilinear_sample).

    Args:
      source_image: [B, Hs, Ws, C] (to warp the source depth too, append it as
        a channel: channels are sampled independently).
      target_depth: [B, H, W, 1] or [B, H, W] camera z of the target, mm (0 on
        background, as render_face gives it).
      relative_pose: [B, 6] target -> source, from relative_pose().
      intrinsics: mgc.geometry.Intrinsics (K).

    Returns:
      (warped [B, H, W, C], valid [B, H, W, 1]): valid is 1 where
      0 <= q_x < Ws - 1 and 0 <= q_y < Hs - 1, else 0 (and warped is 0 there).
      Differentiable w.r.t. the image, the depth and the pose.
    """
    image = _image(source_image, "source_image")
    depth = _single_channel(target_depth, "target_depth")
    pose = _pose(relative_pose, "relative_pose")
    image, depth, pose = _same_dtype(image, depth, pose)
    dtype = image.dtype
    camera, camera_inverse = _intrinsic_matrices(intrinsics, dtype)
    batch, height, width = tf.shape(depth)[0], tf.shape(depth)[1], tf.shape(depth)[2]

    rays = tf.reshape(_pixel_rays(height, width, camera_inverse), [1, -1, 3])
    points = tf.reshape(depth, [batch, -1, 1]) * rays  # target camera, [B, HW, 3]

    projection = tf.linalg.matmul(camera, pose_to_matrix(pose)[:, :3, :])  # [B, 3, 4]
    projected = (tf.linalg.matmul(points, projection[:, :, :3], transpose_b=True)
                 + projection[:, tf.newaxis, :, 3])
    z = projected[..., 2] + PROJECTION_EPS
    x = tf.reshape(projected[..., 0] / z, [batch, height, width])
    y = tf.reshape(projected[..., 1] / z, [batch, height, width])
    return bilinear_sample(image, x, y)


# ---------------------------------------------------------------- errors [B]

def pixel_consistency_loss(warped, target_image, valid, target_mask):
    """L_pix per sample (§5.5.5, compute_pixel_eul_loss).

    d = sqrt(sum_c (warped * valid - target)^2 + 1e-6) * valid * target_mask,
    loss_b = sum d / (sum valid * target_mask + 1e-6).

    Args:
      warped: [B, H, W, C] the unmasked warped source (inverse_warp).
      target_image: [B, H, W, C].
      valid: [B, H, W, 1] W_i = warp validity * covisibility.
      target_mask: [B, H, W, 1] M_0, the target's render mask.

    Returns:
      [B].
    """
    warped = _image(warped, "warped")
    target_image = _image(target_image, "target_image")
    valid = _image(valid, "valid", 1)
    target_mask = _image(target_mask, "target_mask", 1)
    warped, target_image, valid, target_mask = _same_dtype(warped, target_image, valid, target_mask)
    difference = warped * valid - target_image
    distance = tf.sqrt(tf.reduce_sum(tf.square(difference), axis=3, keepdims=True) + PIXEL_EPS)
    weights = valid * target_mask
    return (tf.reduce_sum(distance * valid * target_mask, axis=[1, 2, 3])
            / (tf.reduce_sum(weights, axis=[1, 2, 3]) + PIXEL_EPS))


def _mean_pool3(image):
    return tf.nn.avg_pool2d(image, ksize=3, strides=1, padding="VALID")


def ssim_loss(warped, target_image, valid):
    """L_ssim per sample (§5.5.6, vid2depth's SSIM).

    On the unmasked warped image x and the target y with 3x3 VALID mean pools
    mu, sigma: SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) /
    ((mu_x^2 + mu_y^2 + C1)(sigma_x + sigma_y + C2)), C1 = 0.01^2,
    C2 = 0.03^2; the error clip((1 - SSIM) / 2, 0, 1) is weighted by the 3x3
    VALID mean of valid and averaged over all (H-2)(W-2)C values.

    Args:
      warped, target_image: [B, H, W, C]; valid: [B, H, W, 1].

    Returns:
      [B].
    """
    x = _image(warped, "warped")
    y = _image(target_image, "target_image")
    valid = _image(valid, "valid", 1)
    x, y, valid = _same_dtype(x, y, valid)
    # One pool over all six maps (pooling is per channel): the pool op's
    # cost is mostly per call, several times that of the arithmetic.
    pooled = _mean_pool3(tf.concat([x, y, x ** 2, y ** 2, x * y, valid], axis=-1))
    mu_x, mu_y, mean_xx, mean_yy, mean_xy = tf.split(pooled[..., :-1], 5, axis=-1)
    sigma_x = mean_xx - mu_x ** 2
    sigma_y = mean_yy - mu_y ** 2
    sigma_xy = mean_xy - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + SSIM_C1) * (2 * sigma_xy + SSIM_C2)
    denominator = (mu_x ** 2 + mu_y ** 2 + SSIM_C1) * (sigma_x + sigma_y + SSIM_C2)
    error = tf.clip_by_value((1 - numerator / denominator) / 2, 0, 1)
    return tf.reduce_mean(error * pooled[..., -1:], axis=[1, 2, 3])


def depth_consistency_loss(warped_depth, target_depth, valid):
    """L_depth per sample (§5.5.7, decoder_align_depthMap and
    compute_depthmap_l1_loss). Given inverse_warp's depth, source-frame depth
    against target-frame depth as the original (B5); given
    source_depth_in_target's, both in the target frame.

    rho = mean_W(D_0) / (mean_W(D~) + 1e-6) with mean_W(x) = sum(x W) /
    (sum W + 1); loss_b = mean over all H W pixels of |rho D~ - D_0| W W.

    Args:
      warped_depth: [B, H, W, 1] (or [B, H, W]) the source depth warped into
        the target (D~_i). target_depth: the same shape, D_0.
      valid: [B, H, W, 1] W_i.

    Returns:
      [B].
    """
    warped = _single_channel(warped_depth, "warped_depth")
    target = _single_channel(target_depth, "target_depth")
    valid = _image(valid, "valid", 1)
    warped, target, valid = _same_dtype(warped, target, valid)
    count = tf.reduce_sum(valid, axis=[1, 2, 3], keepdims=True) + 1.0
    mean_target = tf.reduce_sum(target * valid, axis=[1, 2, 3], keepdims=True) / count
    mean_source = tf.reduce_sum(warped * valid, axis=[1, 2, 3], keepdims=True) / count
    ratio = mean_target / (mean_source + RATIO_EPS)
    error = tf.abs(ratio * warped - target) * valid * valid
    return tf.reduce_mean(error, axis=[1, 2, 3])


def source_depth_in_target(warped_depth, target_depth, relative_pose,
                           intrinsics=geometry.MGCNET_INTRINSICS):
    """The warped source depth as target-camera z (depth_frame="target").

    Target pixel p with depth D_0 is X = D_0 K^-1 p, seen by the source at
    z_s = (R X + t)_z; the source depth D~ sampled there belongs to the
    source-camera point P = D~ (R X + t) / z_s, which in the target camera is
    R^T (P - t), of z = (D~ / z_s)(D_0 + c) - c with c = (R^T t)_z. At the
    true poses and depths this equals D_0 wherever the views see the same
    surface; the original compares D~ itself with D_0 (B5).

    Args:
      warped_depth: [B, H, W, 1] (or [B, H, W]) D~, from inverse_warp.
      target_depth: the same shape, D_0 (0 on background).
      relative_pose: [B, 6] target -> source, the pose the warp used.
      intrinsics: mgc.geometry.Intrinsics (K) of the warp's integer grid.

    Returns:
      [B, H, W, 1] target-camera z, mm. Differentiable.
    """
    warped = _single_channel(warped_depth, "warped_depth")
    target = _single_channel(target_depth, "target_depth")
    pose = _pose(relative_pose, "relative_pose")
    warped, target, pose = _same_dtype(warped, target, pose)
    _, camera_inverse = _intrinsic_matrices(intrinsics, warped.dtype)
    rays = _pixel_rays(tf.shape(target)[1], tf.shape(target)[2], camera_inverse)
    matrix = pose_to_matrix(pose)
    rotation, translation = matrix[:, :3, :3], matrix[:, :3, 3]
    bottom_row = rotation[:, 2, tf.newaxis, tf.newaxis, :]  # [B, 1, 1, 3]
    source_z = target * tf.reduce_sum(rays * bottom_row, -1, keepdims=True) \
        + translation[:, 2, tf.newaxis, tf.newaxis, tf.newaxis]
    offset = tf.reduce_sum(rotation[:, :, 2] * translation, -1)[:, tf.newaxis, tf.newaxis,
                                                                 tf.newaxis]
    return warped / tf.maximum(source_z, SOURCE_Z_FLOOR) * (target + offset) - offset


def on_source_face(warped_source_mask):
    """[B, H, W, 1] 1 where a warp's bilinear sample lies wholly on the
    source's face (its four source pixels in the render mask), else 0.
    depth_frame="target" compares depths only there: a sample across the
    silhouette mixes in the background's depth 0 and is off by metres. No
    gradient.

    Args:
      warped_source_mask: the source render's mask [B, Hs, Ws, 1] warped by
        inverse_warp (sampled with the same relative pose as the depth).
    """
    mask = _image(warped_source_mask, "warped_source_mask", 1)
    return tf.stop_gradient(tf.cast(mask > 1.0 - WHOLE_SAMPLE_TOLERANCE, mask.dtype))


def _cross_product_matrix(vector):
    """[B, 3] -> [B, 3, 3] [v]x."""
    a, b, c = tf.unstack(vector, axis=-1)
    zero = tf.zeros_like(a)
    return tf.stack([tf.stack([zero, -c, b], -1), tf.stack([c, zero, -a], -1),
                     tf.stack([-b, a, zero], -1)], axis=-2)


def fundamental_matrix(relative_pose, intrinsics=geometry.MGCNET_INTRINSICS, form="original"):
    """[B, 3, 3] F = K^-T E K^-1 of relative poses [B, 6]: with
    form="original" E = R [t]x (the original's fundamental_matrix_from_rt,
    B4), with "textbook" E = [t]x R."""
    if form not in EPIPOLAR_FORMS:
        raise ValueError(f"form must be one of {EPIPOLAR_FORMS}, got {form!r}")
    pose = _pose(relative_pose, "relative_pose")
    matrix = pose_to_matrix(pose)
    rotation, cross = matrix[:, :3, :3], _cross_product_matrix(matrix[:, :3, 3])
    essential = (tf.linalg.matmul(rotation, cross) if form == "original"
                 else tf.linalg.matmul(cross, rotation))
    _, camera_inverse = _intrinsic_matrices(intrinsics, pose.dtype)
    return tf.linalg.matmul(tf.linalg.matmul(camera_inverse, essential, transpose_a=True),
                            camera_inverse)


def epipolar_loss(target_landmarks, source_landmarks, relative_pose,
                  intrinsics=geometry.MGCNET_INTRINSICS, form="original"):
    """L_epi per sample (§5.5.8, compute_match_loss): mean over the points of
    the distance of source point p' to the epipolar line l = F p of target
    point p, |l . p'| / (sqrt(l_a^2 + l_b^2) + 1e-6), in pixels.

    Args:
      target_landmarks, source_landmarks: [B, N, 2] corresponding pixels
        (x right, y down, integer = centre).
      relative_pose: [B, 6] target -> source.
      intrinsics: mgc.geometry.Intrinsics (K).
      form: "original" (B4) or "textbook", as fundamental_matrix.

    Returns:
      [B].
    """
    target = _check_shape(_float_tensor(target_landmarks, "target_landmarks"),
                          "target_landmarks", ["B", "N", 2])
    source = _check_shape(_float_tensor(source_landmarks, "source_landmarks"),
                          "source_landmarks", ["B", "N", 2])
    pose = _pose(relative_pose, "relative_pose")
    target, source, pose = _same_dtype(target, source, pose)
    homogeneous = lambda points: tf.concat([points, tf.ones_like(points[..., :1])], -1)  # noqa: E731
    lines = tf.linalg.matmul(homogeneous(target), fundamental_matrix(pose, intrinsics, form),
                             transpose_b=True)  # [B, N, 3], l = F p
    distance = tf.abs(tf.reduce_sum(lines * homogeneous(source), axis=-1))
    distance /= tf.sqrt(lines[..., 0] ** 2 + lines[..., 1] ** 2) + LINE_EPS
    return tf.reduce_mean(distance, axis=-1)


# ---------------------------------------------------------------- gating

def _errors(values, name, index):
    error = _float_tensor(values, f"losses[{name!r}][{index}]")
    if error.shape.rank == 2 and error.shape[-1] in (1, None):
        error = error[:, 0]
    if error.shape.rank != 1:
        raise ValueError(f"losses[{name!r}][{index}] must have shape [B] or [B, 1], "
                         f"got {error.shape.as_list()}")
    return error


@dataclasses.dataclass(frozen=True)
class ReplicaBatch:
    """The errors gate_multi_view gets are one replica's samples of a larger
    batch: its size, and a function summing a local scalar over the replicas
    (an all-reduce). The gated terms are then this replica's parts, which
    summed over the replicas give the terms of the whole batch."""
    global_size: int
    sum_over_replicas: object  # callable: scalar tensor -> scalar tensor


def _batch_size_and_gate_sum(gate, replicas):
    """B and the gate sum G of the whole batch (through the replicas' sum
    when the gate is one replica's)."""
    if replicas is None:
        return tf.cast(tf.size(gate), gate.dtype), tf.reduce_sum(gate)
    return (tf.constant(float(replicas.global_size), gate.dtype),
            tf.cast(replicas.sum_over_replicas(tf.reduce_sum(gate)), gate.dtype))


def _gated(error, gate, mode, per_sample, size, gate_sum):
    """One source's gated term (a replica's part of it, when size and
    gate_sum are the whole batch's B and G)."""
    if per_sample:
        weighted = tf.reduce_sum(error * gate)
        normaliser = size if mode == "batch_mean" else gate_sum + FLAG_EPS
        return weighted / normaliser
    # B3: the [B, 1] error times the [B] gate is a [B, B] matrix, whose mean
    # (batch_mean) or sum over the gate sum (flag-normalised) factors so.
    error_sum = tf.reduce_sum(error)
    if mode == "batch_mean":
        return (error_sum / size) * (gate_sum / size)
    return error_sum * gate_sum / (gate_sum + FLAG_EPS)


def gate_multi_view(losses, flags, per_sample=False, replicas=None):
    """flag_sgl_mul gating and sum over sources (§5.6, combine_flag_sgl_mul_loss).

    Per term a gate g_b = clip(f_b - o, 0, 1) with o = 0 for pixel_loss,
    ssim_loss and depth_loss and o = 1 for epi_loss; e_ib is source i's error
    of sample b.

    per_sample=False (default, what the original executes): the [B, 1] error
    times the [B] gate broadcasts to [B, B] (B3), so
      pixel_loss, ssim_loss (batch mean):  sum_i mean_b(e_ib) * mean_b(g_b)
      depth_loss, epi_loss (flag-normalised):
                           sum_i sum_b(e_ib) * sum_b(g_b) / (sum_b(g_b) + 1e-6)
    and a sample's own flag does not select its own error.

    per_sample=True (what the paper describes): each error times its own gate,
      batch mean:      sum_i mean_b(e_ib g_b)
      flag-normalised: sum_i sum_b(e_ib g_b) / (sum_b(g_b) + 1e-6)
    (the flag-weighted mean; the original's commented-out line). With batch 1
    the two forms are equal; with equal gates the batch means are equal and
    the original's flag-normalised terms are B times the paper's (a sum over
    the batch instead of a mean).

    Args:
      losses: dict name -> list over sources of [B] (or [B, 1]) errors; names
        among pixel_loss, ssim_loss, depth_loss, epi_loss.
      flags: [B] flag_sgl_mul (0, 1 or 2), any numeric dtype.
      per_sample: the paper's form instead of the original's.
      replicas: a ReplicaBatch when losses and flags are one replica's
        samples: B and the gate sums are then the whole batch's, and each
        term is this replica's part of the whole batch's (None: the batch
        given is the whole batch).

    Returns:
      dict name -> scalar, for the names given.
    """
    unknown = sorted(set(losses) - set(GATES))
    if unknown:
        raise ValueError(f"losses has unknown names {unknown}; known: {sorted(GATES)}")
    flags = tf.convert_to_tensor(flags)
    if flags.shape.rank != 1:
        raise ValueError(f"flags must have shape [B], got {flags.shape.as_list()}")
    gated = {}
    for name, per_source in losses.items():
        offset, mode = GATES[name]
        errors = [_errors(values, name, i) for i, values in enumerate(per_source)]
        dtype = tf.float64 if any(e.dtype == tf.float64 for e in errors) else tf.float32
        gate = tf.clip_by_value(tf.cast(flags, dtype) - offset, 0, 1)
        size, gate_sum = _batch_size_and_gate_sum(gate, replicas)  # once for all sources
        total = tf.constant(0.0, dtype)
        for error in errors:
            total += _gated(tf.cast(error, dtype), gate, mode, per_sample, size, gate_sum)
        gated[name] = total
    return gated
