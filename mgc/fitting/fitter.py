"""Analysis-by-synthesis fitting of face-model coefficients to aligned crops,
no network weights needed.

Coarse to fine, on MGCNet's 224x224 crop camera:
  1. a closed-form pose from the landmarks (initial_pose);
  2. landmarks: pose, then identity and expression, with a robust (Huber)
     landmark loss, jaw landmarks sliding along the face's silhouette, and a
     Gaussian prior on the coefficients;
  3. photometric: lighting and albedo, then everything, over the rendered
     face's skin pixels (skin in the model and in the photo), landmarks kept.
With the face mesh's 468 points (mesh_points) and a correspondence for the
model (mesh_targets), those points replace the 68 as targets, each at its
fixed vertex, and the closed-form pose comes from their 3-D positions (the
mesh's depth), which hold the head's yaw where 2-D points at a profile do
not; points whose vertex faces away from the camera are left out.
The result holds the 68 points three ways: the model's fixed landmarks, the
same with the jaw on the outline (2-D annotations), and the vertices in the
BFM09 keypoints' convention (keypoints.py; AFLW2000-3D's fixed 3-D jaw).
A model without an albedo basis (ICT-FaceKit) gets a per-vertex albedo with a
smoothness prior over mesh edges. Several faces are fitted as one batch.
"""
import dataclasses
from typing import Optional

import numpy as np
import tensorflow as tf

