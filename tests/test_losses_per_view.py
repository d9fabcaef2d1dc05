"""mgc.losses' per-view losses and the total (issue 12): NumPy references on
small random inputs, gradients against finite differences, the weight sets,
and parity with the original MGCNet's training tuple (shared/parity §5)."""
import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from mgc.facemodel import MGCNET_LAYOUT
from mgc.losses import (LOSS_NAMES, SUM_NAMES, LossWeights, average_over_views, composite,
                        identity_loss, image_to_float, landmark_loss, landmark_weights,
                        photometric_loss, regularisation_losses, skin_weights, total_loss)

GRAY = np.array([0.2989, 0.5870, 0.1140])


def relative_error(actual, expected):
    return abs(float(actual) - float(expected)) / abs(float(expected))


# ---- NumPy references (float64) --------------------------------------------

def reference_landmark_loss(projected, targets, weights):
    return np.mean(np.sum((projected - targets) ** 2, axis=-1) * weights)


def reference_photometric_loss(render, image, skin, mask):
    distance = np.sqrt(np.sum((render * skin - image * skin) ** 2, axis=-1) + 1e-6)
    per_sample = distance.sum(axis=(1, 2)) / ((skin * mask).sum(axis=(1, 2, 3)) + 1e-6)
    return per_sample.mean()


def reference_identity_loss(image_embeddings, render_embeddings):
    return np.mean(1.0 - np.sum(image_embeddings * render_embeddings, axis=-1))


def reference_regularisation(identity, expression, albedo):
    views = len(identity)
    shape = sum(np.sum(a ** 2) + 0.8 * np.sum(b ** 2) for a, b in zip(identity, expression))
    color = sum(0.0017 * np.sum(d ** 2) for d in albedo)
    return shape / views, color / views


def reference_skin(skin_uint8):
    gray = (skin_uint8.astype(np.float32) * np.float32(1 / 255)).astype(np.float64) @ GRAY
    return np.where(gray > 0.5, 1.0, gray)[..., np.newaxis]


def unit_rows(rng, shape):
    rows = rng.normal(size=shape)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


@pytest.fixture
def rng():
    return np.random.default_rng(12)


def photometric_inputs(rng, batch=2, height=6, width=7):
    render = rng.uniform(0, 1, (batch, height, width, 3))
    image = rng.uniform(0, 1, (batch, height, width, 3))
    skin = rng.uniform(0, 1, (batch, height, width, 1))
    skin[skin > 0.5] = 1.0
    mask = (rng.uniform(size=(batch, height, width, 1)) > 0.4).astype(np.float64)
    return render, image, skin, mask


# ---- each function against NumPy -------------------------------------------

def test_image_to_float_is_convert_image_dtype_bit_for_bit():
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    ours = image_to_float(values).numpy()
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, values.astype(np.float32) * np.float32(1 / 255))
    np.testing.assert_array_equal(ours, tf.image.convert_image_dtype(values, tf.float32).numpy())
    # ... which is not uint8 / 255 everywhere (parity README §5.4).
    assert np.any(ours != (values / np.float32(255)).astype(np.float32))


def test_skin_weights_match_numpy(rng):
    skin = rng.integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    skin[0, 0, 0] = 0  # the soft and the hard part both occur
    skin[0, 0, 1] = 255
    ours = skin_weights(skin).numpy()
    assert ours.shape == (2, 5, 6, 1) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference_skin(skin), rtol=0, atol=1e-6)
    assert ours[0, 0, 0, 0] == 0 and ours[0, 0, 1, 0] == 1


def test_landmark_weights_are_one_and_detail_on_nose_and_inner_lips():
    weights = landmark_weights(5.0).numpy()
    expected = np.ones(68)
    expected[27:36] = 5.0
    expected[60:68] = 5.0
    np.testing.assert_array_equal(weights, expected)
    np.testing.assert_array_equal(landmark_weights(1).numpy(), np.ones(68))


