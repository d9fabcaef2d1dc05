"""Times MGCNet's encoder (mgc.nets.encoder) against Keras' ResNet-50 as a
yardstick and writes the table to docs/PERFORMANCE.md.

Both networks take float32 [B, 224, 224, 3] and give [B, 257]: the yardstick
is tf.keras.applications.ResNet50(weights=None, classes=257,
classifier_activation=None), i.e. with its top (global average pool and a
2048 -> 257 dense layer, no softmax) so that its head matches the encoder's
logits conv. Both run as tf.functions in inference mode (Keras: training=False,
batch norm from its moving statistics), timed in one process and interleaved
(the order alternating every repeat) so that load from other work on the
machine hits both alike. The encoder uses the seeded parity checkpoint
(build/parity_inputs_encoder, see tests/test_nets_encoder.py) when it is
there, zero weights otherwise; the yardstick has Keras' random initial
weights. Weights do not change the speed. The default of 3 repeats keeps
the run at 1-2.5 minutes on 2 cores (a batch-32 call takes 2.5-10 s,
depending on other load).

    python -m experiments.bench_encoder [--repeats=3] [--write_docs]

--repeats defaults to 3 here, --batches to 1,8,32; --write_docs replaces the "bench_encoder"
block in docs/PERFORMANCE.md.
"""
import datetime
import os
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from experiments import common_flags, doc_blocks
from mgc import paths
from mgc.nets.encoder import IMAGE_SIZE, NUM_OUTPUTS, Encoder, load_encoder

FLAGS = flags.FLAGS
common_flags.use("write_docs", "repeats", "batches")
flags.DEFINE_integer("warmup", 1, "Untimed calls per network and batch size after the first "
                     "(tracing) call, before timing.",
                     lower_bound=1)

DEFAULT_REPEATS = 3
DEFAULT_BATCHES = ["1", "8", "32"]


def repeats():
    return common_flags.value_or("repeats", DEFAULT_REPEATS)


PERFORMANCE_DOC = os.path.join(paths.REPO_ROOT, "docs", "PERFORMANCE.md")
CHECKPOINT = os.path.join(paths.REPO_ROOT, "build", "parity_inputs_encoder", "ckpt",
                          "model-400000")
GOAL_BATCH, GOAL_RATIO = 32, 0.9  # issue 11


def encoder_and_weights():
    """(the encoder, which weights it has)."""
    if tf.io.gfile.exists(CHECKPOINT + ".index"):
        return load_encoder(CHECKPOINT), "seeded parity checkpoint"
    return Encoder(), "zero weights (no seeded checkpoint in build/parity_inputs_encoder)"


def yardstick():
    """Keras' ResNet-50 with a 257-way linear top, as a tf.function."""
    model = tf.keras.applications.ResNet50(
        weights=None, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), classes=NUM_OUTPUTS,
        classifier_activation=None)
    return tf.function(lambda images: model(images, training=False))


def random_images(batch):
    rng = np.random.default_rng(batch)
    return tf.constant(rng.uniform(size=(batch, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32))


def interleaved_medians(networks, images, repeats, warmup):
    """Median seconds per call of each network, timed alternately."""
    for network in networks:
        for _ in range(warmup):  # the caller's first call traced; this warms oneDNN
            network(images).numpy()
    times = [[] for _ in networks]
    for repeat in range(repeats):
        order = range(len(networks)) if repeat % 2 == 0 else reversed(range(len(networks)))
        for i in order:
            start = time.perf_counter()
            networks[i](images).numpy()
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t)) for t in times]


def time_batch(encoder, resnet, batch):
    images = random_images(batch)
    # the first (tracing) call of each, never timed
    assert encoder(images).shape == resnet(images).shape == (batch, NUM_OUTPUTS)
    mine, theirs = interleaved_medians([encoder, resnet], images, repeats(), FLAGS.warmup)
    return {"batch": batch, "encoder": batch / mine, "resnet": batch / theirs,
            "ratio": theirs / mine}


def table(rows):
    lines = ["| batch | encoder images/s | Keras ResNet50 images/s | ratio (encoder / ResNet50) |",
             "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['batch']} | {r['encoder']:.1f} | {r['resnet']:.1f} "
                     f"| {r['ratio']:.2f} |")
    return "\n".join(lines)


def notes(weights, threads):
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"Measured {datetime.date.today().isoformat()}, TensorFlow {tf.__version__}, CPU, "
            f"{threads} threads, median of {repeats()} calls after a tracing call and "
            f"{FLAGS.warmup} more untimed; encoder weights: {weights}; "
            f"load average at the end: {load}.")


def main(argv):
    del argv
    encoder, weights = encoder_and_weights()
    resnet = yardstick()
    batches = common_flags.value_or("batches", DEFAULT_BATCHES)
    rows = [time_batch(encoder, resnet, int(b)) for b in batches]
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count()
    text = table(rows) + "\n\n" + notes(weights, threads)
    print(f"MGCNet encoder vs tf.keras.applications.ResNet50:\n{text}")
    goal = [r for r in rows if r["batch"] == GOAL_BATCH]
    if goal:
        met = "met" if goal[0]["ratio"] >= GOAL_RATIO else "NOT met"
        print(f"goal (batch {GOAL_BATCH}, ratio >= {GOAL_RATIO}): {met}")
    if FLAGS.write_docs:
        doc_blocks.replace_block(PERFORMANCE_DOC, "bench_encoder", text)
        print(f"wrote {PERFORMANCE_DOC}")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
