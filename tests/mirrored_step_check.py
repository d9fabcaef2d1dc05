"""Run by tests/test_train.py in its own process (the CPU must be split into
two logical devices before TensorFlow starts): two training steps of the
small encoder of experiments/multi_view_claim.py on the same global batch of
2 synthetic tuples, once on one device and once under MirroredStrategy over
the two logical CPUs (one tuple a replica). Prints JSON: each run's losses
per step and its weights after the steps, as lists.

    python -m tests.mirrored_step_check FACE_MODEL_H5 DATA_ROOT
"""
import dataclasses
import json
import sys

import tensorflow as tf

STEPS = 2
SEED = 1


def _split_cpu():
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


def _run(strategy, model, batch):
    from experiments.multi_view_claim import small_encoder_class, SMALL_SCOPE
    from experiments.mgcnet_flags import loss_weights
    from mgc.train.trainer import Trainer, distribute, glorot_initialise
    weights = dataclasses.replace(loss_weights("documented"), gpmm_id_loss_weight=0.0)
    with strategy.scope():
        encoder = small_encoder_class()()
        glorot_initialise(encoder, SEED)
        # Small but nonzero outputs: every layer gets a gradient, the faces
        # stay near the mean at the default pose.
        logits = encoder.variables_by_name[f"{SMALL_SCOPE}/logits/weights"]
        logits.assign(logits * 0.01)
        trainer = Trainer(strategy, encoder, None, model, weights, global_batch_size=2)
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(2).repeat(STEPS)
    losses = []
    for distributed in iter(distribute(strategy, dataset)):
        step_losses, _, applied = trainer.step(distributed)
        assert bool(applied), "a step was not applied"
        losses.append({k: float(v) for k, v in step_losses.items()})
    return {"replicas": strategy.num_replicas_in_sync, "losses": losses,
            "weights": {n: encoder.variables_by_name[n].numpy().ravel().tolist()
                        for n in sorted(encoder.variables_by_name)}}


def main(h5, data_root):
    _split_cpu()
    from experiments.multi_view_claim import make_tuples
    from mgc.facemodel import load_face_model
    model = load_face_model(h5, data_root=data_root)
    data, _ = make_tuples(model, 2, 0, 0, data_root)
    batch = {k: tf.constant(v) for k, v in data.items()}
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    runs = {"one_device": _run(tf.distribute.OneDeviceStrategy(devices[0]), model, batch),
            "mirrored": _run(tf.distribute.MirroredStrategy(devices), model, batch)}
    json.dump(runs, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
