"""The paper's claim at small scale: trained on the same synthetic tuples for
the same steps, the network trained with the multi-view losses (pixel, SSIM,
depth and epipolar consistency) has lower pose and depth error on held-out
synthetic tuples than the one trained without them.

    python -m experiments.multi_view_claim [--train_steps=200] [--run_seeds=1,2,3] \\
        [--warm_up_steps=2000] [--num_train_tuples=96] [--num_heldout_tuples=32] \\
        [--batch_size=2] [--write_docs]
    python -m experiments.multi_view_claim --combine=a.json,b.json [--output=all.json]

--combine tables the seeds of several runs of one setting together (their
settings must agree but for the seeds), without training.

Data: tuples 0..num_train_tuples-1 of mgc.data.synthetic.SyntheticTuples
(--seed, default 0; the face model --path_gpmm, default the parity inputs'
synthetic BFM h5, the real BFM topology and mean shape with synthetic bases;
backgrounds from the data root's demo_images) are the training set, the next
num_heldout_tuples the held-out set; their SyntheticTruth is the answer.
--train_landmarks=detected trains on the landmarks dlib finds on each view
(mgc.data.prepare.crop_landmarks), as a real training set has them, instead
of the exact projections, which make the landmark term an oracle of each
view's pose; the warm-up and the held-out errors still use the truth.

The shared start: for each of --run_seeds the seeded initialisation, then
--warm_up_steps of a pose-supervised warm-up on the training tuples (the
mean squared error of the 6 pose outputs against the true pose deltas, each
in units of its spread over the training views; Adam at
--warm_up_learning_rate). Both arms start from these same weights. From
scratch (--warm_up_steps=0) neither arm learns rotation in a CPU's budget,
and the multi-view terms can only refine a pose that is roughly right: at
the untrained network's equal poses their gradient does not point towards
the true relative pose (docs/RESULTS.md). The original starts from ImageNet
weights and trains 200,000 steps; the warm-up stands in for a network that
already predicts a rough pose.

Arms: from the shared start, on the same batches in the same order (each
seed sets the initialisation and both batch orders) for --train_steps steps
of mgc.train.trainer.Trainer (TF1 Adam, --claim_learning_rate, default
1e-5: at the original's 1e-4 the first 25 steps after the warm-up undid a
sixth of its rotation gain in the without arm, on validation tuples).
"with" uses the documented command's weights (§5.7: MULTIVIEW 1, photom
0.15, depth 1e-4, ssim and epipolar 0); "without" the same with every multi-view weight 0. Any weight
flag given explicitly (experiments/mgcnet_flags.py) changes both arms'
common terms or the with arm's multi-view terms. The identity term is off
(--gpmm_id_loss_weight=0): no real FaceNet is available here.

Backbone (for this comparison only): --backbone=small (default) is a five-
layer strided CNN on the full 224 x 224 input (5x5/2 16, then 3x3/2 32, 64,
128, 128 channels with ReLU, flattened 7 x 7 x 128, one dense layer to the 257
coefficients), about 1.7 M weights and 1/60 of ResNet-50's arithmetic, so
that several seeds of both arms fit a 2-core CPU. Its dense layer starts at
zero (every prediction starts as the mean face at MGCNet's default pose),
and its translation outputs are scaled by 10 (tx, ty) and 100 (tz) mm, so
that Adam's early steps of about 1e-4 per weight can reach the tuples' +-250
mm distance jitter. --backbone=resnet50 is MGCNet's encoder (slim's
initialisation, seeded), about 60 times slower.

Errors on the held-out tuples (every view of every tuple, the prediction of
that view's image alone):
  rotation_deg: the angle of R_pred^T R_true (degrees);
  translation_mm: |t_pred - t_true| (mm, camera frame);
  depth_mm: mean |z_pred - z_true| of the front mesh's camera depth over
    the pixels both cover (mm);
  depth_aligned_mm: the same after removing each image's median difference
    (the shape's relief without the distance error);
  vertex_mm: mean distance of the model-frame vertices (identity and
    expression) from the truth's (mm);
  landmark_px: mean distance of the 68 projected landmarks (pixels).
Each run gives the mean over held-out images; the table gives the untrained
and the shared start's errors, the arms' mean and standard deviation over
the seeds, the paired difference (without - with; positive: the multi-view
arm is better) over seeds, the same per held-out image and seed with its
standard error, and in how many seeds "with" won.
The JSON (--output, default out/multi_view_claim.json) holds every number,
the settings and each run's loss curve; --write_docs replaces the
multi_view_claim block of docs/RESULTS.md with the table.

Exit codes: 0 done; 1 a training step had a non-finite loss (the message
names the arm, seed and step); 2 a set-up error, one `error:` line.
"""
import dataclasses
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from experiments import common_flags, doc_blocks, mgcnet_flags  # noqa: E402
from mgc import paths  # noqa: E402
from mgc.facemodel.files import one_line  # noqa: E402

