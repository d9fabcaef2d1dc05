"""The skin-colour model (mgc.preprocess.skin_color) and the real-data
preparation tool (mgc.data.prepare, experiments/prepare_tuples.py)."""
import numpy as np
import pytest

from mgc.preprocess import skin_color


# --- Skin-colour model --------------------------------------------------------

def _patch(rgb, size=8):
    return np.full((size, size, 3), rgb, np.uint8)


@pytest.mark.parametrize("rgb", [(224, 172, 150), (198, 134, 108), (141, 85, 62), (240, 200, 180)])
def test_skin_coloured_patches_score_high(rgb):
    probability = skin_color.skin_probability_map(_patch(rgb))
    assert probability.shape == (8, 8) and probability.dtype == np.float32
    assert probability.min() > 0.85


@pytest.mark.parametrize("rgb", [(30, 60, 200), (0, 0, 255), (40, 170, 60), (0, 255, 0),
                                 (110, 160, 230)])
def test_blue_and_green_patches_score_low(rgb):
    assert skin_color.skin_probability_map(_patch(rgb)).max() < 0.05


def test_stored_map_has_three_equal_channels_of_255_p():
    image = np.concatenate([_patch((224, 172, 150)), _patch((0, 0, 255))], axis=1)
    stored = skin_color.skin_map_uint8(image)
    assert stored.shape == (8, 16, 3) and stored.dtype == np.uint8
    assert np.array_equal(stored[..., 0], stored[..., 1])
    assert np.array_equal(stored[..., 0], stored[..., 2])
    expected = np.round(skin_color.skin_probability_map(image) * 255)
    np.testing.assert_array_equal(stored[..., 0], expected)


def test_log_space_posterior_equals_bayes_rule_on_ordinary_colours():
    """The posterior prior L_s / (prior L_s + (1 - prior) L_n) written out
    with plain densities, where they do not underflow."""
    rng = np.random.default_rng(0)
    colours = rng.integers(60, 230, (64, 1, 3)).astype(np.uint8)
    ycbcr = skin_color.rgb_to_ycbcr(colours.reshape(-1, 3))

    def density(mixture):
        total = 0.0
        for w, mu, det, inv in zip(mixture.weights, mixture.means,
                                   mixture.covariance_determinants, mixture.inverse_covariances):
            d = ycbcr - mu
            total = total + w * np.exp(-0.5 * np.sum(d @ inv * d, axis=1)) / (
                (2 * np.pi) ** 1.5 * np.sqrt(det))
        return total

    skin = 0.8 * density(skin_color.SKIN_MIXTURE)
    expected = skin / (skin + 0.2 * density(skin_color.NONSKIN_MIXTURE))
    np.testing.assert_allclose(skin_color.skin_probability_map(colours)[:, 0], expected,
                               rtol=1e-5, atol=1e-6)


def test_extreme_colours_give_a_probability_not_nan():
    probability = skin_color.skin_probability_map(np.array([[[0, 0, 0], [255, 255, 255],
                                                             [255, 0, 255]]], np.uint8))
    assert np.all(np.isfinite(probability))


def test_ycbcr_is_bt601_studio_range():
    ycbcr = skin_color.rgb_to_ycbcr(np.array([[0, 0, 0], [255, 255, 255]]))
    np.testing.assert_allclose(ycbcr, [[16, 128, 128], [235, 128, 128]], atol=1e-9)


# The published numbers: Deep3DFaceRecon_pytorch (sicxu, MIT licence),
# util/skin_mask.py, gmm_skin_* / gmm_nonskin_* / prior_skin, the parameters of
# Deng et al.'s skin model (CVPR-W 2019), copied here by hand as the check.
PUBLISHED = {
    "skin": dict(
        weights=[0.24063933, 0.16365987, 0.26034665, 0.33535415],
        means=[[113.71862, 103.39613, 164.08226], [150.19858, 105.18467, 155.51428],
               [183.92976, 107.62468, 152.71820], [114.90524, 113.59782, 151.38217]],
        determinants=[5692842.5, 5851930.5, 2329131., 1585971.],
        inverse_diagonals=[[0.0019472069, 0.017700525, 0.0081308950],
                           [0.0027110141, 0.010707724, 0.017481629],
                           [0.0048026871, 0.011729696, 0.025374353],
                           [0.0011989699, 0.047758564, 0.024502251]]),
    "nonskin": dict(
        weights=[0.12791070, 0.31130761, 0.34245777, 0.21832393],
        means=[[99.200851, 112.07533, 140.20602], [110.91392, 125.52969, 130.19237],
               [129.75864, 129.96107, 126.96808], [112.29587, 128.85121, 129.05431]],
        determinants=[458703648., 6466488., 90611376., 133097.63],
        inverse_diagonals=[[0.00085371657, 0.0025935620, 0.0015042332],
                           [0.00024650150, 0.026412144, 0.037497383],
                           [0.00037054974, 0.0085505722, 0.010982352],
                           [0.00013709733, 0.28237113, 0.23468947]]),
}


@pytest.mark.parametrize("name", ["skin", "nonskin"])
def test_parameters_are_the_published_numbers(name):
    mixture = {"skin": skin_color.SKIN_MIXTURE, "nonskin": skin_color.NONSKIN_MIXTURE}[name]
    published = PUBLISHED[name]
    np.testing.assert_array_equal(mixture.weights, published["weights"])
    np.testing.assert_array_equal(mixture.means, published["means"])
    np.testing.assert_array_equal(mixture.covariance_determinants, published["determinants"])
    diagonals = np.diagonal(mixture.inverse_covariances, axis1=1, axis2=2)
    np.testing.assert_array_equal(diagonals, published["inverse_diagonals"])
    assert skin_color.SKIN_PRIOR == 0.8
    assert np.isclose(mixture.weights.sum(), 1.0, atol=1e-6)


@pytest.mark.parametrize("mixture", [skin_color.SKIN_MIXTURE, skin_color.NONSKIN_MIXTURE])
def test_published_determinants_and_inverses_agree(mixture):
    """A typing slip in the long inverse matrices would show here: the
    published determinants are those of their inverses' inverses."""
    for determinant, inverse in zip(mixture.covariance_determinants,
                                    mixture.inverse_covariances):
        np.testing.assert_array_equal(inverse, inverse.T)
        assert np.isclose(1.0 / np.linalg.det(inverse), determinant, rtol=1e-5)
        assert np.all(np.linalg.eigvalsh(inverse) > 0)
