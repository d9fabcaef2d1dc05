"""Synthetic photos of faces with known geometry: a face model rendered from
known coefficients and pose, with a painted albedo and SH lighting, over a
photo background. Used to test the whole pipeline (detection, alignment,
fitting) against exact answers, and to measure where dlib's landmarks fall
on the model's surface (experiments/calibrate_landmarks.py)."""
import dataclasses

import numpy as np
from scipy import ndimage

from mgc import geometry, paths
from mgc.facemodel import CoefficientLayout
from mgc.preprocess import NoFaceError, load_image, prepare_faces
from mgc.render import render_face

SKIN = np.array([0.85, 0.62, 0.52])
BROWS = np.array([0.25, 0.17, 0.12])
LID_MARGINS = np.array([0.15, 0.1, 0.08])
LIPS = np.array([0.70, 0.33, 0.33])
HAIR = np.array([0.2, 0.13, 0.08])
HAIRLINE_ABOVE_BROWS_MM = 45.0
# Light from above and the front: the underside of the jaw is in shadow, as
# in most photos, so the chin has an edge a detector can see.
TOP_LIGHT = (0.1, -0.3, 0.3, 0.1, 0.0, 0.0, 0.0, 0.0, 0.0)
# The scene camera: MGCNet's crop camera widened so the head has room around it.
FOCAL_FACTOR = 0.7


@dataclasses.dataclass
class SyntheticFace:
    image: np.ndarray       # [H, W, 3] uint8
    landmarks: np.ndarray   # [68, 2] the model's landmark vertices, image pixels
    vertices_2d: np.ndarray  # [N, 2] every vertex, image pixels
    angles: np.ndarray      # (yaw, pitch, roll) in degrees, as head_angles gives


def _distance_to_polyline(points, polyline):
    """Distance [N] from points [N, 3] to a polyline [P, 3]."""
    best = np.full(len(points), np.inf)
    for a, b in zip(polyline[:-1], polyline[1:]):
        t = np.clip((points - a) @ (b - a) / max((b - a) @ (b - a), 1e-9), 0, 1)
        best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * (b - a)), axis=1))
    return best


def _inside_polygon(points, polygon):
    """[N] bool: 2-D points inside a closed polygon (even-odd rule)."""
    inside = np.zeros(len(points), bool)
    x, y = points[:, 0], points[:, 1]
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0)):
        crosses = (y0 > y) != (y1 > y)
        at = x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1e-9, y1 - y0)
        inside ^= crosses & (x < at)
    return inside


def synthetic_albedo(model):
    """[1, N, 3] a face a landmark detector can read the way the model's
    landmarks mean it: skin with a smooth variation, dark brows below the
    brow landmarks, dark lid margins (lashes) along the eye landmarks, red
    lips between the outer (48-59) and inner (60-67) lip contours, and hair
    above the forehead."""
    mean = model.mean_shape
    landmarks = mean[model.landmarks]
    albedo = SKIN + 0.05 * np.sin(mean / 25.0)

    def strip(indices, radius, closed=False, below=0.0):
        line = landmarks[list(indices) + ([indices[0]] if closed else [])] - [0, below, 0]
        return np.clip(1.5 - _distance_to_polyline(mean, line) / radius, 0, 1)[:, None]

    def region(indices):
        """Front vertices inside the landmarks' polygon, seen from the front."""
        outline = landmarks[list(indices)]
        front = mean[:, 2] > outline[:, 2].min() - 10.0
        return front & _inside_polygon(mean[:, :2], outline[:, :2])

    # iBUG's brow points mark the brow's upper edge: the hair lies below them.
    brows = np.maximum(strip(range(17, 22), 3.0, below=4.5), strip(range(22, 27), 3.0, below=4.5))
    lids = np.maximum(strip(range(36, 42), 0.8, closed=True),
                      strip(range(42, 48), 0.8, closed=True))
    lips = (region(range(48, 60)) & ~region(range(60, 68)))[:, None]
    hair = (mean[:, 1] > landmarks[17:27, 1].max() + HAIRLINE_ABOVE_BROWS_MM)[:, None]
    albedo = albedo * (1 - brows) + BROWS * brows
    albedo = albedo * (1 - lids) + LID_MARGINS * lids
    albedo = np.where(lips, LIPS, albedo)
    albedo = np.where(hair, HAIR, albedo)
    return np.clip(albedo, 0, 1)[np.newaxis].astype(np.float32)


def _frontal_rotation():
    return geometry.rotation_matrix(np.array(geometry.DEFAULT_POSE[:3], np.float32)).numpy()


def head_rotation(yaw, pitch, roll):
    """The camera rotation [3, 3] of a head turned by (yaw, pitch, roll)
    degrees from the frontal default pose: Ry(yaw) Rx(pitch) Rz(roll) R0."""
    yaw, pitch, roll = np.radians([yaw, pitch, roll])
    c, s = np.cos, np.sin
    ry = np.array([[c(yaw), 0, s(yaw)], [0, 1, 0], [-s(yaw), 0, c(yaw)]])
    rx = np.array([[1, 0, 0], [0, c(pitch), -s(pitch)], [0, s(pitch), c(pitch)]])
    rz = np.array([[c(roll), -s(roll), 0], [s(roll), c(roll), 0], [0, 0, 1]])
    return ry @ rx @ rz @ _frontal_rotation()


