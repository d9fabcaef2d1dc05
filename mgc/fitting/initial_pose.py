"""A closed-form starting pose from 2D landmarks.

At MGCNet's camera (f = 4700 px, face at about 5 m) projection is nearly
orthographic, so a least-squares affine camera from the model's 3D landmarks
to the detected 2D ones, made orthonormal, gives rotation, scale and image
offset; the scale gives the distance. Gradient descent then refines it.
Image points with a depth (the face mesh's x, y, z, z in pixels, larger
farther) give the rotation by a 3-D similarity instead (Umeyama's least
squares), which holds the yaw of a turned head that 2-D points alone blur.
"""
import numpy as np

from mgc import geometry


def _wrap(angles):
    return (angles + np.pi) % (2 * np.pi) - np.pi


def _affine_camera(points, pixels):
    """(rotation, scale, image offset of the points' centre) of the least-
    squares affine camera from centred points [P, 3] to pixels [P, 2]."""
    design = np.concatenate([points, np.ones((len(points), 1))], axis=1)
    affine, *_ = np.linalg.lstsq(design, pixels, rcond=None)  # [4, 2]
    row_x, row_y = affine[:3, 0], affine[:3, 1]
    scale = 0.5 * (np.linalg.norm(row_x) + np.linalg.norm(row_y))
    # Closest rotation to the two rows (an orthonormal pair, then their cross).
    u, _, vt = np.linalg.svd(np.stack([row_x, row_y]), full_matrices=False)
    rows = u @ vt
    return np.stack([rows[0], rows[1], np.cross(rows[0], rows[1])]), scale, affine[3]


def _similarity_3d(points, targets):
    """(rotation, scale, x-y offset of the points' centre) of the least-squares
    similarity from centred points [P, 3] to targets [P, 3] (Umeyama)."""
    mean = targets.mean(0)
    u, singular, vt = np.linalg.svd((targets - mean).T @ points)
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / np.sum(np.square(points))
    return rotation, scale, mean[:2]


def initial_pose_delta(model_points, image_points, intrinsics=geometry.MGCNET_INTRINSICS):
    """Pose delta [6] (to be added to DEFAULT_POSE) that maps model points
    [P, 3] (mm, model frame) near image points [P, 2] (pixels), or [P, 3]
    (pixels and a depth in pixels). Rows with NaN are ignored; at least 4
    valid points are needed."""
    model_points = np.asarray(model_points, np.float64)
    image_points = np.asarray(image_points, np.float64)
    valid = np.all(np.isfinite(model_points), 1) & np.all(np.isfinite(image_points), 1)
    if valid.sum() < 4:
        raise ValueError(f"need at least 4 landmarks for a pose, got {valid.sum()}")
    points, pixels = model_points[valid], image_points[valid]
    centre = points.mean(0)
    if pixels.shape[1] == 3:
        rotation, scale, offset = _similarity_3d(points - centre, pixels)
    else:
        rotation, scale, offset = _affine_camera(points - centre, pixels)
    distance = intrinsics.focal / scale
    centre_camera = np.array([(offset[0] - intrinsics.cx) * distance / intrinsics.focal,
                              (offset[1] - intrinsics.cy) * distance / intrinsics.focal,
                              distance])
    extrinsic = np.concatenate([rotation, (centre_camera - rotation @ centre)[:, None]], axis=1)
    pose = geometry.pose_from_extrinsic(extrinsic)
    delta = pose - np.asarray(geometry.DEFAULT_POSE)
    delta[:3] = _wrap(delta[:3])
    return delta.astype(np.float32)
