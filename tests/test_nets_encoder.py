"""The encoder against the original MGCNet (shared/parity) and name-based
checkpoint loading (mgc.nets.checkpoints).

Parity: the oracle's test/coeff is the original network on input_uint8 with the
seeded checkpoint of shared/parity/make_inputs.py, run at batch 4 (the oracle
keeps rows 0-1). The checkpoint is regenerated into its own folder
(build/parity_inputs_encoder, --skip-h5) so it neither rewrites the h5 manifest
test_face_parity checks nor build/parity_inputs_facenet (tests/parity_inputs.py),
and is checked against the oracle's input manifest. Measured on the dev
machine (oneDNN on): batch 4 max |diff| 7.6e-6 (tz delta, 19.3 mm: 4 ulps);
batch 2 1.7e-5 on tz, 5.2e-6 elsewhere. The original's own batch-4-vs-1 noise
is 1.4e-5 (parity README §7), so batch 2 is held to 1e-5 + 1e-6 relative.
"""
import numpy as np
import pytest
import tensorflow as tf

import parity_inputs
from mgc.nets import CheckpointError, LoadReport, load_encoder, restore_variables
from mgc.nets.encoder import images_to_unit, variable_shapes

@pytest.fixture(scope="module")
def encoder(parity_checkpoint):
    return load_encoder(parity_checkpoint[0])


def test_encoder_matches_original_at_its_batch_size(encoder, parity_checkpoint, oracle):
    crops = parity_checkpoint[1]
    np.testing.assert_array_equal(crops[:2], oracle["input_uint8"])
    coeff = encoder(images_to_unit(crops)).numpy()
    assert coeff.shape == (4, 257)
    np.testing.assert_allclose(coeff[:2], oracle["test/coeff"], rtol=0, atol=1e-5)


def test_encoder_matches_original_on_oracle_input(encoder, oracle):
    coeff = encoder(images_to_unit(oracle["input_uint8"])).numpy()
    np.testing.assert_allclose(coeff, oracle["test/coeff"], rtol=1e-6, atol=1e-5)


def test_parity_checkpoint_loads_completely(encoder):
    report = encoder.load_report
    assert (report.unused, report.missing, report.mismatched) == ([], [], [])
    count = sum(v.shape.num_elements() for v in encoder.variables_by_name.values())
    assert count == 24_008_065  # spec §4.1: about 24.0 M


save_checkpoint = parity_inputs.save_checkpoint


def encoder_arrays():
    return {name: np.zeros(shape, np.float32) for name, shape in variable_shapes().items()}


def test_missing_checkpoint_names_the_path(tmp_path):
    prefix = tmp_path / "nowhere" / "model-400000"
    with pytest.raises(CheckpointError, match="nowhere/model-400000") as info:
        load_encoder(prefix)
    assert "\n" not in str(info.value)


def test_garbage_checkpoint_names_the_path(tmp_path):
    prefix = tmp_path / "model-1"
    (tmp_path / "model-1.index").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="model-1") as info:
        load_encoder(prefix)
    assert "\n" not in str(info.value)


def test_missing_logits_names_file_and_variable(tmp_path):
    arrays = encoder_arrays()
    del arrays["resnet_v1_50/logits/weights"]
    prefix = save_checkpoint(tmp_path / "no_logits", arrays)
    with pytest.raises(CheckpointError, match=r"no_logits.*'resnet_v1_50/logits/weights'") as info:
        load_encoder(prefix)
    assert "\n" not in str(info.value)


def test_wrong_shape_names_file_variable_and_shapes(tmp_path):
    arrays = encoder_arrays()
    arrays["resnet_v1_50/logits/weights"] = np.zeros((1, 1, 2048, 256), np.float32)
    prefix = save_checkpoint(tmp_path / "bad_shape", arrays)
    with pytest.raises(CheckpointError, match=r"bad_shape.*'resnet_v1_50/logits/weights'.*"
                                              r"\[1, 1, 2048, 256\].*\[1, 1, 2048, 257\]"):
        load_encoder(prefix)


def test_wrong_dtype_names_variable(tmp_path):
    prefix = save_checkpoint(tmp_path / "ints",
                             {"resnet_v1_50/conv1/biases": np.zeros(64, np.int32)})
    named = {"resnet_v1_50/conv1/biases": tf.Variable(tf.zeros([64]))}
    with pytest.raises(CheckpointError,
                       match=r"ints: variable 'resnet_v1_50/conv1/biases' is int32.*float32"):
        restore_variables(named, prefix, "resnet_v1_50")


def test_report_lists_unused_missing_and_mismatched(tmp_path):
    prefix = save_checkpoint(tmp_path / "mixed", {
        "resnet_v1_50/a/weights": np.full([2, 3], 1.5, np.float32),
        "resnet_v1_50/a/weights/Adam": np.zeros([2, 3], np.float32),
        "resnet_v1_50/b/weights": np.zeros([4], np.float32),
        "InceptionResnetV1/Conv2d_1a_3x3/weights": np.zeros([3, 3, 3, 32], np.float32),
        "VertexNormalsPreSplit/Variable": np.zeros([5, 3], np.float32),
        "global_step": np.int32(400000)})
    a, b, c = tf.Variable(tf.zeros([2, 3])), tf.Variable(tf.zeros([5])), tf.Variable(tf.zeros([1]))
    named = {"resnet_v1_50/a/weights": a, "resnet_v1_50/b/weights": b, "resnet_v1_50/c/biases": c}

    with pytest.raises(CheckpointError, match=r"mixed.*'resnet_v1_50/c/biases'"):
        restore_variables(named, prefix, "resnet_v1_50")
    assert not a.numpy().any(), "a failed restore must assign nothing"

    report = restore_variables(named, prefix, ["resnet_v1_50", "InceptionResnetV1"], required=False)
    # global_step and the normal buffers lie outside the scopes: not listed
    assert report == LoadReport(
        unused=["InceptionResnetV1/Conv2d_1a_3x3/weights", "resnet_v1_50/a/weights/Adam"],
        missing=["resnet_v1_50/c/biases"],
        mismatched=[("resnet_v1_50/b/weights", (4,), (5,))])
    np.testing.assert_array_equal(a.numpy(), 1.5)
    assert "unused: InceptionResnetV1/Conv2d_1a_3x3/weights" in report.lines()
    assert "mismatched: resnet_v1_50/b/weights checkpoint [4] variable [5]" in str(report)
