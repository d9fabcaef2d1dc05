"""Synthetic multi-view training tuples with known answers.

One tuple is one random face (identity, expression, albedo, SH light of a
face model) seen by three cameras around it, as a multi-view rig would see
it at one instant: only the pose differs between the views. The target is
near frontal; source 1 (the left crop on disk) is turned as MGCNet's
LEFT_POSE test view (ry < 0: the face looks towards the image's left,
positive yaw in mgc.eval.synthetic.head_angles) and source 2 the other way,
each by 10-35 degrees from the target, with small pitch and roll. Each view is rendered with MGCNet's 224 crop camera over a
window of a real photo, framed as the 5-point alignment frames a real crop
(the face's 5 alignment points centred on std_224_bfm09's centre, the
default pose's distance).

    tuples = SyntheticTuples(model, backgrounds="photos/", seed=0)
    for tuple_, truth in tuples.generate(10): ...
    tuples.write("data/synthetic", 1000)          # the original's layout
    batches = tuples.dataset(1000, batch_size=8)  # the reader's elements

The rendering pieces (painted albedo for models without an albedo basis,
head rotations, eyeballs in the eye holes, the default light) are
mgc.eval.synthetic's.
"""
import dataclasses
import os

import cv2
import numpy as np

from mgc import geometry, paths
from mgc.data import layout
from mgc.eval import synthetic as scenes
from mgc.facemodel import CoefficientLayout
from mgc.preprocess import STD_224_BFM09, ImageError, load_image
from mgc.preprocess.inputs import IMAGE_EXTENSIONS
from mgc.render import render_face

FLAG = 2  # multi-view tuple with exact landmark correspondences
DEFAULT_BACKGROUNDS = "demo_images"  # under the data root
SUBFOLDER = "synthetic"
TRUTH_SUFFIX = "_truth.npz"
BACKGROUND_SIDE = 512  # pictures are kept at most this large (short side)
CROP_CENTRE = STD_224_BFM09.mean(axis=0)  # where the alignment puts the 5 points' centre
# iBUG-68 (0-based) indices averaged into the 5 alignment points (alignment.five_points).
_EYES = (slice(36, 42), slice(42, 48))
_NOSE_AND_MOUTH = (33, 48, 54)


class SyntheticSetupError(ValueError):
    """The generator cannot work with what it was given; the message says why."""


class BackgroundError(SyntheticSetupError):
    """The background folder has no readable pictures; the message names it."""


@dataclasses.dataclass(frozen=True)
class SyntheticSettings:
    """The ranges the random tuples are drawn from (degrees, mm, pixels)."""
    target_yaw: float = 5.0             # target: uniform in +-this
    target_pitch: float = 5.0
    target_roll: float = 3.0
    source_yaw: tuple = (10.0, 35.0)    # sources: turned this far from the target
    source_pitch: float = 5.0           # and tilted up to this much more
    source_roll: float = 3.0
    identity_sigma: float = 0.8         # coefficients are in standard deviations
    albedo_sigma: float = 0.8
    expression_components: int = 3     # active expression components per face
    expression_max_mm: float = 8.0      # the largest displacement any one may cause
    shift_pixels: float = 4.0           # framing jitter of each view
    distance_jitter: float = 0.05       # relative, each view
    background_window: tuple = (0.4, 1.0)  # of the picture's short side


