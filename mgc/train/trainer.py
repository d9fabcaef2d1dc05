"""MGCNet's training step (MGCNET_REFERENCE.md §1.4, §5.8) under tf.distribute.

    strategy = choose_strategy()
    with strategy.scope():
        encoder = Encoder(); trainer = Trainer(strategy, encoder, identity, model, weights, B)
    losses, images, applied = trainer.step(distributed_batch)

One step: the encoder on each view (view_coefficients), training_losses,
the gradients of total_loss w.r.t. the encoder's variables only (the
identity network stays frozen), and TF1's Adam (lr 1e-4, beta1 0.9, beta2
0.999, epsilon 1e-8, with the beta powers as variables:
lr_t = lr sqrt(1 - beta2^t) / (1 - beta1^t); var -= lr_t m / (sqrt(v) + eps)).

Distribution: the global batch is split across replicas, and each replica's
objective is its part of the original's loss over the whole batch, so that
the parts (and their gradients) summed over the replicas are the original's.
A batch-mean term's part is its share (local batch / global batch) of the
replica's mean; reg_shape_loss and reg_color_loss are sums over the batch in
the original, so a replica's own sum is its part; the gated multi-view terms
couple the samples through their flag gates (the [B, B] broadcast of
per_sample_gating=False; the flag-normalised sums), so they are computed with
the gate sums and size of the whole batch (an all-reduce) as parts
(multi_view.ReplicaBatch); the composites are the weighted sums of the parts.
The reported losses are the parts summed over the replicas.

The update is applied only when every loss is finite; `applied` says so,
so a NaN step leaves the weights and the optimizer state as they were.
"""
import json
import os

import numpy as np
import tensorflow as tf

from mgc.losses.multi_view import GATES, ReplicaBatch, TermForms
from mgc.losses.total import SUM_NAMES, total_loss
from mgc.losses.training import training_losses, view_coefficients

SUM_TERMS = ("reg_shape_loss", "reg_color_loss")  # sums over the batch in the original
# Terms whose value on a replica is already its part of the whole batch's.
OWN_PARTS = SUM_TERMS + tuple(GATES)
BATCH_KEYS = ("images", "skins", "landmarks", "flag")
IMAGE_SUMMARIES = ("render_composite", "viewsyn_image", "covisibility", "depth_target")


def choose_strategy(devices=None):
    """MultiWorkerMirroredStrategy when TF_CONFIG names a cluster, MirroredStrategy
    for several local GPUs, else the default strategy (one device)."""
    if os.environ.get("TF_CONFIG"):
        cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
        if sum(len(v) for v in cluster.values()) > 1:
            return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if devices or len(gpus) > 1:
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def glorot_initialise(encoder, seed):
    """slim.conv2d's default initialisation (xavier uniform weights, zero
    biases) of an encoder, repeatable with seed; for runs without
    --ckpt_face_pretrain (the original's Supervisor initialises so)."""
    rng = np.random.RandomState(seed)
    for name in sorted(encoder.variables_by_name):
        variable = encoder.variables_by_name[name]
        shape = variable.shape.as_list()
        if name.endswith("/weights"):
            fan_in = int(np.prod(shape[:-1]))
            fan_out = int(np.prod(shape[:-2])) * shape[-1]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            variable.assign(rng.uniform(-limit, limit, shape).astype(np.float32))
        else:
            variable.assign(np.zeros(shape, np.float32))


