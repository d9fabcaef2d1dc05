"""Times MGCNet's training step (mgc.train.trainer.Trainer.step: the
ResNet-50 encoder at 224 on the three views, training_losses, TF1 Adam) at
batch 1 and 2 (3 views per tuple), and where the time goes; writes the table
to docs/PERFORMANCE.md.

    python -m experiments.bench_train [--repeats=5] [--batches=1,2] [--write_docs]

Inputs as experiments/bench_losses.py: the original's shared training tuple
(build/parity_inputs_facenet, written by the tests; the batch repeats it),
the parity inputs' synthetic h5 (the real BFM topology, 35,709 vertices),
the seeded parity checkpoint for the encoder and FaceNet, and the weights of
the documented training command (--preset=documented, §5.7: landmarks,
photometric, identity, priors, pixel and depth consistency).

Every part is a tf.function, traced and run once before timing; each time
is the median of --repeats calls. Rows: the whole step (Trainer.step, the
update included) as seconds, steps/s and images/s, and the share of the
step's time of each part timed on its own: the encoder on the three views,
forward and backward (the gradient of its outputs with respect to its 108
variables); the renders of the three views, forward and backward (with
respect to the coefficients); FaceNet on the six identity crops, forward and
backward (the gradient through the three composites' crops, as training
takes it; the photos' crops forward only); the other losses (training_losses
forward and backward with respect to the coefficients, less the renders and
FaceNet: landmarks, photometric, covisibility, warps, multi-view terms,
gating); the optimizer update (Adam on the 108 variables). What the parts do
not add up to (their overlap with each other, the gradient's glue, the
finite checks) is the last row, which can be negative.
"""
import os
import statistics
import sys
import time

import tensorflow as tf
from absl import app, flags

from experiments import common_flags, doc_blocks
from mgc import paths
from mgc.facemodel import load_mgcnet_h5
from mgc.losses import LossWeights, image_to_float, training_losses, view_coefficients
from mgc.losses.training import render_views

FLAGS = flags.FLAGS
common_flags.use("write_docs", "repeats", "batches")

DEFAULT_REPEATS = 5
DEFAULT_BATCHES = ["1", "2"]
VIEWS = 3
PERFORMANCE_DOC = os.path.join(paths.REPO_ROOT, "docs", "PERFORMANCE.md")
BUILD = os.path.join(paths.REPO_ROOT, "build")
H5 = os.path.join(BUILD, "parity_inputs", "bfm09_synth_presplit.h5")
FACENET = os.path.join(BUILD, "parity_inputs_facenet")
CHECKPOINT = os.path.join(FACENET, "ckpt", "model-400000")
TUPLES = os.path.join(FACENET, "train_shared")
WEIGHTS = LossWeights.documented()


def _inputs():
    """(model, one tuple as a batch-1 dict, encoder, identity network)."""
    from mgc.data import reader
    from mgc.nets import load_encoder, load_identity_network
    for path in (H5, os.path.join(TUPLES, "train.txt"), CHECKPOINT + ".index"):
        if not os.path.exists(path):
            raise app.UsageError(f"{path} is missing: `make test` writes the parity inputs",
                                 exitcode=2)
    one = next(iter(reader.tuple_dataset(TUPLES, shuffle=False, repeat=False)))
    return load_mgcnet_h5(H5), one, load_encoder(CHECKPOINT), load_identity_network(CHECKPOINT)


def _repeat(batch, size):
    return {key: tf.repeat(batch[key], size, axis=0)
            for key in ("images", "skins", "landmarks", "flag")}