@dataclasses.dataclass
class SyntheticTruth:
    """What a tuple was made from, views in the tuple's order.

    coefficients: float32 [3, layout.size]: identity, albedo, expression
      (equal in the three views), pose delta, lighting (equal).
    poses: float32 [3, 6] absolute [rz, ry, rx, tx, ty, tz].
    angles: float64 [3, 3] (yaw, pitch, roll) degrees of each view.
    landmarks: float32 [3, 68, 2] projected model landmarks (= the tuple's).
    depths: float32 [3, 224, 224] camera z in mm of the fore mesh
      (front_only), 0 on background, as MGCNet's training depth maps.
    masks: bool [3, 224, 224] the pixels drawn: the rendered mesh and the
      eyeballs painted into the eye holes of models that have them.
    backgrounds: uint8 [3, 224, 224, 3] each view's picture before the face.
    albedo: float32 [N, 3] the per-vertex albedo rendered.
    background_file: the picture the backgrounds were cut from.
    """
    coefficients: np.ndarray
    poses: np.ndarray
    angles: np.ndarray
    landmarks: np.ndarray
    depths: np.ndarray
    masks: np.ndarray
    backgrounds: np.ndarray
    albedo: np.ndarray
    background_file: str

    def save(self, path):
        np.savez_compressed(path, **{field.name: getattr(self, field.name)
                                     for field in dataclasses.fields(self)})


# --- Backgrounds --------------------------------------------------------------

def default_background_folder(data_root=None):
    """The data root's demo_images (mgc.paths)."""
    return os.path.join(paths.data_root(data_root), DEFAULT_BACKGROUNDS)


def background_files(folder):
    """The pictures under `folder` (its subfolders too), sorted."""
    if not os.path.isdir(folder):
        raise BackgroundError(f"background folder {folder} does not exist or is not a folder")
    found = []
    for root, folders, files in os.walk(folder):
        folders.sort()
        found += [os.path.join(root, name) for name in sorted(files)
                  if name.lower().endswith(IMAGE_EXTENSIONS)]
    if not found:
        raise BackgroundError(f"no pictures in the background folder {folder} (looked for "
                                  f"{', '.join(IMAGE_EXTENSIONS)}, subfolders included)")
    return found