class Trainer(tf.Module):
    """The training step and the Adam state of an encoder. Create under
    strategy.scope(), with the encoder and identity network created there.
    The encoder is any callable (images [B, 224, 224, 3] in [0, 1] ->
    [B, 257]) with a `variables_by_name` dict of its trainable tf.Variables,
    as mgc.nets.encoder.Encoder; checkpoints use those names."""

    def __init__(self, strategy, encoder, identity_network, model, weights, global_batch_size,
                 front_only=True, per_sample_gating=False, learning_rate=1e-4, beta1=0.9,
                 beta2=0.999, epsilon=1e-8, forms=TermForms()):
        super().__init__(name="trainer")
        self.strategy = strategy
        self.encoder = encoder
        self.identity_network = identity_network
        self.model = model
        self.weights = weights
        self.global_batch_size = int(global_batch_size)
        self.front_only = bool(front_only)
        self.per_sample_gating = bool(per_sample_gating)
        self.forms = forms
        self.hyper = dict(lr=float(learning_rate), beta1=float(beta1), beta2=float(beta2),
                          epsilon=float(epsilon))
        self.names = sorted(encoder.variables_by_name)
        self.trainable = [encoder.variables_by_name[n] for n in self.names]
        self.m = {n: tf.Variable(tf.zeros_like(v), trainable=False, name=n + "/Adam")
                  for n, v in zip(self.names, self.trainable)}
        self.v = {n: tf.Variable(tf.zeros_like(v), trainable=False, name=n + "/Adam_1")
                  for n, v in zip(self.names, self.trainable)}
        self.beta1_power = tf.Variable(beta1, dtype=tf.float32, trainable=False,
                                       name="train_op/beta1_power")
        self.beta2_power = tf.Variable(beta2, dtype=tf.float32, trainable=False,
                                       name="train_op/beta2_power")

    # --- checkpoint names -------------------------------------------------
    def state(self, global_step):
        """name -> tensor of everything a checkpoint holds (original names)."""
        out = {}
        for name, variable in zip(self.names, self.trainable):
            out[name] = variable
            out[name + "/Adam"] = self.m[name]
            out[name + "/Adam_1"] = self.v[name]
        out["train_op/beta1_power"] = self.beta1_power
        out["train_op/beta2_power"] = self.beta2_power
        out["global_step"] = np.int32(global_step)
        return {k: (tf.convert_to_tensor(v) if isinstance(v, tf.Variable) else v)
                for k, v in out.items()}

    def optimizer_variables(self):
        out = {n + "/Adam": self.m[n] for n in self.names}
        out.update({n + "/Adam_1": self.v[n] for n in self.names})
        out["train_op/beta1_power"] = self.beta1_power
        out["train_op/beta2_power"] = self.beta2_power
        return out

    def reset_optimizer(self):
        """Adam's state as at construction (zero moments, beta powers beta1,
        beta2), so that one traced step serves several runs: re-initialise
        the encoder's variables in place, reset, train again."""
        for name in self.names:
            self.m[name].assign(tf.zeros_like(self.m[name]))
            self.v[name].assign(tf.zeros_like(self.v[name]))
        self.beta1_power.assign(self.hyper["beta1"])
        self.beta2_power.assign(self.hyper["beta2"])

    # --- the step ---------------------------------------------------------
    def _parts(self, losses, share):
        """This replica's parts of the whole batch's losses: they sum over the
        replicas to the original's values on the global batch."""
        terms = {name: value if name in OWN_PARTS else share * value
                 for name, value in losses.items() if name not in SUM_NAMES}
        return dict(terms, **total_loss(terms, self.weights))

    def _replica_batch(self):
        context = tf.distribute.get_replica_context()
        return ReplicaBatch(self.global_batch_size,
                            lambda x: context.all_reduce(tf.distribute.ReduceOp.SUM, x))

    def _replica_step(self, batch):
        size = tf.shape(batch["flag"])[0]
        share = tf.cast(size, tf.float32) / float(self.global_batch_size)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(self.trainable)
            coefficients = view_coefficients(self.encoder, batch)
            # Non-finite coefficients would stop the rasterizer with an
            # assertion; render zeros instead and report every loss as NaN.
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(c)) for c in coefficients])
            safe = [tf.where(finite, c, tf.zeros_like(c)) for c in coefficients]
            outputs = training_losses(safe, batch, self.model, self.identity_network,
                                      self.weights, front_only=self.front_only,
                                      per_sample_gating=self.per_sample_gating,
                                      forms=self.forms, replicas=self._replica_batch())
            losses = {name: tf.where(finite, value, float("nan"))
                      for name, value in outputs.losses.items()}
            parts = self._parts(losses, share)
            parts["coefficients_nonfinite"] = 1.0 - tf.cast(finite, tf.float32)
            objective = parts["total_loss"]
        gradients = tape.gradient(objective, self.trainable)
        gradients = [tf.zeros_like(v) if g is None else g
                     for g, v in zip(gradients, self.trainable)]
        tensors = outputs.tensors
        images = {}
        if "render_composite" in tensors:
            images["render_composite"] = tensors["render_composite"][0]
        if "viewsyn_image" in tensors:
            images["viewsyn_image"] = tensors["viewsyn_image"][0]
            images["covisibility"] = tensors["covisibility"][0]
        if "depth_target" in tensors:
            images["depth_target"] = tensors["depth_target"]
        return parts, gradients, images

    def _apply(self, gradients):
        h = self.hyper
        lr_t = h["lr"] * tf.sqrt(1.0 - self.beta2_power) / (1.0 - self.beta1_power)
        for name, variable, gradient in zip(self.names, self.trainable, gradients):
            m = self.m[name].assign(h["beta1"] * self.m[name] + (1.0 - h["beta1"]) * gradient)
            v = self.v[name].assign(h["beta2"] * self.v[name]
                                    + (1.0 - h["beta2"]) * tf.square(gradient))
            variable.assign_sub(lr_t * m / (tf.sqrt(v) + h["epsilon"]))
        self.beta1_power.assign(self.beta1_power * h["beta1"])
        self.beta2_power.assign(self.beta2_power * h["beta2"])
        return tf.constant(True)

    @tf.function
    def _distributed_step(self, batch):
        strategy = self.strategy
        parts, gradients, images = strategy.run(self._replica_step, args=(batch,))
        sum_ = tf.distribute.ReduceOp.SUM
        nonfinite = strategy.reduce(sum_, parts.pop("coefficients_nonfinite"), axis=None)
        losses = {name: strategy.reduce(sum_, value, axis=None) for name, value in parts.items()}
        losses["coefficients_finite"] = tf.cast(nonfinite == 0.0, tf.float32)
        gradients = [strategy.reduce(sum_, g, axis=None) for g in gradients]
        finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(v))
                                         for v in losses.values()]))
        finite = tf.logical_and(finite, losses["coefficients_finite"] > 0)
        applied = tf.cond(finite, lambda: self._apply(gradients), lambda: tf.constant(False))
        local_images = {k: strategy.experimental_local_results(v)[0] for k, v in images.items()}
        return losses, local_images, applied

    def step(self, batch):
        """One training step on a (distributed) batch: (losses dict of scalar
        tensors, with coefficients_finite 1.0 or 0.0 besides the loss names;
        images dict of the first replica's tensors; applied bool)."""
        return self._distributed_step(batch)


def distribute(strategy, dataset):
    """The dataset's training keys, split across the strategy's replicas."""
    dataset = dataset.map(lambda b: {k: b[k] for k in BATCH_KEYS})
    return strategy.experimental_distribute_dataset(dataset)
