"""Every loss of MGCNet's training graph on a dataset of training tuples:
the validation-loss tool of training.

    python -m experiments.evaluate_losses --dataset_dir=DIR --checkpoint=ckpt/model-400000 \\
        --path_gpmm=bfm09_trim_exp_uv_presplit.h5 --output=losses.json

--dataset_dir holds tuples in the original layout (<dataset_dir>/
<dataset_name_list>.txt; mgc.data.layout); --checkpoint is one checkpoint
prefix holding both resnet_v1_50/* (the encoder) and InceptionResnetV1/*
(the identity network); --path_gpmm is MGCNet's h5 (or a face-model file
with its 257 layout). The weight flags, --match_num, --flag_fore,
--dataset_name_list and --batch_size (default 1) are the original
train_unsupervise.py's (experiments/mgcnet_flags.py).

Each batch goes through the encoder (each view on its own, as the original)
and mgc.losses.training_losses with every term computed. The printed table
and the --output JSON (one flat object, e.g. {"reg_shape_loss": 38.27, ...})
hold the nine unweighted terms and common_loss, mgc_loss and total_loss with
the given weights, each the mean over the dataset's tuples (a batch's value
counts once per tuple in it; the last batch may be smaller). --output is
written whole or not at all and is not replaced without --overwrite.

A bad tuple stops the run with an error naming its file and line, before
any work where it can be found up front; --skip_bad skips and counts such
tuples instead.

Exit codes: 0 written; 2 a usage or set-up error (flags, dataset,
checkpoint, face model, output), nothing written.
"""
import os
import sys

from absl import app, flags
from tqdm import tqdm

from experiments import common_flags, mgcnet_flags
from mgc.data import TupleError
from mgc.facemodel.files import one_line
from mgc.job_files import write_json
from mgc.losses.total import LOSS_NAMES, SUM_NAMES
from mgc.nets import CheckpointError

FLAGS = flags.FLAGS
common_flags.use("output", "overwrite", "batch_size", "checkpoint", "data_root")
flags.adopt_module_key_flags(mgcnet_flags)  # the original's flags show in --help
flags.DEFINE_bool("skip_bad", False, "Skip (and count) bad tuples instead of stopping.")

DEFAULT_BATCH_SIZE = 1  # the original's
EXIT_WRITTEN, EXIT_SETUP = 0, 2


class SetupError(Exception):
    """The evaluation cannot run; the message says why (exit code 2)."""


def _check_flags():
    missing = [f"--{name}" for name in ("dataset_dir", "checkpoint", "path_gpmm", "output")
               if not FLAGS[name].value]
    if missing:
        raise SetupError(f"{', '.join(missing)} required")
    if FLAGS.match_num != 68:
        raise SetupError(f"--match_num={FLAGS.match_num}: the losses need the 68 landmarks "
                         "of every view (--match_num=68)")
    output = FLAGS.output
    if os.path.isdir(output):
        raise SetupError(f"--output={output} is a folder; name the JSON file to write")
    if os.path.exists(output) and not FLAGS.overwrite:
        raise SetupError(f"--output={output} exists; pass --overwrite to replace it")
    parent = os.path.dirname(os.path.abspath(output))
    if os.path.exists(parent) and not os.access(parent, os.W_OK):
        raise SetupError(f"--output={output}: {parent} is not writable")


def _face_model():
    try:
        return mgcnet_flags.face_model(FLAGS.data_root)
    except mgcnet_flags.FaceModelFlagError as error:
        raise SetupError(str(error)) from None


def _networks():
    from mgc.nets import load_encoder, load_identity_network  # TensorFlow: after the checks
    try:
        return load_encoder(FLAGS.checkpoint), load_identity_network(FLAGS.checkpoint)
    except CheckpointError as error:
        raise SetupError(f"--checkpoint: {error}") from None


def _dataset(batch_size):
    from mgc.data import reader
    try:
        return reader.tuple_dataset(FLAGS.dataset_dir, FLAGS.dataset_name_list, batch_size,
                                    shuffle=False, match_num=FLAGS.match_num,
                                    skip_bad=FLAGS.skip_bad, repeat=False)
    except (TupleError, OSError) as error:
        raise SetupError(one_line(error)) from None


def evaluate(dataset, encoder, identity_network, model, weights, front_only=True,
             per_sample_gating=False, progress=True, forms=None):
    """Mean of every loss over the dataset's tuples: dict name -> float.
    forms: mgc.losses.TermForms (None: the original's)."""
    from mgc.losses.multi_view import TermForms
    from mgc.losses.training import training_losses, view_coefficients
    sums, count = {}, 0
    total = dataset.report.used if hasattr(dataset, "report") else None
    with tqdm(total=total, unit="tuple", file=sys.stderr, disable=not progress) as bar:
        for batch in dataset:
            losses = training_losses(view_coefficients(encoder, batch), batch, model,
                                     identity_network, weights, front_only=front_only,
                                     per_sample_gating=per_sample_gating, all_terms=True,
                                     forms=forms or TermForms()).losses
            size = int(batch["flag"].shape[0])
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value) * size
            count += size
            bar.update(size)
            bar.set_postfix(total_loss=f"{sums['total_loss'] / count:.4g}")
    if not count:
        raise SetupError("the dataset has no usable tuple")
    return {name: sums[name] / count for name in LOSS_NAMES + SUM_NAMES}


def table(values, weights):
    """The printed table: term, value, weight, weighted."""
    weight_of = dict(weights.common_terms() + weights.multi_view_terms())
    lines = [f"{'loss':16s} {'value':>14s} {'weight':>10s} {'weighted':>14s}"]
    for name in LOSS_NAMES:
        weight = weight_of[name]
        lines.append(f"{name:16s} {values[name]:14.7g} {weight:10.4g} "
                     f"{weight * values[name]:14.7g}")
    for name in SUM_NAMES:
        lines.append(f"{name:16s} {values[name]:14.7g}")
    return lines


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}", exitcode=EXIT_SETUP)
    try:
        _check_flags()
        weights = mgcnet_flags.loss_weights()
        model = _face_model()
        dataset = _dataset(common_flags.value_or("batch_size", DEFAULT_BATCH_SIZE))
        encoder, identity_network = _networks()
        values = evaluate(dataset, encoder, identity_network, model, weights,
                          front_only=bool(FLAGS.flag_fore),
                          per_sample_gating=FLAGS.per_sample_gating,
                          forms=mgcnet_flags.term_forms())
    except SetupError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_SETUP
    report = dataset.report
    if report.skipped_count:
        print(f"{report.skipped_count} bad tuple(s) skipped (--skip_bad)", file=sys.stderr)
    print("\n".join(table(values, weights)))
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    write_json(FLAGS.output, values)
    print(f"Written: {FLAGS.output} ({report.used} tuples)")
    return EXIT_WRITTEN


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