def _median_seconds(function, repeats):
    function()  # traced and warmed up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cases(model, batch, encoder, identity, trainer):
    """(name, function of nothing) of the whole step and its parts."""
    coefficients = [tf.Variable(c) for c in view_coefficients(encoder, batch)]
    cotangents = [tf.random.stateless_normal(c.shape, (1, 2)) for c in coefficients]
    images = [image_to_float(batch["images"][:, v]) for v in range(VIEWS)]

    def step():
        return trainer.step(batch)[0]["total_loss"]

    def encoder_part():
        with tf.GradientTape() as tape:
            outputs = view_coefficients(encoder, batch)
            loss = tf.add_n([tf.reduce_sum(o * c) for o, c in zip(outputs, cotangents)])
        return tape.gradient(loss, trainer.trainable)

    def renders():
        with tf.GradientTape() as tape:
            rendered = render_views(coefficients, model, front_only=True)
            loss = tf.add_n([tf.reduce_sum(r.image) + tf.reduce_sum(r.depth) * 1e-3
                             + tf.reduce_sum(r.landmarks_2d) for r in rendered])
        return tape.gradient(loss, coefficients)

    def facenet():
        # Training embeds each view's photo (a constant) and its composite
        # render (the gradient flows back through these three).
        renders_in = [tf.identity(image) for image in images]
        with tf.GradientTape() as tape:
            tape.watch(renders_in)
            photos = [identity(image, batch["landmarks"][:, v]) for v, image in enumerate(images)]
            embedded = [identity(image, batch["landmarks"][:, v])
                        for v, image in enumerate(renders_in)]
            loss = tf.add_n([tf.reduce_sum(a * b) for a, b in zip(photos, embedded)])
        return tape.gradient(loss, renders_in)

    def losses():
        with tf.GradientTape() as tape:
            total = training_losses(coefficients, batch, model, identity,
                                    WEIGHTS).losses["total_loss"]
        return tape.gradient(total, coefficients)

    gradients = [tf.zeros_like(v) + 1e-3 for v in trainer.trainable]

    def update():
        return trainer._apply(gradients)  # pylint: disable=protected-access

    return [("step", step), ("encoder", encoder_part), ("renders", renders),
            ("facenet", facenet), ("losses", losses), ("update", update)]


def _measure(model, one, encoder, identity, size, repeats):
    """name -> median seconds at this batch size."""
    from mgc.train.trainer import Trainer
    trainer = Trainer(tf.distribute.get_strategy(), encoder, identity, model, WEIGHTS, size)
    batch = _repeat(one, size)
    seconds = {}
    for name, function in _cases(model, batch, encoder, identity, trainer):
        seconds[name] = _median_seconds(tf.function(function) if name != "step" else function,
                                        repeats)
        print(f"batch {size}: {name}: {seconds[name]:.3f} s", file=sys.stderr)
    return seconds


ROWS = (("encoder x3, forward+backward", lambda s: s["encoder"]),
        ("renders of the 3 views, forward+backward", lambda s: s["renders"]),
        ("FaceNet x6 (identity), forward, x3 backward", lambda s: s["facenet"]),
        ("other losses, forward+backward", lambda s: s["losses"] - s["renders"] - s["facenet"]),
        ("optimizer update (Adam, 108 variables)", lambda s: s["update"]),
        ("not in the parts (overlap, glue, checks)",
         lambda s: s["step"] - s["encoder"] - s["losses"] - s["update"]))


def table(measured, repeats, busy):
    sizes = sorted(measured)
    header = " | ".join(f"batch {size} ({size * VIEWS} images)" for size in sizes)
    lines = [f"| training step | {header} |", "|---|" + "---|" * len(sizes)]
    lines.append("| seconds per step | " + " | ".join(
        f"{measured[s]['step']:.2f}" for s in sizes) + " |")
    lines.append("| steps/s | " + " | ".join(
        f"{1 / measured[s]['step']:.3f}" for s in sizes) + " |")
    lines.append("| images/s | " + " | ".join(
        f"{s * VIEWS / measured[s]['step']:.2f}" for s in sizes) + " |")
    for name, part in ROWS:
        cells = [f"{part(measured[s]):.2f} s ({100 * part(measured[s]) / measured[s]['step']:.0f} %)"
                 for s in sizes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    note = (" The machine was shared with other jobs (load average "
            f"{busy:.1f} before the run), so the numbers may be slower than on an idle one."
            if busy > 0.5 else "")
    lines += ["", f"{os.cpu_count()} CPU cores, ResNet-50 encoder at 224, documented weights "
              f"(identity term on), tf.functions after a warm-up call, median of {repeats} "
              f"calls; measured {time.strftime('%Y-%m-%d')}.{note}"]
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=2)
    repeats = common_flags.value_or("repeats", DEFAULT_REPEATS)
    try:
        sizes = [int(b) for b in common_flags.value_or("batches", DEFAULT_BATCHES)]
    except ValueError:
        raise app.UsageError("--batches: integers expected", exitcode=2) from None
    if not sizes or min(sizes) < 1:
        raise app.UsageError("--batches: sizes of at least 1 expected", exitcode=2)
    busy = os.getloadavg()[0]
    model, one, encoder, identity = _inputs()
    measured = {size: _measure(model, one, encoder, identity, size, repeats) for size in sizes}
    text = table(measured, repeats, busy)
    print(text)
    if FLAGS.write_docs:
        doc_blocks.replace_block(PERFORMANCE_DOC, "bench_train", text)


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