def head_angles(rotation):
    """(yaw, pitch, roll) in degrees of a camera rotation; inverts head_rotation."""
    r = rotation @ _frontal_rotation().T
    pitch = np.arcsin(-r[1, 2])
    yaw = np.arctan2(r[0, 2], r[2, 2])
    roll = np.arctan2(r[1, 0], r[1, 1])
    return np.degrees([yaw, pitch, roll])


def picture_rotation(crop_matrix, pose_delta):
    """The head rotation [3, 3] in the picture's camera of a pose fitted on
    a crop: the crop is a similarity of the picture (crop_matrix [2, 3]),
    so its in-plane rotation is undone."""
    theta = np.arctan2(crop_matrix[1, 0], crop_matrix[0, 0])
    c, s = np.cos(theta), np.sin(theta)
    in_plane = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    pose = geometry.absolute_pose(np.asarray(pose_delta, np.float32)[np.newaxis]).numpy()
    return in_plane.T @ geometry.rotation_matrix(pose[:, :3]).numpy()[0]


def paint_eyeballs(image, mask):
    """The model has holes for the eyes: white eyeballs with a dark iris."""
    holes = ndimage.binary_fill_holes(mask) & ~mask
    labels, count = ndimage.label(holes)
    for label in range(1, count + 1):
        rows, cols = np.nonzero(labels == label)
        centre = np.array([rows.mean(), cols.mean()])
        radius = 0.45 * (rows.max() - rows.min() + 1)
        iris = np.hypot(rows - centre[0], cols - centre[1]) < radius
        image[rows, cols] = np.where(iris[:, None], [0.25, 0.17, 0.1], [0.9, 0.88, 0.85])


def render_scene(model, identity, expression, angles, background, lighting=TOP_LIGHT,
                 size=448, focal_factor=FOCAL_FACTOR):
    """A size x size photo of the model's face, its landmarks centred.

    Args:
      model: a FaceModel (one without an albedo basis is fine: the albedo is
        painted, synthetic_albedo).
      identity, expression: coefficient vectors of the model's ranks.
      angles: (yaw, pitch, roll) of the head in degrees.
      background: [size, size, 3] floats in [0, 1].
      lighting: 9 SH bands, the same for the three colours.

    Returns:
      SyntheticFace.
    """
    layout = CoefficientLayout.for_model(model)
    rotation = head_rotation(*angles)
    extrinsic = np.concatenate([rotation, [[0.0], [0.0], [geometry.DEFAULT_POSE[5]]]], 1)
    pose = geometry.pose_from_extrinsic(extrinsic).astype(np.float32)
    # Translate so the mean face's landmark centre sits at the image centre.
    pose[3:] -= (rotation @ model.mean_shape[model.landmarks].mean(0)) * [1, 1, 0]
    delta = pose - np.asarray(geometry.DEFAULT_POSE, np.float32)
    delta[:3] = (delta[:3] + np.pi) % (2 * np.pi) - np.pi
    parts = [np.asarray(identity), np.zeros(layout.albedo), np.asarray(expression), delta,
             np.tile(lighting, 3)]
    coefficients = layout.join(*[np.asarray(p, np.float32)[np.newaxis] for p in parts])
    full = geometry.MGCNET_INTRINSICS.scaled(size, size)
    intrinsics = dataclasses.replace(full, focal=full.focal * focal_factor)
    render = render_face(coefficients, model, intrinsics=intrinsics,
                         albedo=synthetic_albedo(model))
    mask = render.mask.numpy()[0]
    image = np.clip(mask * render.image.numpy()[0] + (1 - mask) * background, 0, 1)
    paint_eyeballs(image, mask[..., 0] > 0)
    points = geometry.transform_points(render.vertices, render.pose)
    return SyntheticFace(image=(image * 255).round().astype(np.uint8),
                         landmarks=render.landmarks_2d.numpy()[0],
                         vertices_2d=geometry.project_to_image(points, intrinsics).numpy()[0],
                         angles=np.asarray(angles, np.float64))


def flag_background(size=448):
    """The flag in the astronaut picture's top-left corner (no face in it),
    enlarged to size x size, floats in [0, 1]."""
    photo = load_image(paths.data_file("demo_images/astronaut_eileen_collins_public_domain.png"))
    scale = -(-size // 150)
    return np.repeat(np.repeat(photo[:150, :150], scale, 0), scale, 1)[:size, :size] / 255.0


def random_scene(model, rng, background):
    """A SyntheticFace with random identity, expression, head pose (yaw
    within 35, pitch 15, roll 10 degrees) and light near TOP_LIGHT."""
    layout = CoefficientLayout.for_model(model)
    identity = rng.normal(0, 0.8, layout.identity)
    expression = np.clip(rng.normal(0, 0.1, layout.expression), 0, 1)
    angles = rng.uniform([-35, -15, -10], [35, 15, 10])
    light = np.array(TOP_LIGHT)
    light[:4] += rng.uniform([-0.05, -0.1, -0.1, -0.2], [0.1, 0.15, 0.05, 0.1])
    if rng.random() < 0.5:
        background = background[:, ::-1]
    return render_scene(model, identity, expression, angles, background, light)


def detected_scenes(model, count, seed):
    """Renders `count` random scenes (random_scene, seeded) and runs the
    pipeline's detection on each. Yields, per render, (SyntheticFace, the
    PreparedFace of its largest face, or None when no face was found)."""
    rng = np.random.default_rng(seed)
    background = flag_background()
    for _ in range(count):
        face = random_scene(model, rng, background)
        try:
            found = prepare_faces(face.image, landmarks="detect", largest_face_only=True)[0]
        except NoFaceError:
            found = None
        yield face, found