from mgc import geometry
from mgc.facemodel import CoefficientLayout, FaceModelError, decode_shape
from mgc.facemodel.coefficients import LIGHTING_SIZE
from mgc.fitting import keypoints as keypoint_lib
from mgc.fitting import landmarks as landmark_lib
from mgc.fitting import mesh_targets
from mgc.fitting.initial_pose import initial_pose_delta
from mgc.fitting.skin import skin_probability
from mgc.render import render_face


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Steps and weights; the defaults fit one face in a few seconds."""

    pose_steps: int = 40
    landmark_steps: int = 400
    appearance_steps: int = 40
    joint_steps: int = 80
    learning_rate: float = 0.01
    landmark_sigma: float = 0.5      # pixels: weight of the landmarks against the prior
    huber_delta: float = 4.0         # pixels: beyond this the loss grows linearly
    jaw_weight: float = 1.0          # relative weight of the 17 jaw landmarks
    detail_weight: float = 5.0       # nose and inner lips: MGCNet's lm_detail_weight
    expression_prior: float = 0.3    # relative weight of the expression prior
    photometric_weight: float = 300.0
    albedo_smoothness: float = 200.0
    albedo_prior: float = 2.0
    contour_update_every: int = 40
    # Mesh targets: their total weight relative to the 68 landmarks' (the
    # 68 are then left out: the mesh's own 68 are read off the same points).
    mesh_weight: float = 1.0
    # The mesh's depth against the model's, relative to their means, in
    # pixels at the face's distance: the pose cue that 2-D points at large
    # yaw lack. Weight relative to the mesh points' 2-D term.
    mesh_depth_weight: float = 0.0
    # Mesh points whose model vertex does not face the camera (camera-space
    # normal z above -mesh_facing, OpenCV camera: z points away) are left out,
    # re-decided every contour_update_every steps: the mesh model's guesses
    # for hidden points, and its outline points (which follow the visible
    # silhouette, not a fixed vertex), pull a turned head towards frontal.
    # None: all points. On the 66 AFLW2000-3D subset faces turned 30-90
    # degrees (140 steps, scored at keypoints_2d): 6.44 / 11.87 % NME with
    # 0.2, 6.45 / 12.00 with all points; the fitted yaw at 60-90 degrees is
    # 52.8 degrees against 51.7 (truth 71.9): the mesh's own points are
    # turned too little, and this does not mend that.
    mesh_facing: Optional[float] = 0.2
    # A face the fit finds turned more than this many degrees of yaw follows
    # the profile correspondence (mesh_targets, calibrated on renders turned
    # 55-88 degrees), re-decided with mesh_facing; None: the front table
    # always. On the rendered ICT heads of tests/test_face_mesh.py turned 65
    # and -75 degrees the fitted yaw goes from 60.1 and -61.3 to 65.2 and
    # -66.7; on the AFLW2000-3D subset (140 steps) the fit's NME from 3.30 /
    # 5.60 / 10.45 % to 3.30 / 5.65 / 10.10.
    mesh_profile_yaw: Optional[float] = 55.0

    STAGES = ("pose_steps", "landmark_steps", "appearance_steps", "joint_steps")

    @property
    def total_steps(self):
        return sum(getattr(self, stage) for stage in self.STAGES)

    def with_total_steps(self, total):
        """These settings with `total` steps spread over the stages in the
        proportions they have now (largest remainders, so the counts add up
        exactly); None: unchanged."""
        if total is None:
            return self
        if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 0:
            raise ValueError(f"total steps must be an int >= 0, got {total!r}")
        weights = np.array([getattr(self, stage) for stage in self.STAGES], np.float64)
        exact = weights * total / max(weights.sum(), 1.0)
        counts = np.floor(exact).astype(int)
        for index in np.argsort(-(exact - counts), kind="stable")[:total - counts.sum()]:
            counts[index] += 1
        return dataclasses.replace(self, **dict(zip(self.STAGES, (int(c) for c in counts))))


@dataclasses.dataclass
class FitResult:
    """Fitted faces; everything batched over the B input crops."""

    coefficients: np.ndarray   # [B, layout.size], pose delta w.r.t. DEFAULT_POSE
    layout: CoefficientLayout
    vertex_albedo: np.ndarray  # [B, N, 3] the albedo used (model's or estimated)
    render: object             # FaceRender at the crop camera
    # [B, 68, 2] the model's fixed landmark vertices, crop pixels; NaN rows
    # where the model has no such landmark (here and below).
    landmarks_2d: np.ndarray
    # [B, 68, 2] the same with the 17 jaw points on the face's outline, where
    # 2D annotations (300-W, dlib) put them: each is the outline vertex
    # nearest its target (when that is nearer than its own vertex); equal to
    # landmarks_2d elsewhere and for 5-point targets. The fit itself slides
    # only the side jaw points: sliding the chin too made the AFLW2000-3D
    # scores and the rendered test face's pitch worse.
    silhouette_landmarks_2d: np.ndarray
    landmark_error: np.ndarray  # [B] mean distance to the targets (pixels)
    # [B, 68, 2] the 68 points in the BFM09 keypoints' convention, which
    # AFLW2000-3D marks (a fixed 3-D jaw as deep as BFM's;
    # keypoints.keypoint_vertices), crop pixels: what reconstruct writes to
    # <stem>_lm68.txt. landmarks_2d for models with BFM's landmarks.
    keypoints_2d: Optional[np.ndarray] = None


# Scales of the optimised variables: Adam takes steps of about learning_rate
# in scaled units, so these set the step of each quantity.
_POSE_SCALE = np.array([1.0, 1.0, 1.0, 100.0, 100.0, 1000.0], np.float32)
_SCALES = dict(identity=10.0, expression=5.0, albedo=10.0, lighting=5.0, vertex_albedo=3.0)


class _Problem:
    """Variables, losses and compiled optimisation steps for batches of one
    shape. Inputs live in variables too, so later batches reuse the traced
    steps (reset) instead of compiling them again."""

    def __init__(self, model, batch, num_targets, settings, mesh_vertices=None):
        self.model, self.settings = model, settings
        self.layout = CoefficientLayout.for_model(model)
        selection = landmark_lib.selection_matrix(num_targets, model.landmarks >= 0)
        self.selection = tf.constant(selection)
        self.landmark_weights = tf.constant(
            landmark_lib.landmark_weights(selection, settings.jaw_weight,
                                       settings.detail_weight))
        self.vertex_skin = tf.constant(model.skin_mask)
        self.edges = tf.constant(landmark_lib.mesh_edges(model.triangles))
        self.per_vertex_albedo = self.layout.albedo == 0
        # 68 targets: side jaw points slide while fitting; all 17 in the output.
        self.sliders = None
        if num_targets == 68:
            self.sliders = (landmark_lib.ContourSlider(model),
                            landmark_lib.ContourSlider(model, landmark_lib.JAW))
        variable = lambda shape, dtype=tf.float32: tf.Variable(  # noqa: E731
            tf.zeros(shape, dtype), trainable=False)
        self.crops = variable([batch, 224, 224, 3])
        self.targets = variable([batch, num_targets, 2])
        self.valid = variable([batch, num_targets])
        self.skin = variable([batch, 224, 224])
        self.indices = variable([batch, 68], tf.int32)
        self.mesh_vertices = None
        if mesh_vertices is not None:  # the 68 give way to the mesh's points
            # [2, P]: the front and the profile correspondence; each face's
            # current one in mesh_vertices [B, P].
            self.mesh_tables = tf.constant(np.stack(mesh_vertices), tf.int32)
            points = self.mesh_tables.shape[1]
            self.mesh_vertices = variable([batch, points], tf.int32)
            self.landmark_weights = tf.zeros_like(self.landmark_weights)
            self.mesh_targets = variable([batch, points, 2])
            self.mesh_depth = variable([batch, points])
            self.mesh_valid = variable([batch, points])
            self.mesh_facing = variable([batch, points])
        self.identity = tf.Variable(tf.zeros([batch, self.layout.identity]))
        self.expression = tf.Variable(tf.zeros([batch, self.layout.expression]))
        self.albedo = tf.Variable(tf.zeros([batch, self.layout.albedo]))
        self.lighting = tf.Variable(tf.zeros([batch, LIGHTING_SIZE]))
        self.pose = tf.Variable(tf.zeros([batch, 6]))
        self.vertex_albedo = tf.Variable(tf.zeros([batch, model.num_vertices, 3]))
        shape = [self.pose, self.identity, self.expression]
        appearance = [self.lighting, self.albedo, self.vertex_albedo]
        self.stages = [
            (self.make_step([self.pose], False), settings.pose_steps),
            (self.make_step(shape, False), settings.landmark_steps),
            (self.make_step(appearance, True), settings.appearance_steps),
            (self.make_step(shape + appearance, True), settings.joint_steps),
        ]

    def reset(self, crops, targets, skin, initial_pose, initial_coefficients=None,
              mesh_targets=None):
        """Loads a new batch and starts its unknowns from scratch, or from
        `initial_coefficients` [B, layout.size] (e.g. a network's)."""
        self.crops.assign(crops)
        if self.mesh_vertices is not None:
            self.mesh_targets.assign(np.nan_to_num(mesh_targets[..., :2]))
            self.mesh_depth.assign(np.nan_to_num(mesh_targets[..., 2]))
            self.mesh_valid.assign(np.all(np.isfinite(mesh_targets), -1).astype(np.float32))
            self.mesh_facing.assign(tf.ones_like(self.mesh_facing))
            self.mesh_vertices.assign(tf.tile(self.mesh_tables[:1], [len(crops), 1]))
        self.targets.assign(np.nan_to_num(targets))
        self.valid.assign(np.all(np.isfinite(targets), -1).astype(np.float32))
        self.skin.assign(skin)
        self.indices.assign(np.tile(self.model.landmarks[None], [len(crops), 1]))
        for unknown in (self.identity, self.expression, self.albedo, self.lighting,
                        self.vertex_albedo):
            unknown.assign(tf.zeros_like(unknown))
        self.pose.assign(initial_pose / _POSE_SCALE)
        if initial_coefficients is not None:
            self._start_from(initial_coefficients)
        for optimizer in self.optimizers:  # fresh moments and step count, same rate
            for state in optimizer.variables:
                if state is not optimizer.learning_rate and "learning_rate" not in state.name:
                    state.assign(tf.zeros_like(state))

    def _start_from(self, coefficients):
        parts = self.layout.split(coefficients)
        self.pose.assign(parts["pose"] / _POSE_SCALE)
        for name in ("identity", "expression", "albedo", "lighting"):
            getattr(self, name).assign(parts[name] / _SCALES[name])

    # -- the model's quantities from the variables ---------------------------

    def coefficients(self):
        return self.layout.join(self.identity * _SCALES["identity"], self.albedo * _SCALES["albedo"],
                                self.expression * _SCALES["expression"], self.pose * _POSE_SCALE,
                                self.lighting * _SCALES["lighting"])

    def albedo_override(self):
        if not self.per_vertex_albedo:
            return None
        mean = tf.constant(self.model.mean_albedo)[tf.newaxis]
        return tf.clip_by_value(mean + self.vertex_albedo * _SCALES["vertex_albedo"], 0.0, 1.0)

    def projected_landmarks(self, select=True, indices=None):
        """Projections [B, P, 2] of the current landmark vertices (jaw points
        slid to the silhouette; or `indices` [B, 68]), as targets (select) or
        all 68; and vertices."""
        parts = self.layout.split(self.coefficients())
        vertices = decode_shape(self.model, parts["identity"], parts["expression"])
        indices = self.indices if indices is None else indices
        # Landmarks the model lacks (-1) read vertex 0 instead: their
        # selection columns and validity are 0, and NaN here would poison
        # the selection's sums.
        points = tf.gather(vertices, tf.maximum(indices, 0), batch_dims=1)  # [B, 68, 3]
        if select:
            points = tf.einsum("pk,bkc->bpc", self.selection, points)
        pose = geometry.absolute_pose(parts["pose"])
        return geometry.project_to_image(geometry.transform_points(points, pose)), vertices

    # -- losses ---------------------------------------------------------------

    def _huber(self, projected, targets):
        distance = tf.sqrt(tf.reduce_sum(tf.square(projected - targets), -1) + 1e-6)
        delta = self.settings.huber_delta
        return tf.where(distance < delta, 0.5 * tf.square(distance),
                        delta * (distance - 0.5 * delta))

    def landmark_loss(self):
        projected, vertices = self.projected_landmarks()
        weighted = self._huber(projected, self.targets) * self.landmark_weights * self.valid
        loss = tf.reduce_sum(weighted, -1)
        if self.mesh_vertices is not None:
            loss += self.mesh_loss(vertices)
        return loss / self.settings.landmark_sigma ** 2

    def mesh_loss(self, vertices):
        """The mesh points' Huber term, weighted as mesh_weight x 68 points."""
        pose = geometry.absolute_pose(self.layout.split(self.coefficients())["pose"])
        points = geometry.transform_points(tf.gather(vertices, self.mesh_vertices, batch_dims=1),
                                           pose)
        projected = geometry.project_to_image(points)
        per_point = self.settings.mesh_weight * 68.0 / float(self.mesh_vertices.shape[1])
        used = self.mesh_valid * self.mesh_facing
        loss = tf.reduce_sum(self._huber(projected, self.mesh_targets) * used, -1)
        if self.settings.mesh_depth_weight:
            depth = self._relative(points[..., 2] * geometry.MGCNET_INTRINSICS.focal
                                   / pose[:, 5:6])
            difference = depth - self._relative(self.mesh_depth)
            loss += self.settings.mesh_depth_weight * tf.reduce_sum(
                self._huber(difference[..., tf.newaxis], 0.0) * used, -1)
        return per_point * loss

    def facing_mesh_points(self):
        """[B, P] 1 where the mesh point's model vertex faces the camera
        (FitSettings.mesh_facing), else 0."""
        parts = self.layout.split(self.coefficients())
        vertices = decode_shape(self.model, parts["identity"], parts["expression"])
        normals = tf.gather(geometry.vertex_normals(vertices, self.model.triangles),
                            self.mesh_vertices, batch_dims=1)
        rotation = geometry.rotation_matrix(geometry.absolute_pose(parts["pose"])[:, :3])
        normals_z = tf.einsum("bj,bpj->bp", rotation[:, 2], normals)
        return tf.cast(normals_z < -self.settings.mesh_facing, tf.float32)

    def chosen_mesh_tables(self):
        """[B, P] each face's correspondence: the profile table where the
        current pose turns the face more than mesh_profile_yaw degrees."""
        pose = geometry.absolute_pose(self.layout.split(self.coefficients())["pose"])
        forward = geometry.rotation_matrix(pose[:, :3])[:, :, 2]  # the face's +z, camera frame
        yaw = tf.abs(tf.atan2(forward[:, 0], -forward[:, 2])) * (180.0 / np.pi)
        profile = tf.cast(yaw > self.settings.mesh_profile_yaw, tf.int32)
        return tf.gather(self.mesh_tables, profile)

    def _relative(self, values):
        """values [B, P] minus their mean over the valid points."""
        mean = (tf.reduce_sum(values * self.mesh_valid, -1, keepdims=True)
                / tf.maximum(tf.reduce_sum(self.mesh_valid, -1, keepdims=True), 1.0))
        return values - mean

    def prior(self):
        identity = self.identity * _SCALES["identity"]
        expression = self.expression * _SCALES["expression"]
        albedo = self.albedo * _SCALES["albedo"]
        return 0.5 * (tf.reduce_sum(tf.square(identity), -1)
                      + self.settings.expression_prior * tf.reduce_sum(tf.square(expression), -1)
                      + tf.reduce_sum(tf.square(albedo), -1))

    def albedo_regulariser(self):
        if not self.per_vertex_albedo:
            return tf.zeros([tf.shape(self.identity)[0]])
        albedo = self.albedo_override()
        ends = tf.gather(albedo, self.edges, axis=1)  # [B, E, 2, 3]
        smooth = tf.reduce_mean(tf.reduce_sum(tf.square(ends[:, :, 0] - ends[:, :, 1]), -1), -1)
        offset = tf.reduce_mean(tf.reduce_sum(tf.square(self.vertex_albedo), -1), -1)
        return self.settings.albedo_smoothness * smooth + self.settings.albedo_prior * offset

    def photometric_loss(self):
        render = render_face(self.coefficients(), self.model, albedo=self.albedo_override())
        corners = tf.gather(tf.constant(self.model.triangles), tf.maximum(render.triangle_ids, 0))
        model_skin = tf.reduce_min(tf.gather(self.vertex_skin, corners), -1)
        region = render.mask[..., 0] * model_skin * self.skin
        error = tf.sqrt(tf.reduce_sum(tf.square(render.image - self.crops), -1) + 1e-8)
        mean_error = tf.reduce_sum(region * error, [1, 2]) / (tf.reduce_sum(region, [1, 2]) + 1.0)
        return self.settings.photometric_weight * mean_error

    # -- steps ----------------------------------------------------------------

    def make_step(self, variables, photometric):
        """A compiled optimisation step over `variables` (an Adam per stage)."""
        optimizer = tf.keras.optimizers.Adam(self.settings.learning_rate)
        optimizer.build(variables)
        self.optimizers = getattr(self, "optimizers", []) + [optimizer]

        @tf.function
        def step():
            with tf.GradientTape() as tape:
                loss = self.landmark_loss() + self.prior()
                if photometric:
                    loss += self.photometric_loss() + self.albedo_regulariser()
                total = tf.reduce_sum(loss)
            gradients = tape.gradient(total, variables)
            optimizer.apply_gradients(zip(gradients, variables))
            return total
        return step


def _as_float_images(crops):
    crops = np.asarray(crops)
    if crops.dtype == np.uint8:
        return crops.astype(np.float32) / 255.0
    return crops.astype(np.float32)


def fit_faces(crops, landmarks, model, settings=FitSettings(), initial_coefficients=None,
              mesh_points=None):
    """Fits the face model to aligned crops.

    Args:
      crops: [B, 224, 224, 3] RGB crops (uint8, or float in [0, 1]) aligned
        as MGCNet's (mgc.preprocess.align).
      landmarks: [B, 68, 2] iBUG landmarks in crop pixels (NaN where
        unknown), or [B, 5, 2] MGCNet's five points (eye centres, nose tip,
        mouth corners).
      model: a FaceModel; landmarks it lacks (-1) are left out of the loss
        (a five-point target averages those of its group the model has).
      settings: FitSettings.
      initial_coefficients: [B, layout.size] to start from (a network's
        prediction) instead of the mean face at a closed-form pose; with
        zero steps the result is these coefficients, scored and rendered.
      mesh_points: [B, 468, 3] the face mesh's points in crop pixels (x, y,
        depth; PreparedFace.crop_mesh_points), NaN rows where unknown: with
        a correspondence for the model (mesh_targets.correspondence) they
        are the targets instead of the 68 landmarks, and their depth gives
        the starting pose. Ignored (the 68 are fitted) for a model without
        one.

    Returns:
      FitResult.

    Raises:
      FaceModelError: the model has a point for fewer than 4 of the targets
        (a pose needs 4).
      ValueError: bad shapes, or a face with fewer than 4 usable targets.
    """
    crops = _as_float_images(crops)
    landmarks = np.asarray(landmarks, np.float32)
    if crops.ndim != 4 or crops.shape[1:] != (224, 224, 3):
        raise ValueError(f"crops must have shape [B, 224, 224, 3], got {crops.shape}")
    if landmarks.shape[0] != crops.shape[0] or landmarks.shape[1:] not in ((68, 2), (5, 2)):
        raise ValueError(f"landmarks must have shape [B, 68, 2] or [B, 5, 2], got {landmarks.shape}")
    selection = landmark_lib.selection_matrix(landmarks.shape[1], model.landmarks >= 0)
    usable = check_model_landmarks(model, landmarks.shape[1])
    targets = landmarks.copy()
    targets[:, ~usable] = np.nan
    if initial_coefficients is not None and settings.total_steps == 0:
        _mesh_vertices(model, mesh_points, len(crops))  # the same checks as a fit
        if CoefficientLayout.for_model(model).albedo:
            return _answer_as_is(model, initial_coefficients, targets)
    # The photo's skin comes from all detected points, whatever the model has
    # (no steps, e.g. a network's answer as is: no photometric loss to weigh).
    skin = np.stack([skin_probability(crop, points)
                     if points.shape[0] == 68 and settings.total_steps else
                     np.ones(crop.shape[:2], np.float32) for crop, points in zip(crops, landmarks)])
    mesh_vertices = _mesh_vertices(model, mesh_points, len(crops))
    if mesh_vertices is None:
        model_points = selection @ model.mean_shape[np.maximum(model.landmarks, 0)]
        model_points[~usable] = np.nan
        initial = np.stack([initial_pose_delta(model_points, target) for target in targets])
        mesh_targets = None
    else:
        mesh_points = np.asarray(mesh_points, np.float32)
        initial = np.stack([initial_pose_delta(model.mean_shape[mesh_vertices[0]], points)
                            for points in mesh_points])
        mesh_targets = mesh_points
    problem = _problem(model, len(crops), landmarks.shape[1], settings, mesh_vertices)
    problem.reset(crops, targets, skin, initial, initial_coefficients, mesh_targets)
    _run(problem, settings, targets)
    return _result(problem, targets)


def check_model_landmarks(model, num_targets=68):
    """Which of `num_targets` (68 or 5) landmark targets the model has a
    point for, [P] bool; FaceModelError when fewer than 4 (a pose needs 4).
    Cheap: callers may check a model before any work."""
    usable = landmark_lib.has_model_points(
        landmark_lib.selection_matrix(num_targets, model.landmarks >= 0))
    if usable.sum() < 4:
        raise FaceModelError(
            f"face model '{model.name}' has a point for {usable.sum()} of the {num_targets} "
            "landmark targets; fitting needs at least 4")
    return usable


def _mesh_vertices(model, mesh_points, batch):
    """(front, profile): the model's vertex of each mesh point in its two
    correspondences (the front one twice where it has no profile one), or
    None (no mesh points, or no correspondence for this model)."""
    if mesh_points is None:
        return None
    shape = np.shape(mesh_points)
    if shape != (batch, mesh_targets.MESH_POINTS, 3):
        raise ValueError(f"mesh_points must have shape [{batch}, {mesh_targets.MESH_POINTS}, 3], "
                         f"got {shape}")
    front = mesh_targets.correspondence(model)
    if front is None:
        return None
    profile = mesh_targets.correspondence(model, profile=True)
    return front, (front if profile is None else profile)


_PROBLEMS = {}


def _problem(model, batch, num_targets, settings, mesh_vertices=None):
    """A cached _Problem for this model, batch size, settings and targets."""
    key = (id(model), batch, num_targets, settings, mesh_vertices is not None)
    if key not in _PROBLEMS:
        if len(_PROBLEMS) >= 4:  # a few shapes at most; drop the oldest
            _PROBLEMS.pop(next(iter(_PROBLEMS)))
        _PROBLEMS[key] = (_Problem(model, batch, num_targets, settings, mesh_vertices), model)
    return _PROBLEMS[key][0]


def _run(problem, settings, targets):
    contour = problem.sliders[0] if problem.sliders else None
    mesh = problem.mesh_vertices is not None
    facing = mesh and settings.mesh_facing is not None
    profile = mesh and settings.mesh_profile_yaw is not None
    for stage, (step, count) in enumerate(problem.stages):
        for index in range(count):
            if index % settings.contour_update_every == 0:
                if contour is not None and stage >= 1:
                    problem.indices.assign(contour.update(problem, targets))
                if profile:
                    problem.mesh_vertices.assign(problem.chosen_mesh_tables())
                if facing:
                    problem.mesh_facing.assign(problem.facing_mesh_points())
            step()


def _result(problem, targets):
    coefficients = problem.coefficients()
    albedo = problem.albedo_override()
    render = render_face(coefficients, problem.model, albedo=albedo)
    projected, _ = problem.projected_landmarks()
    valid = problem.valid.numpy()
    error = np.linalg.norm(projected.numpy() - problem.targets.numpy(), axis=-1)
    mean_error = (error * valid).sum(-1) / np.maximum(valid.sum(-1), 1)
    outline = problem.indices
    if problem.sliders:  # 2-D annotations put the chin on the outline too
        outline = problem.sliders[1].update(problem, targets)
    silhouette, _ = problem.projected_landmarks(select=False, indices=outline)
    missing = problem.model.landmarks < 0
    silhouette = np.where(missing[None, :, None], np.nan, silhouette.numpy())
    return FitResult(coefficients=coefficients.numpy(), layout=problem.layout,
                     vertex_albedo=render.albedo.numpy(), render=render,
                     landmarks_2d=render.landmarks_2d.numpy(),
                     silhouette_landmarks_2d=silhouette, landmark_error=mean_error,
                     keypoints_2d=_keypoints_2d(problem.model, render))


def _keypoints_2d(model, render):
    """[B, 68, 2] the fitted face's keypoint vertices projected, crop pixels
    (NaN where the model has none)."""
    vertices = keypoint_lib.keypoint_vertices(model)
    points = tf.gather(render.vertices, np.maximum(vertices, 0), axis=1)
    projected = geometry.project_to_image(geometry.transform_points(points, render.pose)).numpy()
    return np.where((vertices < 0)[None, :, None], np.nan, projected)


# -- zero steps: a network's answer as is ---------------------------------------

_ANSWERS = {}  # id(model) -> (model, traced answer, jaw slider)


def trace_answer(model, batch):
    """Traces the zero-step answer's graph for batches of `batch` faces
    (seconds): a run pays it at start-up instead of on its first batch."""
    layout = CoefficientLayout.for_model(model)
    _answer_graph(model)[0](tf.zeros([batch, layout.size]))


def _answer_graph(model):
    """(tf.function coefficients [B, K] -> (FaceRender, the 68 landmark
    vertices' pixels [B, 68, 2], every vertex's pixels [B, N, 2] and
    camera-space normal z [B, N]), the jaw slider), one per model."""
    if id(model) not in _ANSWERS:
        if len(_ANSWERS) >= 2:
            _ANSWERS.pop(next(iter(_ANSWERS)))
        # Landmarks the model lacks read vertex 0, as _Problem.projected_landmarks.
        landmarks = np.maximum(model.landmarks, 0)

        @tf.function(autograph=False, reduce_retracing=True)
        def answer(coefficients):
            render = render_face(coefficients, model)
            pixels = geometry.project_to_image(geometry.transform_points(render.vertices,
                                                                         render.pose))
            rotation = geometry.rotation_matrix(render.pose[:, :3])
            normals_z = tf.einsum("bj,bnj->bn", rotation[:, 2], render.normals)
            return render, tf.gather(pixels, landmarks, axis=1), pixels, normals_z
        _ANSWERS[id(model)] = (model, answer, landmark_lib.ContourSlider(model, landmark_lib.JAW))
    return _ANSWERS[id(model)][1:]


def _answer_as_is(model, coefficients, targets):
    """fit_faces' result at zero steps from `coefficients` (the same
    numbers, up to float rounding), without the fitting problem's variables
    and eager ops: one traced graph, then NumPy."""
    layout = CoefficientLayout.for_model(model)
    coefficients = np.asarray(coefficients, np.float32)
    if coefficients.shape != (len(targets), layout.size):
        raise ValueError(f"initial_coefficients must have shape [{len(targets)}, {layout.size}], "
                         f"got {list(coefficients.shape)}")
    answer, jaw_slider = _answer_graph(model)
    render, landmark_pixels, pixels, normals_z = answer(tf.constant(coefficients))
    pixels = pixels.numpy()
    selection = landmark_lib.selection_matrix(targets.shape[1], model.landmarks >= 0)
    projected = np.einsum("pk,bkc->bpc", selection, landmark_pixels.numpy())
    valid = np.all(np.isfinite(targets), -1)
    error = np.linalg.norm(projected - np.nan_to_num(targets), axis=-1)
    mean_error = (error * valid).sum(-1) / np.maximum(valid.sum(-1), 1)
    outline = np.tile(model.landmarks[None], [len(targets), 1])
    if targets.shape[1] == 68:  # 2-D annotations put the jaw on the outline
        outline = jaw_slider.choose(pixels, normals_z.numpy(), targets)
    silhouette = np.take_along_axis(pixels, np.maximum(outline, 0)[..., None], axis=1)
    missing = (model.landmarks < 0)[None, :, None]
    keypoints = keypoint_lib.keypoint_vertices(model)
    return FitResult(coefficients=coefficients, layout=layout,
                     vertex_albedo=render.albedo.numpy(), render=render,
                     landmarks_2d=render.landmarks_2d.numpy(),
                     silhouette_landmarks_2d=np.where(missing, np.nan, silhouette),
                     landmark_error=mean_error.astype(np.float32),
                     keypoints_2d=np.where((keypoints < 0)[None, :, None], np.nan,
                                           pixels[:, np.maximum(keypoints, 0)]))
