"""Self-supervised multi-view training of MGCNet: the original
train_unsupervise.py in TensorFlow 2 (../shared/spec/MGCNET_REFERENCE.md
§1.4, §5.7-5.9).

    python -m experiments.train --dataset_dir=DIR --path_gpmm=bfm09_trim_exp_uv_presplit.h5 \\
        --checkpoint_dir=ckpt --ckpt_face_pretrain=resnet_v1_50.ckpt \\
        --ckpt_face_id_pretrain=facenet/model.ckpt-... --preset=documented \\
        --batch_size=2 --min_steps=2000 --max_steps=20001 --save_freq=20000 --summary_freq=100

Every flag of the original keeps its name, default and meaning; the weight
and loader flags are experiments/mgcnet_flags.py's (shared with
evaluate_losses); --batch_size (default 1, the original's) and --seed
(default 8964, the original's) are the shared flags. --preset=documented
takes the documented command's weights (§5.7); weight flags given
explicitly win.

Initialisation: the encoder starts from slim's default initialisation
(xavier uniform, zero biases; seeded), then --ckpt_face_pretrain (a slim
ImageNet resnet_v1_50 checkpoint) restores every resnet_v1_50/* variable it
holds except the logits layer (the original's exclusions; its biases are not
in an ImageNet checkpoint, what was not loaded is printed). The identity
network (FaceNet, frozen) comes from --ckpt_face_id_pretrain (any checkpoint
holding InceptionResnetV1/*, an MGCNet one too), required when
--gpmm_id_loss_weight > 0. --continue_train restores the weights, the Adam
state and global_step from --init_ckpt_file or else the newest checkpoint of
--checkpoint_dir and goes on with the next step (the data order too: the
first global_step batches of the seeded order are skipped).

Steps: global_step counts the updates done. Each step n = global_step + 1
runs while n <= --max_steps; a checkpoint `<checkpoint_dir>/model-<n>` is
written when n % save_freq == 0 and n >= min_steps, as the original; in
addition the last step (n = max_steps) is saved when n >= min_steps, so
that the end of a run is never lost (the original stops without it).
Summaries every summary_freq steps: TensorBoard scalars of every loss and
images (target composite render, source 1 warped into the target, its
covisibility mask, target depth) into <checkpoint_dir>, and a row of
<checkpoint_dir>/scalars.csv (step and every loss name of evaluate_losses;
an empty cell for a term whose weight is 0; a resumed run appends).
Checkpoints are name-based TF1 files (original names, mgc.train.checkpoints)
written atomically.

Distribution (mgc.train.trainer.choose_strategy): one device by default;
MirroredStrategy over several local GPUs; MultiWorkerMirroredStrategy when
TF_CONFIG names a cluster (the same command on each machine; worker 0
writes checkpoints and summaries, the other workers their copies of the
checkpoints into <checkpoint_dir>/worker_<task id>/). --batch_size is the global batch, split
across replicas.

Exit codes: 0 done; 1 a NaN or Inf loss stopped the run (the message names
the step and the term; the last checkpoint written stays the newest);
2 a set-up error (flags, dataset, face model, checkpoints), one `error:` line.
"""
import csv
import os
import sys
import time

from absl import app, flags
from tqdm import tqdm

from experiments import common_flags, mgcnet_flags
from mgc.data import TupleError
from mgc.facemodel.files import one_line
from mgc.losses.total import LOSS_NAMES, SUM_NAMES
from mgc.nets import CheckpointError

FLAGS = flags.FLAGS
common_flags.use("batch_size", "seed", "data_root")
flags.adopt_module_key_flags(mgcnet_flags)

flags.DEFINE_enum("preset", None, ["documented"], "documented: the weights of the documented "
                  "training command (§5.7); weight flags given explicitly win.")
flags.DEFINE_string("dataset_loader", "", "The original's loader choice; only '' (its "
                    "data_loader_semi_unsupervised_skin, mgc.data.reader) exists.")
flags.DEFINE_bool("flag_shuffle", True, "A new random order of the tuples every epoch.")
flags.DEFINE_string("checkpoint_dir", "../default_checkpoints/", "Where checkpoints, "
                    "TensorBoard summaries and scalars.csv go.")
flags.DEFINE_bool("continue_train", False, "Resume from --init_ckpt_file or the newest "
                  "checkpoint of --checkpoint_dir (weights, Adam state, global_step).")
flags.DEFINE_string("init_ckpt_file", None, "The checkpoint --continue_train resumes from "
                    "(default: the newest in --checkpoint_dir).")