def load_backgrounds(folder):
    """[(path, uint8 picture)] of every picture under `folder`, shrunk so
    their short side is at most BACKGROUND_SIDE (windows are resized to 224
    anyway). An unreadable picture is a BackgroundError naming it."""
    pictures = []
    for path in background_files(folder):
        try:
            image = load_image(path)
        except ImageError as error:
            raise BackgroundError(f"background picture {path} cannot be read: {error}") from None
        scale = BACKGROUND_SIDE / min(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        pictures.append((path, image))
    return pictures


def _background_window(rng, picture, window, size=layout.CROP, flip=False):
    """A random square window of the picture, resized to size x size."""
    short = min(picture.shape[:2])
    side = max(int(round(short * rng.uniform(*window))), 1)
    top = rng.integers(0, picture.shape[0] - side + 1)
    left = rng.integers(0, picture.shape[1] - side + 1)
    crop = picture[top:top + side, left:left + side]
    interpolation = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    crop = cv2.resize(crop, (size, size), interpolation=interpolation)
    return crop[:, ::-1] if flip else crop


# --- The generator ------------------------------------------------------------

class SyntheticTuples:
    """Random multi-view tuples of one face model (see the module docstring).

    Tuple i depends only on (seed, i): the same seed gives the same tuples,
    and the first n of a longer run are the n of a shorter one.
    """

    def __init__(self, model, backgrounds=None, seed=0, data_root=None,
                 settings=SyntheticSettings()):
        """
        Args:
          model: a FaceModel with all 68 landmarks (any layout; one without
            an albedo basis gets mgc.eval.synthetic's painted albedo).
          backgrounds: a folder of pictures (subfolders included), or what
            load_backgrounds returned for one; None: the data root's
            demo_images.
          seed: the random seed.
          data_root: data root override (mgc.paths) for the default backgrounds.
          settings: SyntheticSettings.

        Raises:
          SyntheticSetupError: a model lacking landmarks; BackgroundError:
            a background folder without (readable) pictures.
        """
        missing = np.nonzero(np.asarray(model.landmarks) < 0)[0]
        if len(missing):
            raise SyntheticSetupError(
                f"face model {model.name!r} lacks landmarks {', '.join(map(str, missing))}: "
                "the tuples need all 68")
        self.model, self.seed, self.settings = model, int(seed), settings
        self.layout = CoefficientLayout.for_model(model)
        if backgrounds is None or isinstance(backgrounds, (str, os.PathLike)):
            backgrounds = load_backgrounds(backgrounds or default_background_folder(data_root))
        self.backgrounds = list(backgrounds)
        self._painted_albedo = scenes.synthetic_albedo(model)[0] if model.albedo_rank == 0 else None
        self._expression_limits = _expression_limits(model, settings.expression_max_mm)
        self._alignment_points = _alignment_points(model)
        self._skin_triangles = _skin_triangles(model, self._painted_albedo)

    def generate(self, count, start=0):
        """Yields (layout.Tuple, SyntheticTruth) for tuples start..start+count-1."""
        for index in range(start, start + count):
            yield self.make(index)

    def make(self, index):
        """Tuple `index`: (layout.Tuple, SyntheticTruth)."""
        rng = np.random.default_rng([self.seed, index])
        face = self._random_face(rng)
        angles = self._random_angles(rng)
        poses = np.stack([self._framed_pose(rng, view_angles) for view_angles in angles])
        coefficients = self._coefficients(face, poses)
        path, picture = self.backgrounds[rng.integers(len(self.backgrounds))]
        flip = bool(rng.random() < 0.5)
        backgrounds = np.stack([_background_window(rng, picture, self.settings.background_window,
                                                   flip=flip) for _ in range(layout.VIEWS)])
        albedo = np.broadcast_to(face["albedo"], (layout.VIEWS,) + face["albedo"].shape) \
            if face["albedo"] is not None else None
        render = render_face(coefficients, self.model, albedo=albedo)
        fore = render_face(coefficients, self.model, albedo=albedo, front_only=True)
        images, masks = self._composite(render, backgrounds)
        landmarks = render.landmarks_2d.numpy().astype(np.float32)
        name = f"{SUBFOLDER}/{index:06d}"
        tuple_ = layout.Tuple(
            images=images, skins=self._skin_maps(render), landmarks=landmarks,
            intrinsics=np.repeat(geometry.MGCNET_INTRINSICS.matrix()[np.newaxis], 3, axis=0),
            flag=FLAG, name=name)
        truth = SyntheticTruth(
            coefficients=coefficients, poses=render.pose.numpy(), angles=angles,
            landmarks=landmarks, depths=fore.depth.numpy()[..., 0], masks=masks,
            backgrounds=backgrounds, albedo=np.asarray(render.albedo)[0], background_file=path)
        return tuple_, truth

    # Random draws ---------------------------------------------------------

    def _random_face(self, rng):
        """Identity, expression, albedo (coefficients or per-vertex) and light."""
        s, layout_ = self.settings, self.layout
        identity = np.clip(rng.normal(0, s.identity_sigma, layout_.identity), -3, 3)
        expression = np.zeros(layout_.expression)
        active = rng.choice(layout_.expression, min(s.expression_components, layout_.expression),
                            replace=False)
        expression[active] = rng.uniform(0, 1, len(active)) * self._expression_limits[active]
        albedo_coefficients = np.clip(rng.normal(0, s.albedo_sigma, layout_.albedo), -3, 3)
        albedo = None
        if self._painted_albedo is not None:
            # One skin tone per face: brightness and a slight tint.
            tone = rng.uniform(0.6, 1.0) * rng.uniform(0.95, 1.05, 3)
            albedo = np.clip(self._painted_albedo * tone, 0, 1).astype(np.float32)
        return dict(identity=identity, expression=expression, albedo_coefficients=albedo_coefficients,
                    albedo=albedo, lighting=_random_light(rng))

    def _random_angles(self, rng):
        """(yaw, pitch, roll) [3, 3] of target, source 1 (positive yaw), source 2."""
        s = self.settings
        target = rng.uniform([-s.target_yaw, -s.target_pitch, -s.target_roll],
                             [s.target_yaw, s.target_pitch, s.target_roll])
        sources = []
        for side in (1, -1):
            turn = np.array([side * rng.uniform(*s.source_yaw),
                             rng.uniform(-s.source_pitch, s.source_pitch),
                             rng.uniform(-s.source_roll, s.source_roll)])
            sources.append(target + turn)
        return np.stack([target] + sources)

    def _framed_pose(self, rng, angles):
        """The absolute pose [6] of a head at `angles` framed as an aligned
        crop: the 5 alignment points' centre on the template's, jittered."""
        s = self.settings
        rotation = scenes.head_rotation(*angles)
        distance = geometry.DEFAULT_POSE[5] * rng.uniform(1 - s.distance_jitter,
                                                          1 + s.distance_jitter)
        centre = CROP_CENTRE + rng.uniform(-s.shift_pixels, s.shift_pixels, 2)
        intrinsics = geometry.MGCNET_INTRINSICS
        rotated = rotation @ self._alignment_points
        depth = rotated[2] + distance
        # Solve K (R c + t) ~ centre for t_x, t_y at the chosen distance.
        offset = (centre - [intrinsics.cx, intrinsics.cy]) * depth / intrinsics.focal
        translation = np.array([offset[0] - rotated[0], offset[1] - rotated[1], distance])
        extrinsic = np.concatenate([rotation, translation[:, np.newaxis]], axis=1)
        return geometry.pose_from_extrinsic(extrinsic)

    def _coefficients(self, face, poses):
        """[3, layout.size] float32: the face's coefficients at each pose."""
        delta = poses - np.asarray(geometry.DEFAULT_POSE)
        delta[:, :3] = (delta[:, :3] + np.pi) % (2 * np.pi) - np.pi
        shared = [np.broadcast_to(face[name], (layout.VIEWS, len(face[name])))
                  for name in ("identity", "albedo_coefficients", "expression", "lighting")]
        return self.layout.join(shared[0], shared[1], shared[2], delta, shared[3]).numpy()

    # Pictures -------------------------------------------------------------

    def _composite(self, render, backgrounds):
        """(uint8 images [3, 224, 224, 3], drawn masks bool [3, 224, 224])."""
        images, masks = [], []
        for view in range(layout.VIEWS):
            mask = render.mask.numpy()[view]
            image = mask * render.image.numpy()[view] + (1 - mask) * backgrounds[view] / 255.0
            image = np.clip(image, 0, 1)
            before = image.copy()
            scenes.paint_eyeballs(image, mask[..., 0] > 0)
            eyeballs = np.any(image != before, axis=-1)
            images.append((image * 255).round().astype(np.uint8))
            masks.append((mask[..., 0] > 0) | eyeballs)
        return np.stack(images), np.stack(masks)

    def _skin_maps(self, render):
        """uint8 [3, 224, 224, 3]: 255 where a drawn triangle is skin
        (_skin_triangles), else 0."""
        ids = render.triangle_ids.numpy()
        skin = (ids >= 0) & self._skin_triangles[np.maximum(ids, 0)]
        return np.repeat((skin * 255).astype(np.uint8)[..., np.newaxis], 3, axis=-1)

    # Output ---------------------------------------------------------------

    def write(self, dataset_dir, count, list_name="train", overwrite=False, wrap=None):
        """Writes `count` tuples in the original layout: `<dataset_dir>/
        <list_name>.txt` and, per tuple, synthetic/<index>.jpg, _skin.jpg,
        _cam.txt (mgc.data.layout) and _truth.npz (SyntheticTruth).

        The list file is written last, so an interrupted run leaves no list.
        With overwrite, files of the same names are replaced and nothing
        else is removed.

        Args:
          wrap: applied to the (tuple, truth) iterator, e.g. a progress bar.

        Returns:
          the list file's path.

        Raises:
          SyntheticSetupError: dataset_dir is a file, or not empty and not
            overwrite.
        """
        check_output_folder(dataset_dir, overwrite)
        entries = []
        pairs = self.generate(count)
        for tuple_, truth in (wrap(pairs) if wrap else pairs):
            subfolder, frame_id = tuple_.name.split("/")
            layout.write_tuple(dataset_dir, subfolder, frame_id, tuple_)
            truth.save(os.path.join(dataset_dir, subfolder, frame_id + TRUTH_SUFFIX))
            entries.append((tuple_.flag, subfolder, frame_id))
        return layout.write_list(dataset_dir, entries, list_name)

    def dataset(self, count, batch_size, drop_remainder=False):
        """A tf.data.Dataset of `count` tuples in batches, with the reader's
        element structure: images, skins uint8 [B, 3, 224, 224, 3],
        landmarks float32 [B, 3, 68, 2], intrinsics float32 [B, 3, 3, 3],
        flag int32 [B], name string [B]."""
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        def elements():
            for tuple_, _ in self.generate(count):
                yield dict(images=tuple_.images, skins=tuple_.skins, landmarks=tuple_.landmarks,
                           intrinsics=tuple_.intrinsics, flag=np.int32(tuple_.flag),
                           name=tuple_.name)

        views = (layout.VIEWS, layout.CROP, layout.CROP, 3)
        signature = dict(
            images=tf.TensorSpec(views, tf.uint8), skins=tf.TensorSpec(views, tf.uint8),
            landmarks=tf.TensorSpec((layout.VIEWS, layout.POINTS, 2), tf.float32),
            intrinsics=tf.TensorSpec((layout.VIEWS, 3, 3), tf.float32),
            flag=tf.TensorSpec((), tf.int32), name=tf.TensorSpec((), tf.string))
        return tf.data.Dataset.from_generator(elements, output_signature=signature).batch(
            batch_size, drop_remainder=drop_remainder)


def check_output_folder(folder, overwrite=False):
    """Refuses a path that is a file, or a folder with entries unless overwrite."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise SyntheticSetupError(f"{folder} exists and is not a folder")
    entries = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    if entries and not overwrite:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise SyntheticSetupError(f"{folder} is not empty ({len(entries)} entries: {shown}); "
                                  "choose a new or empty folder, or pass --overwrite")


def _random_light(rng):
    """27 SH coefficients (R, G, B x 9): mgc.eval.synthetic's light from above
    and the front, varied, with a slight colour cast."""
    light = np.array(scenes.TOP_LIGHT)
    light[:4] += rng.uniform([-0.1, -0.15, -0.15, -0.25], [0.15, 0.2, 0.1, 0.15])
    bands = np.tile(light, (3, 1))
    bands[:, 0] += rng.uniform(-0.05, 0.05, 3)  # the cast: ambient per colour
    return bands.reshape(-1)


def _expression_limits(model, max_mm):
    """[K] the largest weight of each expression component: 1 (a blendshape
    fully on), or less where the component would move a vertex more than
    max_mm (a PCA component in its own units)."""
    basis = model.expression_basis.reshape(model.num_vertices, 3, -1)
    reach = np.linalg.norm(basis, axis=1).max(axis=0)
    return np.minimum(1.0, max_mm / np.maximum(reach, 1e-9))


def _skin_triangles(model, painted_albedo=None):
    """[T] bool: triangles whose corners' skin_mask averages above 0.5 and,
    with a painted albedo, are painted skin (not hair, brows, lips)."""
    skin = model.skin_mask.astype(np.float64)
    if painted_albedo is not None:
        skin = skin * (np.abs(painted_albedo - scenes.SKIN).max(axis=1) < 0.15)
    return skin[model.triangles].mean(axis=1) > 0.5


def _alignment_points(model):
    """The model-frame centre [3] of the mean face's 5 alignment points."""
    points = model.mean_shape[model.landmarks]
    five = [points[_EYES[0]].mean(0), points[_EYES[1]].mean(0)] + [
        points[i] for i in _NOSE_AND_MOUTH]
    return np.mean(five, axis=0)