def test_landmark_loss_matches_numpy(rng):
    projected, targets = rng.uniform(0, 224, (2, 2, 68, 2))
    weights = landmark_weights(5.0).numpy()
    ours = landmark_loss(projected.astype(np.float32), targets.astype(np.float32), weights)
    assert ours.shape == () and ours.dtype == tf.float32
    expected = reference_landmark_loss(projected, targets, weights)
    assert relative_error(ours, expected) < 1e-6


def test_composite_matches_numpy(rng):
    render, image, _, mask = photometric_inputs(rng)
    render *= mask
    ours = composite(render.astype(np.float32), mask.astype(np.uint8), image.astype(np.float32))
    np.testing.assert_allclose(ours.numpy(), render + (1 - mask) * image, rtol=0, atol=1e-6)
    # Not clipped (B12): a render above 1 stays above 1.
    assert composite(np.full((1, 1, 1, 3), 2.0, np.float32), np.ones((1, 1, 1, 1)),
                     np.zeros((1, 1, 1, 3), np.float32)).numpy().min() == 2.0


def test_photometric_loss_matches_numpy(rng):
    render, image, skin, mask = photometric_inputs(rng)
    ours = photometric_loss(*(x.astype(np.float32) for x in (render, image, skin, mask)))
    assert ours.shape == () and ours.dtype == tf.float32
    assert relative_error(ours, reference_photometric_loss(render, image, skin, mask)) < 1e-6


def test_photometric_loss_epsilon_counts_on_every_pixel():
    """B10 kept: identical images still cost 0.001 per pixel of the whole image."""
    image = np.full((1, 4, 5, 3), 0.5, np.float32)
    mask = np.zeros((1, 4, 5, 1), np.float32)
    mask[0, :2, :2] = 1
    skin = np.ones_like(mask)
    loss = photometric_loss(image, image, skin, mask)
    assert relative_error(loss, 20 * 1e-3 / (4 + 1e-6)) < 1e-5


def test_identity_loss_matches_numpy(rng):
    image_embeddings, render_embeddings = unit_rows(rng, (2, 3, 16))
    ours = identity_loss(image_embeddings.astype(np.float32), render_embeddings.astype(np.float32))
    assert ours.shape == () and ours.dtype == tf.float32
    expected = reference_identity_loss(image_embeddings, render_embeddings)
    assert abs(float(ours) - expected) < 1e-6


def test_regularisation_losses_match_numpy(rng):
    identity = [rng.normal(size=(2, 5)) for _ in range(3)]
    expression = [rng.normal(size=(2, 4)) for _ in range(3)]
    albedo = [rng.normal(size=(2, 6)) for _ in range(3)]
    as32 = [[x.astype(np.float32) for x in views] for views in (identity, expression, albedo)]
    ours = regularisation_losses(*as32)
    assert sorted(ours) == ["reg_color_loss", "reg_shape_loss"]
    shape, color = reference_regularisation(identity, expression, albedo)
    assert relative_error(ours["reg_shape_loss"], shape) < 1e-6
    assert relative_error(ours["reg_color_loss"], color) < 1e-6
    # Summed over the batch, not averaged: doubling the batch doubles the loss.
    doubled = regularisation_losses(*[[np.concatenate([x, x]) for x in views] for views in as32])
    assert relative_error(doubled["reg_shape_loss"], 2 * shape) < 1e-6


def test_average_over_views_is_sum_over_count():
    assert float(average_over_views([tf.constant(1.0), tf.constant(2.0), tf.constant(6.0)])) == 3.0


# ---- gradients --------------------------------------------------------------
# Central differences in float64 (the functions keep float64 inputs in
# float64) with step 1e-6: truncation ~1e-12 x third derivative, rounding
# ~1e-10; tolerance 1e-6 on the largest Jacobian entry's scale.