flags.DEFINE_bool("flag_data_aug", False, "The original's per-batch augmentation.")
flags.DEFINE_integer("img_height", 224, "Input height; must be 224.")
flags.DEFINE_integer("img_width", 224, "Input width; must be 224.")
flags.DEFINE_integer("seq_length", 3, "Views per tuple; must be 3.")
flags.DEFINE_integer("num_source", 2, "Source views per tuple; must be 2.")
flags.DEFINE_integer("min_steps", 200000, "No checkpoint before this step.", lower_bound=0)
flags.DEFINE_integer("max_steps", 200000, "The last step.", lower_bound=0)
flags.DEFINE_integer("max_d", 64, "Unused, as in the original.")
flags.DEFINE_integer("summary_freq", 1, "Summaries every this many steps.", lower_bound=1)
flags.DEFINE_integer("save_freq", 50000, "A checkpoint every this many steps.", lower_bound=1)
flags.DEFINE_float("learning_rate", 1e-4, "Adam's learning rate.", lower_bound=0.0)
flags.DEFINE_float("beta1", 0.9, "Adam's beta1.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("is_read_pose", False, "Unused, as in the original.")
flags.DEFINE_bool("is_read_gpmm", False, "Unused, as in the original.")
flags.DEFINE_bool("disable_log", False, "Unused, as in the original.")
flags.DEFINE_string("ckpt_face_pretrain", None, "A slim ImageNet resnet_v1_50 checkpoint "
                    "to start the encoder from (logits and missing variables excluded).")
flags.DEFINE_string("ckpt_face_id_pretrain", None, "A checkpoint holding InceptionResnetV1/* "
                    "(FaceNet, frozen); required when --gpmm_id_loss_weight > 0.")
flags.DEFINE_integer("gpmm_rank", 80, "Identity/albedo rank; must be 80 (the 257 layout).")
flags.DEFINE_integer("gpmm_exp_rank", 64, "Expression rank; must be 64 (the 257 layout).")
flags.DEFINE_float("depth_min", 0.0, "Depth-map range lower end; only 0.0 is supported.")
flags.DEFINE_float("depth_max", 7500.0, "Depth-map range upper end; only 7500.0 is "
                   "supported.")

DEFAULT_BATCH_SIZE = 1
DEFAULT_SEED = 8964  # the original's
EXIT_DONE, EXIT_NAN, EXIT_SETUP = 0, 1, 2
_FIXED = {"img_height": 224, "img_width": 224, "seq_length": 3, "num_source": 2,
          "gpmm_rank": 80, "gpmm_exp_rank": 64, "depth_min": 0.0, "depth_max": 7500.0}
CSV_NAMES = LOSS_NAMES + SUM_NAMES


class SetupError(Exception):
    """The run cannot start; the message says why (exit code 2)."""


def _check_flags(weights):
    missing = [f"--{n}" for n in ("dataset_dir", "path_gpmm", "checkpoint_dir")
               if not FLAGS[n].value]
    if missing:
        raise SetupError(f"{', '.join(missing)} required")
    for name, value in _FIXED.items():
        if FLAGS[name].value != value:
            raise SetupError(f"--{name}={FLAGS[name].value}: only {value} is supported "
                             "(MGCNet's network and layout)")
    if FLAGS.dataset_loader:
        raise SetupError(f"--dataset_loader={FLAGS.dataset_loader}: only the original's "
                         "default loader ('') exists")
    if FLAGS.match_num != 68:
        raise SetupError(f"--match_num={FLAGS.match_num}: the losses need the 68 landmarks "
                         "of every view (--match_num=68)")
    if FLAGS.init_ckpt_file and not FLAGS.continue_train:
        raise SetupError("--init_ckpt_file is read only with --continue_train, as in the "
                         "original")
    if weights.gpmm_id_loss_weight > 0 and not FLAGS.ckpt_face_id_pretrain \
            and not FLAGS.continue_train:
        raise SetupError(f"--gpmm_id_loss_weight={weights.gpmm_id_loss_weight} needs "
                         "--ckpt_face_id_pretrain (a checkpoint with InceptionResnetV1/*)")
    directory = FLAGS.checkpoint_dir
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise SetupError(f"--checkpoint_dir={directory} is not a folder")
    if not FLAGS.continue_train and os.path.isdir(directory) and \
            os.path.exists(os.path.join(directory, "checkpoint")):
        raise SetupError(f"--checkpoint_dir={directory} holds checkpoints; pass "
                         "--continue_train to resume or name an empty folder")


def _face_model():
    try:
        return mgcnet_flags.face_model(FLAGS.data_root)
    except mgcnet_flags.FaceModelFlagError as error:
        raise SetupError(str(error)) from None


def _dataset(batch_size, seed):
    from mgc.data import reader
    try:
        return reader.tuple_dataset(FLAGS.dataset_dir, FLAGS.dataset_name_list, batch_size,
                                    shuffle=FLAGS.flag_shuffle, data_aug=FLAGS.flag_data_aug,
                                    match_num=FLAGS.match_num, seed=seed, repeat=True)
    except (TupleError, OSError, ValueError) as error:
        raise SetupError(one_line(error)) from None


def _resume_prefix():
    from mgc.train import checkpoints
    if FLAGS.init_ckpt_file:
        return FLAGS.init_ckpt_file
    prefix = checkpoints.latest(FLAGS.checkpoint_dir)
    if prefix is None:
        raise SetupError(f"--continue_train: no checkpoint in --checkpoint_dir="
                         f"{FLAGS.checkpoint_dir}")
    return prefix


def _networks(strategy, weights, model, batch_size, seed):
    """Encoder, identity network and trainer under the strategy, initialised;
    (trainer, global_step, resume prefix or None)."""
    from mgc.nets import load_identity_network
    from mgc.nets.encoder import Encoder
    from mgc.nets.checkpoints import open_checkpoint, restore_variables
    from mgc.nets.encoder import SCOPE
    from mgc.train.trainer import Trainer, glorot_initialise
    resume = _resume_prefix() if FLAGS.continue_train else None
    with strategy.scope():
        encoder = Encoder()
        glorot_initialise(encoder, seed)
        if FLAGS.ckpt_face_pretrain:
            wanted = {k: v for k, v in encoder.variables_by_name.items()
                      if not k.startswith(f"{SCOPE}/logits/")}
            try:
                report = restore_variables(wanted, FLAGS.ckpt_face_pretrain, SCOPE,
                                           required=False)
            except CheckpointError as error:
                raise SetupError(f"--ckpt_face_pretrain: {error}") from None
            loaded = len(wanted) - len(report.missing) - len(report.mismatched)
            if not loaded:
                raise SetupError(f"--ckpt_face_pretrain={FLAGS.ckpt_face_pretrain}: no "
                                 f"{SCOPE}/* variable of the encoder in it")
            print(f"--ckpt_face_pretrain: {loaded} of {len(encoder.variables_by_name)} encoder "
                  f"variables restored; not loaded (initialised): the logits layer, "
                  f"{len(report.missing)} missing (e.g. {(report.missing or ['-'])[0]}), "
                  f"{len(report.mismatched)} mis-shaped; {len(report.unused)} checkpoint "
                  "tensors unused", file=sys.stderr)
        identity = None
        if weights.gpmm_id_loss_weight > 0:
            source = FLAGS.ckpt_face_id_pretrain or resume
            flag = "--ckpt_face_id_pretrain" if FLAGS.ckpt_face_id_pretrain else \
                "--continue_train"
            try:
                identity = load_identity_network(source)
            except CheckpointError as error:
                raise SetupError(f"{flag}: {error}") from None
        trainer = Trainer(strategy, encoder, identity, model, weights, batch_size,
                          front_only=bool(FLAGS.flag_fore),
                          per_sample_gating=FLAGS.per_sample_gating,
                          learning_rate=FLAGS.learning_rate, beta1=FLAGS.beta1,
                          forms=mgcnet_flags.term_forms())
        step = 0
        if resume is not None:
            try:
                restore_variables(encoder.variables_by_name, resume, SCOPE, required=True)
                reader = open_checkpoint(resume)
                names = reader.get_variable_to_shape_map()
                optimizer = trainer.optimizer_variables()
                absent = [n for n in optimizer if n not in names]
                restore_variables({n: v for n, v in optimizer.items() if n in names}, resume,
                                  ("train_op",) + tuple(trainer.names), required=True)
                if "global_step" not in names:
                    raise CheckpointError(f"{resume}: the checkpoint lacks 'global_step'")
                step = int(reader.get_tensor("global_step"))
            except CheckpointError as error:
                raise SetupError(f"--continue_train: {error}") from None
            if absent:
                print(f"--continue_train: {resume} has no Adam state for {len(absent)} "
                      "variables; they start from zero", file=sys.stderr)
            print(f"resuming from {resume} at global_step {step}", file=sys.stderr)
    return trainer, step, resume


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    return resolver.task_type in (None, "chief") or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


class Log:
    """scalars.csv, TensorBoard and the NaN check of one run."""

    def __init__(self, directory, enabled):
        import tensorflow as tf
        self.enabled = enabled
        self.path = os.path.join(directory, "scalars.csv")
        if enabled:
            self.writer = tf.summary.create_file_writer(directory)
            if not os.path.exists(self.path) or os.path.getsize(self.path) == 0:
                with open(self.path, "w", newline="") as stream:
                    csv.writer(stream).writerow(("step",) + CSV_NAMES)

    def write(self, step, losses, images):
        if not self.enabled:
            return
        import tensorflow as tf
        with open(self.path, "a", newline="") as stream:
            csv.writer(stream).writerow([step] + [
                repr(losses[n]) if n in losses else "" for n in CSV_NAMES])
        with self.writer.as_default(step=step):
            for name, value in losses.items():
                tf.summary.write(f"loss/{name}", tf.constant(value, tf.float32),
                                 metadata=_plugin_metadata("scalars"))
            for name, image in images.items():
                image = tf.convert_to_tensor(image)[0]
                if image.shape.rank == 2:
                    image = image[..., None]
                image = tf.cast(image, tf.float32)
                if name == "depth_target":
                    top = tf.reduce_max(image)
                    image = tf.where(image > 0, image / tf.maximum(top, 1e-6), 0.0)
                png = tf.io.encode_png(tf.cast(tf.round(
                    255.0 * tf.clip_by_value(image, 0.0, 1.0)), tf.uint8))
                height, width = image.shape[0], image.shape[1]
                tf.summary.write(f"image/{name}", tf.stack([str(width), str(height), png]),
                                 metadata=_plugin_metadata("images"))
        self.writer.flush()


def _plugin_metadata(plugin):
    """SummaryMetadata naming TensorBoard's scalars or images plugin, so that
    the summaries are written with tf.summary.write alone (TensorBoard
    itself need not be installed to train)."""
    from tensorflow.core.framework import summary_pb2
    metadata = summary_pb2.SummaryMetadata()
    metadata.plugin_data.plugin_name = plugin
    if plugin == "images":
        metadata.data_class = summary_pb2.DATA_CLASS_BLOB_SEQUENCE
    else:
        metadata.data_class = summary_pb2.DATA_CLASS_SCALAR
    return metadata.SerializeToString()


def _non_finite(losses):
    import math
    for name in CSV_NAMES:
        if name in losses and not math.isfinite(losses[name]):
            return name
    return None


def train():
    """The whole run; returns the exit code."""
    weights = mgcnet_flags.loss_weights(FLAGS.preset)
    _check_flags(weights)
    import tensorflow as tf
    from mgc.train import checkpoints
    from mgc.train.trainer import choose_strategy, distribute
    strategy = choose_strategy()  # before any op: collectives are configured at start-up
    model = _face_model()
    batch_size = common_flags.value_or("batch_size", DEFAULT_BATCH_SIZE)
    seed = common_flags.value_or("seed", DEFAULT_SEED)
    dataset = _dataset(batch_size, seed)
    tf.random.set_seed(seed)
    trainer, step, _ = _networks(strategy, weights, model, batch_size, seed)
    chief = _is_chief(strategy)
    os.makedirs(FLAGS.checkpoint_dir, exist_ok=True)
    log = Log(FLAGS.checkpoint_dir, chief)
    # Other workers save their (identical) copies aside, as TensorFlow advises.
    save_dir = FLAGS.checkpoint_dir if chief else os.path.join(
        FLAGS.checkpoint_dir, f"worker_{strategy.cluster_resolver.task_id}")
    batches = iter(distribute(strategy, dataset.skip(step)))
    last_saved = checkpoints.latest(FLAGS.checkpoint_dir)
    started, done = time.time(), 0
    bar = tqdm(total=FLAGS.max_steps, initial=step, unit="step", file=sys.stderr,
               disable=not chief)
    with bar:
        while step < FLAGS.max_steps:
            n = step + 1
            try:
                losses, images, applied = trainer.step(next(batches))
            except tf.errors.InvalidArgumentError as error:
                bar.close()
                first = (error.message or str(error)).strip().splitlines()[0]
                print(f"error: step {n}: {first}; stopped, the last checkpoint is "
                      f"{last_saved or 'none'}", file=sys.stderr)
                return EXIT_NAN
            values = {k: float(v) for k, v in losses.items()}
            encoder_finite = values.pop("coefficients_finite") > 0
            bad = _non_finite(values)
            if bad is not None or not bool(applied):
                bar.close()
                cause = "" if encoder_finite else " (the encoder's coefficients are not finite)"
                print(f"error: step {n}: the loss {bad} is {values.get(bad)}{cause}; stopped, "
                      f"the last checkpoint is {last_saved or 'none'}", file=sys.stderr)
                return EXIT_NAN
            step = n
            done += 1
            if n % FLAGS.summary_freq == 0:
                log.write(n, values, images)
            if n >= FLAGS.min_steps and (n % FLAGS.save_freq == 0 or n == FLAGS.max_steps):
                last_saved = checkpoints.save(save_dir, n, trainer.state(n))
            bar.update(1)
            bar.set_postfix(total_loss=f"{values['total_loss']:.5g}",
                            steps_per_s=f"{done / (time.time() - started):.3g}")
    print(f"done: global_step {step}, last checkpoint {last_saved or 'none'}", file=sys.stderr)
    return EXIT_DONE


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=EXIT_SETUP)
    try:
        return train()
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