FLAGS = flags.FLAGS
common_flags.use("batch_size", "seed", "data_root", "output", "write_docs")
flags.adopt_module_key_flags(mgcnet_flags)
flags.DEFINE_integer("train_steps", 200, "Training steps of each arm and seed.", lower_bound=0)
flags.DEFINE_list("run_seeds", ["1", "2", "3"], "Seeds of the initialisation and batch "
                  "order; each runs both arms.")
flags.DEFINE_integer("num_train_tuples", 96, "Synthetic tuples to train on.", lower_bound=1)
flags.DEFINE_integer("num_heldout_tuples", 32, "Held-out synthetic tuples to score.",
                     lower_bound=1)
flags.DEFINE_integer("heldout_start", None, "Index of the first held-out tuple (default "
                     "--num_train_tuples); a later start scores a validation set, e.g. 128 "
                     "with --num_heldout_tuples=16, on which settings are chosen.")
flags.DEFINE_float("claim_learning_rate", 1e-5, "Adam's learning rate of both arms' "
                   "training (after the warm-up).", lower_bound=0.0)
flags.DEFINE_integer("warm_up_steps", 2000, "Steps of the shared pose-supervised warm-up "
                     "both arms start from; 0: both start from the initialisation.",
                     lower_bound=0)
flags.DEFINE_float("warm_up_learning_rate", 1e-4, "Adam's learning rate of the warm-up.",
                   lower_bound=0.0)
flags.DEFINE_list("combine", [], "JSON outputs of earlier runs of the same setting with "
                  "other seeds: print (and with --output write) the table of all their "
                  "seeds together instead of training.")
flags.DEFINE_enum("train_landmarks", "exact", ["exact", "detected"], "The training tuples' "
                  "landmarks: exact (the projected model landmarks) or detected (dlib's 68 "
                  "points on each view, as mgc.data.prepare finds them; a tuple with a view "
                  "without a face is left out). Held-out errors are always against the truth.")
flags.DEFINE_enum("backbone", "small", ["small", "resnet50"], "small: the five-layer CNN "
                  "of this comparison; resnet50: MGCNet's encoder.")

DEFAULT_BATCH = 2
DEFAULT_DATA_SEED = 0
DEFAULT_OUTPUT = os.path.join("out", "multi_view_claim.json")
DEFAULT_H5 = os.path.join(paths.REPO_ROOT, "build", "parity_inputs", "bfm09_synth_presplit.h5")
RESULTS_DOC = os.path.join(paths.REPO_ROOT, "docs", "RESULTS.md")
EXIT_DONE, EXIT_NAN, EXIT_SETUP = 0, 1, 2
METRICS = ("rotation_deg", "translation_mm", "depth_mm", "depth_aligned_mm", "vertex_mm",
           "landmark_px")
ARMS = ("without", "with")
MULTI_VIEW_WEIGHTS = ("MULTIVIEW_weight", "photom_weight", "ssim_weight", "depth_weight",
                      "epipolar_weight")
NOT_HERE = ("dataset_dir", "dataset_name_list")  # mgcnet_flags' loader flags: tuples are made here


class SetupError(Exception):
    """The run cannot start; the message says why (exit code 2)."""


class NonFiniteLoss(Exception):
    """A training step's loss was not finite (exit code 1)."""


# --- the small backbone -------------------------------------------------------

SMALL_SCOPE = "small_cnn"
SMALL_CONVS = ((5, 3, 16), (3, 16, 32), (3, 32, 64), (3, 64, 128), (3, 128, 128))
SMALL_FLAT = 7 * 7 * 128