def jacobian_error(function, inputs):
    theoretical, numerical = tf.test.compute_gradient(function, inputs, delta=1e-6)
    errors = []
    for analytic, finite in zip(theoretical, numerical):
        scale = max(1.0, np.abs(finite).max())
        errors.append(np.abs(analytic - finite).max() / scale)
    return max(errors)


def test_landmark_gradient_matches_finite_differences(rng):
    projected, targets = rng.uniform(0, 20, (2, 2, 68, 2))
    weights = landmark_weights(5.0)
    error = jacobian_error(lambda p: landmark_loss(p, targets, weights), [projected])
    assert error < 1e-6


def test_photometric_gradient_w_r_t_render_matches_finite_differences(rng):
    render, image, skin, mask = photometric_inputs(rng, batch=2, height=4, width=5)

    def loss(render):
        return photometric_loss(composite(render, mask, image), image, skin, mask)

    assert jacobian_error(loss, [render]) < 1e-6


def test_identity_gradient_matches_finite_differences(rng):
    image_embeddings, render_embeddings = unit_rows(rng, (2, 3, 8))
    assert jacobian_error(identity_loss, [image_embeddings, render_embeddings]) < 1e-6


@pytest.mark.parametrize("term", ["reg_shape_loss", "reg_color_loss"])
def test_regularisation_gradient_matches_finite_differences(rng, term):
    identity, albedo = rng.normal(size=(2, 3, 2, 5))
    expression = rng.normal(size=(3, 2, 4))

    def loss(identity, expression, albedo):
        return regularisation_losses(list(identity), list(expression), list(albedo))[term]

    assert jacobian_error(loss, [identity, expression, albedo]) < 1e-6


# ---- graphs, bad input --------------------------------------------------------

def test_tf_function_with_unknown_sizes_equals_eager(rng):
    render, image, skin, mask = (x.astype(np.float32) for x in photometric_inputs(rng))
    skin_uint8 = rng.integers(0, 256, (2, 6, 7, 3), dtype=np.uint8)
    projected, targets = rng.uniform(0, 224, (2, 2, 68, 2)).astype(np.float32)
    embeddings = unit_rows(rng, (2, 2, 8)).astype(np.float32)
    image_spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    channel_spec = tf.TensorSpec([None, None, None, 1], tf.float32)
    graphs = {
        "photometric": (photometric_loss, [image_spec, image_spec, channel_spec, channel_spec],
                        (render, image, skin, mask)),
        "composite": (composite, [image_spec, channel_spec, image_spec], (render, mask, image)),
        "skin": (skin_weights, [tf.TensorSpec([None, None, None, 3], tf.uint8)], (skin_uint8,)),
        "landmark": (lambda p, g: landmark_loss(p, g, landmark_weights(5.0)),
                     [tf.TensorSpec([None, 68, 2], tf.float32)] * 2, (projected, targets)),
        "identity": (identity_loss, [tf.TensorSpec([None, None], tf.float32)] * 2,
                     tuple(embeddings)),
    }
    for name, (function, signature, arguments) in graphs.items():
        traced = tf.function(function, input_signature=signature)
        np.testing.assert_array_equal(traced(*arguments).numpy(), function(*arguments).numpy(),
                                      err_msg=name)


def _images(batch=1, channels=3, dtype=np.float32):
    return np.zeros((batch, 4, 5, channels), dtype)


