"""A closed-form starting pose from 2D landmarks.

At MGCNet's camera (f = 4700 px, face at about 5 m) projection is nearly
orthographic, so a least-squares affine camera from the model's 3D landmarks
to the detected 2D ones, made orthonormal, gives rotation, scale and image
offset; the scale gives the distance. Gradient descent then refines it.
"""
import numpy as np

from mgc import geometry


def _wrap(angles):
    return (angles + np.pi) % (2 * np.pi) - np.pi


def initial_pose_delta(model_points, image_points, intrinsics=geometry.MGCNET_INTRINSICS):
    """Pose delta [6] (to be added to DEFAULT_POSE) that maps model points
    [P, 3] (mm, model frame) near image points [P, 2] (pixels). Rows with
    NaN are ignored; at least 4 valid points are needed."""
    model_points = np.asarray(model_points, np.float64)
    image_points = np.asarray(image_points, np.float64)
    valid = np.all(np.isfinite(model_points), 1) & np.all(np.isfinite(image_points), 1)
    if valid.sum() < 4:
        raise ValueError(f"need at least 4 landmarks for a pose, got {valid.sum()}")
    points, pixels = model_points[valid], image_points[valid]
    centre = points.mean(0)
    design = np.concatenate([points - centre, np.ones((len(points), 1))], axis=1)
    affine, *_ = np.linalg.lstsq(design, pixels, rcond=None)  # [4, 2]
    row_x, row_y = affine[:3, 0], affine[:3, 1]
    scale = 0.5 * (np.linalg.norm(row_x) + np.linalg.norm(row_y))
    # Closest rotation to the two rows (an orthonormal pair, then their cross).
    u, _, vt = np.linalg.svd(np.stack([row_x, row_y]), full_matrices=False)
    rows = u @ vt
    rotation = np.stack([rows[0], rows[1], np.cross(rows[0], rows[1])])
    distance = intrinsics.focal / scale
    offset = affine[3]  # image position of the centre
    centre_camera = np.array([(offset[0] - intrinsics.cx) * distance / intrinsics.focal,
                              (offset[1] - intrinsics.cy) * distance / intrinsics.focal,
                              distance])
    extrinsic = np.concatenate([rotation, (centre_camera - rotation @ centre)[:, None]], axis=1)
    pose = geometry.pose_from_extrinsic(extrinsic)
    delta = pose - np.asarray(geometry.DEFAULT_POSE)
    delta[:3] = _wrap(delta[:3])
    return delta.astype(np.float32)