def output_scale():
    """[257] the small backbone's fixed output scale (translation in 10 / 100 mm)."""
    from mgc.facemodel import MGCNET_LAYOUT
    scale = np.ones(MGCNET_LAYOUT.size, np.float32)
    start = MGCNET_LAYOUT.identity + MGCNET_LAYOUT.albedo + MGCNET_LAYOUT.expression
    scale[start + 3:start + 5] = 10.0   # tx, ty
    scale[start + 5] = 100.0            # tz
    return scale


def small_encoder_class():
    import tensorflow as tf
    from mgc.facemodel import MGCNET_LAYOUT

    class SmallEncoder(tf.Module):
        """images [B, 224, 224, 3] in [0, 1] -> [B, 257]; variables_by_name as
        mgc.nets.encoder.Encoder, so that Trainer and glorot_initialise take it."""

        def __init__(self):
            super().__init__(name=SMALL_SCOPE)
            shapes = {f"{SMALL_SCOPE}/conv{i + 1}/weights": (k, k, cin, cout)
                      for i, (k, cin, cout) in enumerate(SMALL_CONVS)}
            shapes.update({f"{SMALL_SCOPE}/conv{i + 1}/biases": (cout,)
                           for i, (_, _, cout) in enumerate(SMALL_CONVS)})
            shapes[f"{SMALL_SCOPE}/logits/weights"] = (SMALL_FLAT, MGCNET_LAYOUT.size)
            shapes[f"{SMALL_SCOPE}/logits/biases"] = (MGCNET_LAYOUT.size,)
            self.variables_by_name = {name: tf.Variable(tf.zeros(shape), name=name)
                                      for name, shape in shapes.items()}
            self.scale = tf.constant(output_scale())

        def __call__(self, images):
            x = images
            for i in range(len(SMALL_CONVS)):
                prefix = f"{SMALL_SCOPE}/conv{i + 1}/"
                x = tf.nn.conv2d(x, self.variables_by_name[prefix + "weights"], 2, "SAME")
                x = tf.nn.relu(tf.nn.bias_add(x, self.variables_by_name[prefix + "biases"]))
            x = tf.reshape(x, [-1, SMALL_FLAT])
            logits = tf.matmul(x, self.variables_by_name[f"{SMALL_SCOPE}/logits/weights"])
            return (logits + self.variables_by_name[f"{SMALL_SCOPE}/logits/biases"]) * self.scale

    return SmallEncoder


def build_encoder(backbone):
    """The (uninitialised) encoder of --backbone."""
    if backbone == "resnet50":
        from mgc.nets.encoder import Encoder
        return Encoder()
    return small_encoder_class()()


def initialise(encoder, backbone, seed):
    """Seeded initialisation in place, the same for both arms of a seed:
    slim's default (glorot_initialise); the small backbone's dense layer 0."""
    import tensorflow as tf
    from mgc.train.trainer import glorot_initialise
    glorot_initialise(encoder, seed)
    if backbone == "small":
        for name in (f"{SMALL_SCOPE}/logits/weights", f"{SMALL_SCOPE}/logits/biases"):
            variable = encoder.variables_by_name[name]
            variable.assign(tf.zeros_like(variable))


# --- data --------------------------------------------------------------------

def make_tuples(model, count, start, seed, data_root):
    """(arrays dict of the batch keys stacked over tuples, list of SyntheticTruth)."""
    from mgc.data.synthetic import SyntheticTuples
    generator = SyntheticTuples(model, seed=seed, data_root=data_root)
    arrays = {"images": [], "skins": [], "landmarks": [], "flag": []}
    truths = []
    for tuple_, truth in generator.generate(count, start=start):
        arrays["images"].append(tuple_.images)
        arrays["skins"].append(tuple_.skins)
        arrays["landmarks"].append(tuple_.landmarks.astype(np.float32))
        arrays["flag"].append(np.int32(tuple_.flag))
        truths.append(truth)
    return {k: np.stack(v) for k, v in arrays.items()}, truths