BAD_CALLS = {
    "skin float": (lambda: skin_weights(_images()), "skin"),
    "skin gray": (lambda: skin_weights(_images(channels=1, dtype=np.uint8)), "skin"),
    "image_to_float float": (lambda: image_to_float(_images()), "images_uint8"),
    "detail_weight negative": (lambda: landmark_weights(-1.0), "detail_weight"),
    "detail_weight nan": (lambda: landmark_weights(float("nan")), "detail_weight"),
    "detail_weight text": (lambda: landmark_weights("five"), "detail_weight"),
    "projected rank": (lambda: landmark_loss(np.zeros((68, 2)), np.zeros((68, 2)),
                                             np.ones(68)), "projected"),
    "targets shape": (lambda: landmark_loss(np.zeros((1, 68, 2)), np.zeros((1, 67, 2)),
                                            np.ones(68)), "targets"),
    "weights length": (lambda: landmark_loss(np.zeros((1, 68, 2)), np.zeros((1, 68, 2)),
                                             np.ones(67)), "weights"),
    "weights negative": (lambda: landmark_loss(np.zeros((1, 68, 2)), np.zeros((1, 68, 2)),
                                               -np.ones(68)), "weights"),
    "weights infinite": (lambda: landmark_loss(np.zeros((1, 68, 2)), np.zeros((1, 68, 2)),
                                               np.full(68, np.inf)), "weights"),
    "composite uint8 image": (lambda: composite(_images(), _images(channels=1),
                                                _images(dtype=np.uint8)), "image"),
    "composite mask shape": (lambda: composite(_images(), _images(), _images()), "mask"),
    "composite render rank": (lambda: composite(np.zeros((4, 5, 3)), np.zeros((4, 5, 1)),
                                                np.zeros((4, 5, 3))), "render"),
    "photometric image shape": (lambda: photometric_loss(_images(), _images(2), _images(channels=1),
                                                         _images(channels=1)), "image"),
    "photometric skin shape": (lambda: photometric_loss(_images(), _images(), _images(),
                                                        _images(channels=1)), "skin"),
    "photometric mask shape": (lambda: photometric_loss(_images(), _images(), _images(channels=1),
                                                        _images(2, 1)), "mask"),
    "identity rank": (lambda: identity_loss(np.zeros(8), np.zeros(8)), "image_embeddings"),
    "identity shape": (lambda: identity_loss(np.zeros((1, 8)), np.zeros((1, 7))),
                       "render_embeddings"),
    "regularisation empty": (lambda: regularisation_losses([], [], []), "identity"),
    "regularisation tensor": (lambda: regularisation_losses(np.zeros((3, 1, 80)), [np.zeros((1, 64))],
                                                            [np.zeros((1, 80))]), "identity"),
    "regularisation rank": (lambda: regularisation_losses([np.zeros(80)], [np.zeros((1, 64))],
                                                          [np.zeros((1, 80))]), "identity[0]"),
    "regularisation views": (lambda: regularisation_losses([np.zeros((1, 80))] * 3,
                                                           [np.zeros((1, 64))] * 2,
                                                           [np.zeros((1, 80))] * 3), "expression"),
    "total unknown term": (lambda: total_loss({"photo_loss": 1.0}, LossWeights()), "photo_loss"),
    "total missing term": (lambda: total_loss({}, LossWeights()), "reg_shape_loss"),
    "total non-scalar": (lambda: total_loss(dict.fromkeys(LOSS_NAMES, np.ones(2)), LossWeights()),
                         "reg_shape_loss"),
    "total weights": (lambda: total_loss({}, {"MULTIVIEW_weight": 1.0}), "weights"),
}


@pytest.mark.parametrize("case", sorted(BAD_CALLS))
def test_bad_input_raises_value_error_naming_the_argument(case):
    call, argument = BAD_CALLS[case]
    with pytest.raises(ValueError, match=argument.replace("[", r"\[").replace("]", r"\]")):
        call()


# ---- weights and the total --------------------------------------------------

FLAG_DEFAULTS = dict(  # spec §5.9
    MULTIVIEW_weight=0.1, photom_weight=0.15, ssim_weight=0.85, depth_weight=0.1,
    epipolar_weight=0.0, gpmm_lm_loss_weight=0.0, lm_detail_weight=1.0, gpmm_pixel_loss_weight=0.0,
    gpmm_id_loss_weight=0.0, gpmm_regular_shape_loss_weight=1.0, gpmm_regular_color_loss_weight=1.0)
