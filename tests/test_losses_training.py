"""The whole training loss against the original's (shared/parity README §5):
fed with its coefficients (the loss port), and end to end from the tuple on
disk through the reader and the encoder (evaluate_losses).

Tolerances are the README's §5.5: fed with train/coeff every loss within
1e-4 relative, id 1e-3, depth 2e-3; end to end 1e-4, id and epi 1e-3, depth
5e-3 (the multi-view terms move by up to 1e-3 when a warp shifts by a
fraction of a pixel or one mask pixel flips).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import parity_inputs
from mgc import paths
from mgc.losses import LossWeights
from mgc.losses.total import LOSS_NAMES, SUM_NAMES
from mgc.losses.training import training_losses

# The parity README §5.2: the documented command with every term on.
README_WEIGHTS = dict(MULTIVIEW_weight=1.0, photom_weight=0.15, ssim_weight=0.85,
                      depth_weight=1e-4, epipolar_weight=0.0015, gpmm_lm_loss_weight=0.001,
                      lm_detail_weight=5.0, gpmm_pixel_loss_weight=1.9, gpmm_id_loss_weight=0.2,
                      gpmm_regular_shape_loss_weight=1e-4, gpmm_regular_color_loss_weight=3e-4)
FED_TOLERANCE = dict(id_loss=1e-3, depth_loss=2e-3)
END_TO_END_TOLERANCE = dict(id_loss=1e-3, epi_loss=1e-3, depth_loss=5e-3)


def _views(row):
    """[B, 224, 672, 3] left | target | right -> [B, 3, 224, 224, 3] target, left, right."""
    return np.stack([row[:, :, 224:448], row[:, :, :224], row[:, :, 448:]], axis=1)


@pytest.fixture(scope="module")
def facenet_checkpoint(oracle):
    return parity_inputs.facenet_checkpoint(oracle)


@pytest.fixture(scope="module")
def fed_outputs(oracle, parity_model, facenet_checkpoint):
    from mgc.nets import load_identity_network
    batch = dict(images=_views(oracle["train_input/image_uint8"]),
                 skins=_views(oracle["train_input/skin_uint8"]),
                 landmarks=oracle["train_input/lm68"], flag=oracle["train_input/flag_sgl_mul"])
    coefficients = [tf.constant(c) for c in oracle["train/coeff"]]
    return training_losses(coefficients, batch, parity_model,
                           load_identity_network(facenet_checkpoint),
                           LossWeights(**README_WEIGHTS), all_terms=True)


def _check_losses(values, oracle, tolerances):
    for name in LOSS_NAMES + SUM_NAMES:
        expected = float(oracle[f"train/{name}"])
        assert float(values[name]) == pytest.approx(expected, rel=tolerances.get(name, 1e-4)), name


def test_every_loss_fed_with_the_original_coefficients(fed_outputs, oracle):
    _check_losses(fed_outputs.losses, oracle, FED_TOLERANCE)


def test_intermediates_fed_with_the_original_coefficients(fed_outputs, oracle):
    tensors = {name: np.stack([np.asarray(t) for t in value]) if isinstance(value, list)
               else np.asarray(value) for name, value in fed_outputs.tensors.items()}
    rel_pose = tensors["rel_pose"] - oracle["train/rel_pose"]
    assert np.abs(rel_pose[..., :3]).max() < 1e-5  # rad
    assert np.abs(rel_pose[..., 3:]).max() < 1e-2  # mm
    assert np.abs(tensors["depth_target"] - oracle["train/depth_target"]).max() < 1e-2  # mm
    for name in ("render_composite", "viewsyn_image"):
        outliers = np.abs(tensors[name] - oracle[f"train/{name}"]) > 1e-3
        assert outliers.mean() <= 1e-3, name
    for name in ("render_mask", "viewsyn_mask"):
        assert ((tensors[name] > 0.5) != (oracle[f"train/{name}"] > 0.5)).mean() <= 1e-3, name
    np.testing.assert_allclose(tensors["skin"], oracle["train/skin"], atol=1e-6)
    np.testing.assert_allclose(tensors["lm2d"], oracle["train/lm2d"], atol=1e-3)
    for name in ("id_image", "id_render"):
        np.testing.assert_allclose(tensors[name], oracle[f"train/{name}"], atol=1e-3)


def test_zero_weights_leave_terms_out(oracle, parity_model):
    batch = dict(images=_views(oracle["train_input/image_uint8"]),
                 skins=_views(oracle["train_input/skin_uint8"]),
                 landmarks=oracle["train_input/lm68"], flag=oracle["train_input/flag_sgl_mul"])
    coefficients = [tf.constant(c) for c in oracle["train/coeff"]]
    # No identity network is needed when id_loss is off; MULTIVIEW 0 drops mgc from the total.
    weights = LossWeights(**dict(README_WEIGHTS, gpmm_id_loss_weight=0.0, MULTIVIEW_weight=0.0,
                                 ssim_weight=0.0))
    losses = training_losses(coefficients, batch, parity_model, None, weights).losses
    assert "id_loss" not in losses and "ssim_loss" not in losses and "pixel_loss" in losses
    expected = float(oracle["train/common_loss"]) - 0.2 * float(oracle["train/id_loss"])
    assert float(losses["total_loss"]) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="coefficients must list 3 views"):
        training_losses(coefficients[:2], batch, parity_model, None, weights)


def test_corrected_forms_change_only_the_depth_and_epipolar_terms(oracle, parity_model):
    from mgc.losses import TermForms
    batch = dict(images=_views(oracle["train_input/image_uint8"]),
                 skins=_views(oracle["train_input/skin_uint8"]),
                 landmarks=oracle["train_input/lm68"], flag=oracle["train_input/flag_sgl_mul"])
    coefficients = [tf.constant(c) for c in oracle["train/coeff"]]
    weights = LossWeights(**dict(README_WEIGHTS, gpmm_id_loss_weight=0.0))
    original = training_losses(coefficients, batch, parity_model, None, weights).losses
    corrected = training_losses(coefficients, batch, parity_model, None, weights,
                                forms=TermForms(depth_frame="target", epipolar="textbook")).losses
    for name in ("pixel_loss", "ssim_loss", "lm2d_loss", "render_loss"):
        assert float(corrected[name]) == float(original[name]), name
    for name in ("depth_loss", "epi_loss"):
        assert abs(float(corrected[name]) - float(original[name])) > 1e-3 * float(original[name])
    # The original's epipolar term is its own value (README parity), the
    # textbook one a distance in pixels of landmarks that are not exact.
    assert float(original["epi_loss"]) == pytest.approx(float(oracle["train/epi_loss"]), rel=1e-3)


def _evaluate_command(oracle, checkpoint, output, *extra):
    facenet_folder = os.path.dirname(os.path.dirname(parity_inputs.facenet_checkpoint(oracle)))
    dataset = os.path.join(facenet_folder, "train_shared")
    weights = [f"--{name}={value}" for name, value in README_WEIGHTS.items()]
    return [sys.executable, "-m", "experiments.evaluate_losses", f"--dataset_dir={dataset}",
            f"--checkpoint={checkpoint}",
            f"--path_gpmm={parity_inputs.synthetic_h5(oracle)}", f"--output={output}",
            *weights, *extra]


def test_evaluate_losses_end_to_end(oracle, facenet_checkpoint, tmp_path):
    """From the tuple on disk: reader, encoder (each view alone), losses."""
    output = tmp_path / "losses.json"
    done = subprocess.run(_evaluate_command(oracle, facenet_checkpoint, output),
                          cwd=paths.REPO_ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    values = json.loads(output.read_text())
    assert list(values) == list(LOSS_NAMES + SUM_NAMES)
    _check_losses(values, oracle, END_TO_END_TOLERANCE)
    assert "total_loss" in done.stdout and "(1 tuples)" in done.stdout
    # A second run does not replace the result without --overwrite: one line, exit 2.
    again = subprocess.run(_evaluate_command(oracle, facenet_checkpoint, output),
                           cwd=paths.REPO_ROOT, capture_output=True, text=True, check=False)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith("error: --output=")


def test_evaluate_losses_setup_errors_are_one_line(oracle, facenet_checkpoint, tmp_path):
    encoder_only = parity_inputs.encoder_checkpoint(oracle)[0]  # no InceptionResnetV1/*
    done = subprocess.run(
        _evaluate_command(oracle, encoder_only, tmp_path / "losses.json"),
        cwd=paths.REPO_ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --checkpoint:") and "InceptionResnetV1" in line
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "losses.json").exists()
