"""Times MGCNet's training loss (mgc.losses.training_losses) for one 3-view
tuple, forward and forward+backward, at batch 1 and 4, with where the time
goes, and writes the table to docs/PERFORMANCE.md.

    python -m experiments.bench_losses [--repeats=5] [--batches=1,4] [--write_docs]

The tuple is the original's shared training tuple (build/parity_inputs_facenet,
written by the tests; the batch repeats it), the face model the synthetic
h5 of the parity inputs (the real BFM topology: 35,709 vertices), the weights
those of the parity README §5.2 (every term on), the networks the seeded
parity checkpoint. Everything runs as tf.functions, traced before timing;
each time is the median of --repeats calls, divided by the batch size.
Rows: the losses without the networks (the coefficients are the inputs and
the gradient is taken with respect to them; issue 12's goal: under 0.3 s per
tuple forward+backward), their parts (the renders of the three views, the two
covisibility maps, the two warps with the multi-view terms), the networks
alone (the encoder on the three views, FaceNet on the six identity crops),
and the whole step (encoder, identity network and losses; the gradient with
respect to the encoder's variables, as training takes it).
"""
import os
import statistics
import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from experiments import common_flags, doc_blocks
from mgc import paths
from mgc.facemodel import load_mgcnet_h5
from mgc.losses import LossWeights, image_to_float, inverse_warp, training_losses
from mgc.losses import covisibility_mask, relative_pose, view_coefficients
from mgc.losses.training import render_views

FLAGS = flags.FLAGS
common_flags.use("write_docs", "repeats", "batches")

DEFAULT_REPEATS = 5
DEFAULT_BATCHES = ["1", "4"]
GOAL_SECONDS = 0.3  # issue 12: the losses without the networks, forward+backward, per tuple
PERFORMANCE_DOC = os.path.join(paths.REPO_ROOT, "docs", "PERFORMANCE.md")
PARITY = os.path.join(paths.REPO_ROOT, "build")
H5 = os.path.join(PARITY, "parity_inputs", "bfm09_synth_presplit.h5")
FACENET = os.path.join(PARITY, "parity_inputs_facenet")
WEIGHTS = LossWeights(MULTIVIEW_weight=1.0, photom_weight=0.15, ssim_weight=0.85,
                      depth_weight=1e-4, epipolar_weight=0.0015, gpmm_lm_loss_weight=0.001,
                      lm_detail_weight=5.0, gpmm_pixel_loss_weight=1.9, gpmm_id_loss_weight=0.2,
                      gpmm_regular_shape_loss_weight=1e-4, gpmm_regular_color_loss_weight=3e-4)
NO_IDENTITY = LossWeights(**dict(WEIGHTS.__dict__, gpmm_id_loss_weight=0.0))


def _inputs():
    """(model, one tuple as a batch-1 dict, its coefficients [3, 1, 257])."""
    from mgc.data import reader
    for path in (H5, os.path.join(FACENET, "train_shared", "train.txt")):
        if not os.path.exists(path):
            raise app.UsageError(f"{path} is missing: `make test` writes the parity inputs",
                                 exitcode=2)
    batch = next(iter(reader.tuple_dataset(os.path.join(FACENET, "train_shared"),
                                           shuffle=False, repeat=False)))
    model = load_mgcnet_h5(H5)
    from mgc.nets import load_encoder, load_identity_network
    checkpoint = os.path.join(FACENET, "ckpt", "model-400000")
    encoder, identity = load_encoder(checkpoint), load_identity_network(checkpoint)
    coefficients = np.stack([c.numpy() for c in view_coefficients(encoder, batch)])
    return model, batch, coefficients, encoder, identity


def _repeat(batch, size):
    return {key: tf.repeat(value, size, axis=0) for key, value in batch.items()
            if key != "name"}


def _median_seconds(function, repeats):
    function()  # traced
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _cases(model, batch, coefficients, encoder, identity):
    """name -> a function of nothing, run as a tf.function."""
    variables = [tf.Variable(c) for c in coefficients]
    images = [image_to_float(batch["images"][:, v]) for v in range(3)]

    def losses():
        return training_losses(variables, batch, model, None, NO_IDENTITY).losses["total_loss"]

    def losses_backward():
        with tf.GradientTape() as tape:
            loss = losses()
        return tape.gradient(loss, variables)

    def renders():
        return render_views(variables, model, front_only=True)

    rendered = renders()
    fore = tf.gather(rendered[0].vertices, model.front_vertices, axis=1)

    def covisibility():
        return [covisibility_mask(rendered[0].triangle_ids, rendered[i].triangle_ids, fore,
                                  rendered[0].pose, model.front_triangles) for i in (1, 2)]

    def warps():
        return [inverse_warp(tf.concat([images[i], rendered[i].depth], -1), rendered[0].depth,
                             relative_pose(rendered[0].pose, rendered[i].pose)) for i in (1, 2)]

    def networks():
        crops = [identity(image, batch["landmarks"][:, v]) for v, image in enumerate(images)]
        return view_coefficients(encoder, batch), crops

    def step():
        with tf.GradientTape() as tape:
            loss = training_losses(view_coefficients(encoder, batch), batch, model, identity,
                                   WEIGHTS).losses["total_loss"]
        return tape.gradient(loss, encoder.trainable_variables)

    return [("losses without networks, forward", losses),
            ("losses without networks, forward+backward", losses_backward),
            ("  of which: the 3 views rendered (forward)", renders),
            ("  of which: 2 covisibility maps", covisibility),
            ("  of which: 2 warps (image and depth)", warps),
            ("networks: encoder x3, FaceNet x3 (forward)", networks),
            ("whole step: networks and losses, forward+backward", step)]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=2)
    repeats = common_flags.value_or("repeats", DEFAULT_REPEATS)
    batches = [int(b) for b in common_flags.value_or("batches", DEFAULT_BATCHES)]
    model, one, coefficients, encoder, identity = _inputs()
    rows = {}
    for size in batches:
        batch = _repeat(one, size)
        cases = _cases(model, batch, np.repeat(coefficients, size, axis=1), encoder, identity)
        for name, function in cases:
            seconds = _median_seconds(tf.function(function), repeats)
            rows.setdefault(name, []).append(seconds / size)
            print(f"batch {size}: {name}: {seconds / size:.3f} s per tuple", file=sys.stderr)
    header = " | ".join(f"batch {size}" for size in batches)
    lines = [f"| seconds per tuple | {header} |", "|---|" + "---|" * len(batches)]
    lines += [f"| {name} | " + " | ".join(f"{s:.3f}" for s in seconds) + " |"
              for name, seconds in rows.items()]
    goal = rows["losses without networks, forward+backward"]
    met = "met" if max(goal) < GOAL_SECONDS else "not met"
    text = "\n".join(lines + [
        "", f"{os.cpu_count()} CPU cores, tf.functions, median of {repeats} calls; goal: the "
        f"losses without the networks under {GOAL_SECONDS} s per tuple forward+backward "
        f"({met})."])
    print(text)
    if FLAGS.write_docs:
        doc_blocks.replace_block(PERFORMANCE_DOC, "bench_losses", text)


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