DOCUMENTED = dict(  # spec §5.7, the documented command's column
    MULTIVIEW_weight=1.0, photom_weight=0.15, ssim_weight=0.0, depth_weight=0.0001,
    epipolar_weight=0.0, gpmm_lm_loss_weight=0.001, lm_detail_weight=5.0,
    gpmm_pixel_loss_weight=1.9, gpmm_id_loss_weight=0.2, gpmm_regular_shape_loss_weight=0.0001,
    gpmm_regular_color_loss_weight=0.0003)
# The oracle's: the documented command with SSIM and epipolar on (parity README §5.2).
ORACLE_WEIGHTS = dict(DOCUMENTED, ssim_weight=0.85, epipolar_weight=0.0015)


def test_loss_weights_defaults_are_the_flag_defaults():
    assert dataclasses.asdict(LossWeights()) == FLAG_DEFAULTS


def test_documented_weights_are_the_documented_command():
    assert dataclasses.asdict(LossWeights.documented()) == DOCUMENTED


def test_loss_names():
    assert LOSS_NAMES == ("reg_shape_loss", "reg_color_loss", "lm2d_loss", "render_loss",
                          "id_loss", "pixel_loss", "ssim_loss", "depth_loss", "epi_loss")
    assert SUM_NAMES == ("common_loss", "mgc_loss", "total_loss")


@pytest.mark.parametrize("value", [-0.1, float("nan"), float("inf"), "0.1", None, True])
def test_loss_weights_refuse_bad_values_naming_the_flag(value):
    with pytest.raises(ValueError, match="depth_weight"):
        LossWeights(depth_weight=value)