def detect_landmarks(data):
    """`data` with each view's landmarks replaced by those mgc.data.prepare
    detects on its image, tuples with a view without a face left out:
    (data, kept tuple indices, mean distance of the detected from the exact
    landmarks in pixels over the kept views)."""
    from mgc.data.prepare import crop_landmarks
    detected, kept = [], []
    for index, views in enumerate(data["images"]):
        points = [crop_landmarks(view) for view in views]
        if all(p is not None for p in points):
            detected.append(np.stack(points))
            kept.append(index)
    if not kept:
        raise SetupError("--train_landmarks=detected: no face found in any training tuple")
    data = {key: value[kept] for key, value in data.items()}
    detected = np.stack(detected)  # float32, as crop_landmarks returns them
    error = float(np.linalg.norm(detected - data["landmarks"], axis=-1).mean())
    data["landmarks"] = detected
    return data, kept, error


def batch_order(count, batch_size, steps, seed):
    """[steps, batch_size] tuple indices: seeded shuffled epochs, concatenated."""
    rng = np.random.RandomState(seed)
    needed = steps * batch_size
    order = np.concatenate([rng.permutation(count) for _ in range(needed // count + 1)])
    return order[:needed].reshape(steps, batch_size)


# --- the shared warm-up ----------------------------------------------------------

WARM_UP_SALT = 7  # its batch order is its own stream, not the arms'


def pose_slice():
    from mgc.facemodel import MGCNET_LAYOUT
    sizes = MGCNET_LAYOUT.sizes  # identity, albedo, expression, pose, lighting
    return slice(sum(sizes[:3]), sum(sizes[:4]))


def warm_up(encoder, data, truths, steps, batch_size, seed, learning_rate):
    """Trains the encoder's pose outputs on the training tuples' true pose
    deltas (mean squared error of each of the 6 in units of its standard
    deviation over the training views), every view of each tuple; Adam
    (epsilon 1e-8). Returns the last step's loss (nan for 0 steps)."""
    import tensorflow as tf
    from mgc.losses import image_to_float
    poses = np.stack([t.coefficients[:, pose_slice()] for t in truths]).astype(np.float32)
    spread = poses.reshape(-1, poses.shape[-1]).std(axis=0) + np.float32(1e-6)
    targets = poses / spread
    variables = [encoder.variables_by_name[n] for n in sorted(encoder.variables_by_name)]
    optimizer = tf.keras.optimizers.Adam(learning_rate, epsilon=1e-8)

    @tf.function
    def step(images, target):
        with tf.GradientTape() as tape:
            predicted = encoder(image_to_float(images))[:, pose_slice()] / spread
            loss = tf.reduce_mean(tf.square(predicted - target))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    loss = float("nan")
    views = data["images"].shape[2:]
    for indices in batch_order(len(truths), batch_size, steps, [seed, WARM_UP_SALT]):
        loss = float(step(tf.constant(data["images"][indices].reshape((-1,) + views)),
                          tf.constant(targets[indices].reshape((-1, targets.shape[-1])))))
    return loss


def shared_start(backbone, data, truths, seed, steps, batch_size, learning_rate):
    """The weights both arms of a seed start from: the seeded initialisation,
    then the warm-up. (name -> array, the warm-up's last loss)."""
    encoder = build_encoder(backbone)
    initialise(encoder, backbone, seed)
    started = time.time()
    loss = warm_up(encoder, data, truths, steps, batch_size, seed, learning_rate)
    if steps:
        print(f"seed {seed}: warm-up {steps} steps, pose loss {loss:.4f} "
              f"({time.time() - started:.0f} s)", file=sys.stderr)
    return {name: v.numpy() for name, v in encoder.variables_by_name.items()}, loss


# --- training ------------------------------------------------------------------

def arm_weights(base):
    """{"without": base with every multi-view weight 0, "with": base}."""
    return {"without": dataclasses.replace(base, **{n: 0.0 for n in MULTI_VIEW_WEIGHTS}),
            "with": base}


class Arm:
    """One arm's encoder, Trainer and prediction, traced once and reused for
    every seed (the encoder re-initialised in place, Adam reset)."""

    def __init__(self, name, backbone, model, weights, batch_size, learning_rate):
        import tensorflow as tf
        from mgc.losses import image_to_float
        from mgc.train.trainer import Trainer
        self.name, self.backbone = name, backbone
        self.encoder = build_encoder(backbone)
        self.trainer = Trainer(tf.distribute.get_strategy(), self.encoder, None, model, weights,
                               batch_size, front_only=bool(FLAGS.flag_fore),
                               per_sample_gating=FLAGS.per_sample_gating,
                               learning_rate=learning_rate, forms=mgcnet_flags.term_forms())
        self.predict = tf.function(lambda images: self.encoder(image_to_float(images)))

    def start(self, seed, weights):
        """The encoder set to `weights` (shared_start), Adam reset."""
        import tensorflow as tf
        tf.random.set_seed(seed)
        for name, value in weights.items():
            self.encoder.variables_by_name[name].assign(value)
        self.trainer.reset_optimizer()

    def train(self, data, order, label):
        """Trains from the current state; returns the total_loss of every step."""
        import tensorflow as tf
        curve = []
        started = time.time()
        for step, indices in enumerate(order, start=1):
            batch = {key: tf.constant(value[indices]) for key, value in data.items()}
            losses, _, applied = self.trainer.step(batch)
            if not bool(applied):
                bad = [k for k, v in losses.items() if not np.isfinite(float(v))]
                raise NonFiniteLoss(f"{label}: step {step}: non-finite "
                                    f"{', '.join(bad) or 'loss'}")
            curve.append(float(losses["total_loss"]))
            if step % 50 == 0 or step == len(order):
                print(f"{label}: step {step}/{len(order)} total_loss {curve[-1]:.5g} "
                      f"({step / (time.time() - started):.2f} steps/s)", file=sys.stderr)
        return curve


# --- evaluation ------------------------------------------------------------------

def rotation_error_deg(predicted, truth):
    """Angles (degrees) of R_p^T R_t for rotation matrices [N, 3, 3]."""
    relative = np.einsum("nji,njk->nik", predicted, truth)
    cosine = (np.trace(relative, axis1=1, axis2=2) - 1.0) / 2.0
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def depth_errors(predicted, truth):
    """(mean |dz|, median-aligned mean |dz|) over pixels both cover, per image
    [N]; NaN where no pixel is covered by both."""
    plain, aligned = [], []
    for p, t in zip(predicted, truth):
        both = (p > 0) & (t > 0)
        if not both.any():
            plain.append(np.nan)
            aligned.append(np.nan)
            continue
        difference = p[both] - t[both]
        plain.append(np.abs(difference).mean())
        aligned.append(np.abs(difference - np.median(difference)).mean())
    return np.array(plain), np.array(aligned)


def heldout_errors(predict, model, data, truths, chunk=6):
    """Each METRICS error of every view of the held-out tuples: name -> [3N]."""
    import tensorflow as tf
    from mgc import geometry
    from mgc.facemodel import MGCNET_LAYOUT, decode_shape
    from mgc.render import render_face
    images = data["images"].reshape((-1,) + data["images"].shape[2:])
    true_coefficients = np.concatenate([t.coefficients for t in truths])
    true_poses = np.concatenate([t.poses for t in truths])
    true_depths = np.concatenate([t.depths for t in truths])
    true_landmarks = np.concatenate([t.landmarks for t in truths])
    per_image = {name: [] for name in METRICS}
    for begin in range(0, len(images), chunk):
        part = slice(begin, begin + chunk)
        coefficients = predict(tf.constant(images[part]))
        render = render_face(coefficients, model, layout=MGCNET_LAYOUT, front_only=True)
        pose = render.pose.numpy()
        per_image["rotation_deg"] += list(rotation_error_deg(
            geometry.rotation_matrix(pose[:, :3]).numpy(),
            geometry.rotation_matrix(true_poses[part, :3]).numpy()))
        per_image["translation_mm"] += list(np.linalg.norm(pose[:, 3:] - true_poses[part, 3:],
                                                           axis=1))
        plain, aligned = depth_errors(render.depth.numpy()[..., 0], true_depths[part])
        per_image["depth_mm"] += list(plain)
        per_image["depth_aligned_mm"] += list(aligned)
        predicted, true = [MGCNET_LAYOUT.split(c) for c in (coefficients,
                                                             true_coefficients[part])]
        shapes = [decode_shape(model, p["identity"], p["expression"]).numpy()
                  for p in (predicted, true)]
        per_image["vertex_mm"] += list(np.linalg.norm(shapes[0] - shapes[1], axis=-1).mean(1))
        per_image["landmark_px"] += list(np.linalg.norm(
            render.landmarks_2d.numpy() - true_landmarks[part], axis=-1).mean(1))
    return per_image


def mean_errors(per_image):
    """The mean of each METRICS error over the held-out images."""
    return {name: float(np.nanmean(values)) for name, values in per_image.items()}


# --- the comparison ---------------------------------------------------------------

def summarise(runs):
    """Per metric and arm: mean and sd over seeds; paired differences."""
    summary = {}
    for metric in METRICS:
        values = {arm: np.array([run[arm]["errors"][metric] for run in runs]) for arm in ARMS}
        difference = values["without"] - values["with"]
        paired = np.concatenate([np.subtract(run["without"]["per_image"][metric],
                                             run["with"]["per_image"][metric]) for run in runs])
        paired = paired[np.isfinite(paired)]
        summary[metric] = {
            **{arm: {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1
                     else 0.0} for arm, v in values.items()},
            **{state: float(np.mean([run[state][metric] for run in runs]))
               for state in ("untrained", "start")},
            "difference": {"mean": float(difference.mean()),
                           "sd": float(difference.std(ddof=1)) if len(difference) > 1 else 0.0},
            "per_image_difference": {
                "mean": float(paired.mean()), "n": int(len(paired)),
                "se": float(paired.std(ddof=1) / np.sqrt(len(paired))) if len(paired) > 1
                else 0.0},
            "with_better": int((difference > 0).sum()), "runs": len(runs)}
    return summary


def table(summary, settings):
    lines = ["| held-out error | untrained | start (warmed up) | without multi-view | "
             "with multi-view | without - with (seeds) | without - with (images, ± s.e.) | "
             "seeds where with is better |", "|---|---|---|---|---|---|---|---|"]
    for metric, row in summary.items():
        cells = [f"{row['untrained']:.2f}", f"{row['start']:.2f}"] + [f"{row[arm]['mean']:.2f} ± {row[arm]['sd']:.2f}"
                                                for arm in ARMS]
        cells.append(f"{row['difference']['mean']:+.2f} ± {row['difference']['sd']:.2f}")
        cells.append(f"{row['per_image_difference']['mean']:+.2f} ± "
                     f"{row['per_image_difference']['se']:.2f}")
        cells.append(f"{row['with_better']} of {row['runs']}")
        lines.append(f"| {metric} | " + " | ".join(cells) + " |")
    lines += ["", f"Backbone {settings['backbone']}, warm-up {settings['warm_up_steps']} steps "
              f"(learning rate {settings['warm_up_learning_rate']:g}), then "
              f"{settings['train_steps']} steps at batch "
              f"{settings['batch_size']}, learning rate {settings['learning_rate']:g}, "
              f"{settings['num_train_tuples']} training and {settings['num_heldout_tuples']} "
              f"held-out tuples (x3 views), seeds {', '.join(map(str, settings['run_seeds']))} "
              f"(mean ± sd over seeds), face model {settings['face_model']}, commit "
              f"{settings['commit']}, depth frame {settings['depth_frame']}, epipolar "
              f"{settings['epipolar']}, {_landmark_words(settings)}, "
              f"{settings['minutes']:.0f} min on {os.cpu_count()} CPU cores."]
    return "\n".join(lines)


def _landmark_words(settings):
    if _setting(settings, "train_landmarks") == "exact":
        return "exact training landmarks"
    return (f"detected training landmarks ({settings['train_tuples_kept']} tuples kept, "
            f"{settings['train_landmark_error_px']:.2f} px from the exact ones)")


def _settings(model, seeds, batch_size):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=paths.REPO_ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    return dict(backbone=FLAGS.backbone, train_steps=FLAGS.train_steps, batch_size=batch_size,
                learning_rate=FLAGS.claim_learning_rate, warm_up_steps=FLAGS.warm_up_steps,
                warm_up_learning_rate=FLAGS.warm_up_learning_rate, num_train_tuples=FLAGS.num_train_tuples,
                num_heldout_tuples=FLAGS.num_heldout_tuples, heldout_start=_heldout_start(),
                run_seeds=seeds,
                data_seed=common_flags.value_or("seed", DEFAULT_DATA_SEED),
                face_model=os.path.basename(FLAGS.path_gpmm or DEFAULT_H5), commit=commit,
                per_sample_gating=FLAGS.per_sample_gating, flag_fore=FLAGS.flag_fore,
                depth_frame=FLAGS.depth_frame, epipolar=FLAGS.epipolar,
                train_landmarks=FLAGS.train_landmarks)


def _heldout_start():
    return FLAGS.num_train_tuples if FLAGS.heldout_start is None else FLAGS.heldout_start


def _set_up():
    """(model, base weights, seeds, batch size, output path) after every check."""
    for name in NOT_HERE:
        if FLAGS[name].present:
            raise SetupError(f"--{name} does not apply: the tuples are made here "
                             "(--num_train_tuples, --seed)")
    try:
        seeds = [int(s) for s in FLAGS.run_seeds]
    except ValueError:
        raise SetupError(f"--run_seeds={','.join(FLAGS.run_seeds)}: integers expected") from None
    if not seeds:
        raise SetupError("--run_seeds is empty")
    if _heldout_start() < FLAGS.num_train_tuples:
        raise SetupError(f"--heldout_start={FLAGS.heldout_start} would score training tuples "
                         f"(0-{FLAGS.num_train_tuples - 1})")
    weights = mgcnet_flags.loss_weights("documented")
    if not FLAGS["gpmm_id_loss_weight"].present:
        weights = dataclasses.replace(weights, gpmm_id_loss_weight=0.0)
    if weights.gpmm_id_loss_weight > 0:
        raise SetupError("--gpmm_id_loss_weight must be 0 here: this comparison has no "
                         "FaceNet")
    if weights.MULTIVIEW_weight == 0 or not any(
            getattr(weights, n) > 0 for n in MULTI_VIEW_WEIGHTS[1:]):
        raise SetupError("the with arm has no multi-view term: give --MULTIVIEW_weight and "
                         "one of the photom/ssim/depth/epipolar weights above 0")
    if FLAGS.path_gpmm is None:
        if not os.path.exists(DEFAULT_H5):
            raise SetupError(f"{DEFAULT_H5} is missing: `make test` writes the parity inputs, "
                             "or pass --path_gpmm")
        FLAGS.path_gpmm = DEFAULT_H5
    try:
        model = mgcnet_flags.face_model(FLAGS.data_root)
    except mgcnet_flags.FaceModelFlagError as error:
        raise SetupError(str(error)) from None
    output = FLAGS.output or DEFAULT_OUTPUT
    if os.path.isdir(output):
        raise SetupError(f"--output={output} is a folder; name the JSON file to write")
    return model, weights, seeds, common_flags.value_or("batch_size", DEFAULT_BATCH), output


def run():
    from mgc.data.synthetic import SyntheticSetupError
    model, base, seeds, batch_size, output = _set_up()
    started = time.time()
    data_seed = common_flags.value_or("seed", DEFAULT_DATA_SEED)
    try:
        train, train_truths = make_tuples(model, FLAGS.num_train_tuples, 0, data_seed,
                                          FLAGS.data_root)
        heldout, truths = make_tuples(model, FLAGS.num_heldout_tuples, _heldout_start(),
                                      data_seed, FLAGS.data_root)
    except SyntheticSetupError as error:
        raise SetupError(one_line(error)) from None
    detection = {}
    if FLAGS.train_landmarks == "detected":
        train, kept, error = detect_landmarks(train)
        train_truths = [train_truths[i] for i in kept]
        detection = dict(train_tuples_kept=len(kept), train_landmark_error_px=error)
        print(f"detected landmarks: {len(kept)} of {FLAGS.num_train_tuples} training tuples "
              f"kept, {error:.2f} px from the exact ones", file=sys.stderr)
    print(f"{len(train['flag'])} training and {len(heldout['flag'])} held-out tuples made "
          f"({time.time() - started:.0f} s)", file=sys.stderr)
    weights = arm_weights(base)
    arms = {arm: Arm(arm, FLAGS.backbone, model, weights[arm], batch_size,
                     FLAGS.claim_learning_rate) for arm in ARMS}
    runs = []
    for seed in seeds:
        order = batch_order(len(train_truths), batch_size, FLAGS.train_steps, seed)
        run_ = {"seed": seed}
        first = arms[ARMS[0]]
        initialise(first.encoder, FLAGS.backbone, seed)
        run_["untrained"] = mean_errors(heldout_errors(first.predict, model, heldout, truths))
        start, run_["warm_up_loss"] = shared_start(
            FLAGS.backbone, train, train_truths, seed, FLAGS.warm_up_steps, batch_size,
            FLAGS.warm_up_learning_rate)
        for name, arm in arms.items():
            arm.start(seed, start)
            if name == ARMS[0]:
                run_["start"] = (mean_errors(heldout_errors(arm.predict, model, heldout, truths))
                                 if FLAGS.warm_up_steps else run_["untrained"])
            curve = arm.train(train, order, f"seed {seed}, {name}")
            per_image = heldout_errors(arm.predict, model, heldout, truths)
            run_[name] = {"errors": mean_errors(per_image), "total_loss": curve,
                          "per_image": {k: [float(v) for v in values]
                                        for k, values in per_image.items()}}
            print(f"seed {seed}, {name}: " + ", ".join(
                f"{k} {v:.3f}" for k, v in run_[name]["errors"].items()), file=sys.stderr)
        runs.append(run_)
    settings = _settings(model, seeds, batch_size)
    settings["minutes"] = (time.time() - started) / 60.0
    settings.update(detection)
    settings["weights"] = {arm: dataclasses.asdict(w) for arm, w in weights.items()}
    summary = summarise(runs)
    text = table(summary, settings)
    print(text)
    _write_json(output, {"settings": settings, "summary": summary, "runs": runs})
    if FLAGS.write_docs:
        doc_blocks.replace_block(RESULTS_DOC, "multi_view_claim", text)
    return EXIT_DONE


# Settings that may differ between runs combined: the rest must agree.
COMBINED_FREE = ("run_seeds", "minutes", "commit")


def _load_run(path):
    try:
        with open(path) as stream:
            content = json.load(stream)
        settings, runs = content["settings"], content["runs"]
        missing = [key for key in COMBINED_FREE if key not in settings]
        if missing:
            raise KeyError(missing[0])
        return settings, runs
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SetupError(f"--combine: {path}: not a multi_view_claim output "
                         f"({one_line(error)})") from None


def _setting(settings, key):
    """A run's setting; outputs made before --train_landmarks existed used exact ones."""
    return settings.get(key, "exact" if key == "train_landmarks" else None)


def combine(paths_):
    """The settings (seeds and minutes summed, commits listed) and summary of
    the runs in several outputs of one setting."""
    loaded = [_load_run(path) for path in paths_]
    first = {k: v for k, v in loaded[0][0].items() if k not in COMBINED_FREE}
    runs, seeds = [], []
    for path, (settings, more) in zip(paths_, loaded):
        differing = sorted(k for k in set(first) | set(settings)
                           if k not in COMBINED_FREE and _setting(settings, k) != _setting(first, k))
        if differing:
            raise SetupError(f"--combine: {path} was run with other settings "
                             f"({', '.join(differing)}) than {paths_[0]}")
        runs += more
        seeds += settings["run_seeds"]
    if len(set(seeds)) != len(seeds):
        raise SetupError(f"--combine: seeds {sorted(seeds)} repeat: each run once")
    commits = dict.fromkeys(settings["commit"] for settings, _ in loaded)
    combined = dict(loaded[0][0], run_seeds=seeds, commit=", ".join(commits),
                    minutes=sum(settings["minutes"] for settings, _ in loaded))
    return combined, summarise(runs), runs


def run_combine():
    if FLAGS.write_docs:
        raise SetupError("--write_docs rewrites the defaults' table; it does not apply with "
                         "--combine")
    if FLAGS.output and os.path.isdir(FLAGS.output):
        raise SetupError(f"--output={FLAGS.output} is a folder; name the JSON file to write")
    if FLAGS.output and os.path.abspath(FLAGS.output) in map(os.path.abspath, FLAGS.combine):
        raise SetupError(f"--output={FLAGS.output} is one of the runs to combine: name a new "
                         "file")
    settings, summary, runs = combine(FLAGS.combine)
    print(table(summary, settings))
    if FLAGS.output:
        _write_json(FLAGS.output, {"settings": settings, "summary": summary, "runs": runs})
    return EXIT_DONE


def _write_json(output, content):
    """Writes atomically: an interrupted run leaves any earlier file whole."""
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    temporary = output + ".tmp"
    with open(temporary, "w") as stream:
        json.dump(content, stream, indent=1)
    os.replace(temporary, output)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=EXIT_SETUP)
    try:
        return run_combine() if FLAGS.combine else run()
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP
    except NonFiniteLoss as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_NAN


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