def test_loss_weights_are_frozen_floats():
    weights = LossWeights(MULTIVIEW_weight=1)
    assert isinstance(weights.MULTIVIEW_weight, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        weights.MULTIVIEW_weight = 2.0


def reference_sums(terms, w):
    common = (w["gpmm_regular_shape_loss_weight"] * terms["reg_shape_loss"]
              + w["gpmm_regular_color_loss_weight"] * terms["reg_color_loss"]
              + w["gpmm_lm_loss_weight"] * terms["lm2d_loss"]
              + w["gpmm_pixel_loss_weight"] * terms["render_loss"]
              + w["gpmm_id_loss_weight"] * terms["id_loss"])
    mgc = (w["photom_weight"] * terms["pixel_loss"] + w["ssim_weight"] * terms["ssim_loss"]
           + w["epipolar_weight"] * terms["epi_loss"] + w["depth_weight"] * terms["depth_loss"])
    return {"common_loss": common, "mgc_loss": mgc, "total_loss": common + w["MULTIVIEW_weight"] * mgc}


@pytest.mark.parametrize("weights", [FLAG_DEFAULTS, DOCUMENTED, ORACLE_WEIGHTS])
def test_total_loss_matches_the_formula(rng, weights):
    terms = dict(zip(LOSS_NAMES, rng.uniform(0.1, 100, len(LOSS_NAMES))))
    ours = total_loss({k: np.float32(v) for k, v in terms.items()}, LossWeights(**weights))
    assert sorted(ours) == sorted(SUM_NAMES)
    for name, expected in reference_sums(terms, weights).items():
        assert relative_error(ours[name], expected) < 1e-6, name


def test_zero_weight_term_is_left_out_and_does_not_poison_the_total():
    weights = LossWeights.documented()  # ssim and epipolar 0
    x = tf.Variable(2.0)
    with tf.GradientTape() as tape:
        terms = dict.fromkeys(LOSS_NAMES, x * x)
        terms["ssim_loss"] = tf.sqrt(-x)  # NaN, with a NaN gradient
        del terms["epi_loss"]  # not computed at all
        sums = total_loss(terms, weights)
    assert all(math.isfinite(float(v)) for v in sums.values())
    assert math.isfinite(float(tape.gradient(sums["total_loss"], x)))
    # The same NaN with a weight does poison it.
    poisoned = total_loss(dict(terms, epi_loss=x), dataclasses.replace(weights, ssim_weight=0.5))
    assert math.isnan(float(poisoned["total_loss"]))


def test_without_multi_view_weights_mgc_is_zero_and_total_is_common():
    weights = LossWeights(MULTIVIEW_weight=0.0, photom_weight=0.0, ssim_weight=0.0,
                          depth_weight=0.0)
    sums = total_loss({"reg_shape_loss": 3.0, "reg_color_loss": 4.0}, weights)
    assert float(sums["mgc_loss"]) == 0.0 and float(sums["total_loss"]) == 7.0


def test_total_loss_in_tf_function():
    traced = tf.function(lambda terms: total_loss(terms, LossWeights.documented()))
    terms = {name: tf.constant(float(i + 1)) for i, name in enumerate(LOSS_NAMES)}
    eager = total_loss(terms, LossWeights.documented())
    for name, value in traced(terms).items():
        assert float(value) == float(eager[name])


# ---- parity with the original (shared/parity §5) -----------------------------

def oracle_views(row):
    """[1, 224, 672, C] on-disk row (left | target | right) -> [target, source1, source2]."""
    return [row[:, :, 224:448], row[:, :, :224], row[:, :, 448:]]


def test_skin_weights_parity(oracle):
    views = oracle_views(oracle["train_input/skin_uint8"])
    for view, skin in enumerate(views):
        ours = skin_weights(skin).numpy()
        np.testing.assert_allclose(ours, oracle["train/skin"][view], rtol=0, atol=1e-6)


def test_composite_parity(oracle):
    """Outside M_v the stored composite is image_to_float's image bit for bit;
    inside it is the render, which composite keeps."""
    images = oracle_views(oracle["train_input/image_uint8"])
    for view, image in enumerate(images):
        stored = oracle["train/render_composite"][view]
        mask = oracle["train/render_mask"][view].astype(np.float32)
        ours = composite(stored * mask, mask, image_to_float(image)).numpy()
        np.testing.assert_array_equal(ours, stored)


def test_landmark_loss_parity(oracle):
    weights = landmark_weights(5.0)
    per_view = [landmark_loss(oracle["train/lm2d"][v], oracle["train_input/lm68"][:, v], weights)
                for v in range(3)]
    assert relative_error(average_over_views(per_view), oracle["train/lm2d_loss"]) < 1e-4


def test_photometric_loss_parity(oracle):
    images = oracle_views(oracle["train_input/image_uint8"])
    per_view = [photometric_loss(oracle["train/render_composite"][v], image_to_float(images[v]),
                                 oracle["train/skin"][v], oracle["train/render_mask"][v])
                for v in range(3)]
    assert relative_error(average_over_views(per_view), oracle["train/render_loss"]) < 1e-4


def test_identity_loss_parity(oracle):
    per_view = [identity_loss(oracle["train/id_image"][v], oracle["train/id_render"][v])
                for v in range(3)]
    assert relative_error(average_over_views(per_view), oracle["train/id_loss"]) < 1e-4


def test_regularisation_parity(oracle):
    parts = [MGCNET_LAYOUT.split(oracle["train/coeff"][v]) for v in range(3)]
    ours = regularisation_losses([p["identity"] for p in parts], [p["expression"] for p in parts],
                                 [p["albedo"] for p in parts])
    for name in ("reg_shape_loss", "reg_color_loss"):
        assert relative_error(ours[name], oracle[f"train/{name}"]) < 1e-5, name


def test_total_loss_parity(oracle):
    terms = {name: oracle[f"train/{name}"] for name in LOSS_NAMES}
    ours = total_loss(terms, LossWeights(**ORACLE_WEIGHTS))
    for name in SUM_NAMES:
        assert relative_error(ours[name], oracle[f"train/{name}"]) < 1e-6, name
