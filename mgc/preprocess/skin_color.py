"""A skin-colour model: Deng et al.'s Gaussian mixtures in YCbCr.

Deng et al. (CVPR-W 2019, "Accurate 3D Face Reconstruction with
Weakly-Supervised Learning") weight their photometric loss with a skin
probability from two 4-component Gaussian mixtures over (Y, Cb, Cr), one for
skin and one for everything else, combined by Bayes' rule with a skin prior
of 0.8. MGCNet's training tuples carry such skin maps, made by a model the
authors did not release (docs/DIFFERENCES.md); the numbers below are the
ones Deng's group published with Deep3DFaceRecon_pytorch (sicxu, MIT
licence, util/skin_mask.py): weights, means, covariance determinants and
inverse covariances, for YCbCr in ITU-R BT.601 studio range (Y 16..235,
Cb/Cr 16..240) of 0..255 RGB. The evaluation is this project's own, in log
space, so pixels far from both mixtures get the limit of the posterior
instead of 0/0.

    probability = skin_probability_map(image)   # float32 [H, W] in [0, 1]
    stored = skin_map_uint8(image)               # uint8 [H, W, 3], MGCNet's _skin.jpg
"""
import dataclasses

import numpy as np

SKIN_PRIOR = 0.8


@dataclasses.dataclass(frozen=True)
class GaussianMixture:
    """A full-covariance Gaussian mixture given as the publication gives it.

    Attributes:
      weights: [K] mixture weights.
      means: [K, D].
      covariance_determinants: [K] det(Sigma_k).
      inverse_covariances: [K, D, D] Sigma_k^-1.
    """
    weights: np.ndarray
    means: np.ndarray
    covariance_determinants: np.ndarray
    inverse_covariances: np.ndarray

    def log_likelihood(self, points):
        """log p(x) [N] of points [N, D] (float64)."""
        points = np.asarray(points, np.float64)
        dimension = self.means.shape[1]
        per_component = []
        for weight, mean, determinant, inverse in zip(self.weights, self.means,
                                                      self.covariance_determinants,
                                                      self.inverse_covariances):
            offset = points - mean
            mahalanobis = np.einsum("ni,ij,nj->n", offset, inverse, offset)
            log_normaliser = 0.5 * (dimension * np.log(2 * np.pi) + np.log(determinant))
            per_component.append(np.log(weight) - 0.5 * mahalanobis - log_normaliser)
        return _log_sum_exp(np.stack(per_component))


def _log_sum_exp(values):
    """log(sum(exp(values), axis=0)) without overflow or underflow."""
    top = values.max(axis=0)
    return top + np.log(np.exp(values - top).sum(axis=0))


def _mixture(weights, means, determinants, inverses):
    return GaussianMixture(np.array(weights), np.array(means), np.array(determinants),
                           np.array(inverses))


# Deep3DFaceRecon_pytorch util/skin_mask.py: gmm_skin_w, _mu, _cov_det, _cov_inv.
SKIN_MIXTURE = _mixture(
    weights=[0.24063933, 0.16365987, 0.26034665, 0.33535415],
    means=[[113.71862, 103.39613, 164.08226], [150.19858, 105.18467, 155.51428],
           [183.92976, 107.62468, 152.71820], [114.90524, 113.59782, 151.38217]],
    determinants=[5692842.5, 5851930.5, 2329131., 1585971.],
    inverses=[
        [[0.0019472069, 0.0020450759, -0.00060243998], [0.0020450759, 0.017700525, 0.0051420014],
         [-0.00060243998, 0.0051420014, 0.0081308950]],
        [[0.0027110141, 0.0011036990, 0.0023122299], [0.0011036990, 0.010707724, 0.010742856],
         [0.0023122299, 0.010742856, 0.017481629]],
        [[0.0048026871, 0.00022935172, 0.0077668377], [0.00022935172, 0.011729696, 0.0081661865],
         [0.0077668377, 0.0081661865, 0.025374353]],
        [[0.0011989699, 0.0022453172, -0.0010748957], [0.0022453172, 0.047758564, 0.020332102],
         [-0.0010748957, 0.020332102, 0.024502251]]])

# The same file: gmm_nonskin_w, _mu, _cov_det, _cov_inv.
NONSKIN_MIXTURE = _mixture(
    weights=[0.12791070, 0.31130761, 0.34245777, 0.21832393],
    means=[[99.200851, 112.07533, 140.20602], [110.91392, 125.52969, 130.19237],
           [129.75864, 129.96107, 126.96808], [112.29587, 128.85121, 129.05431]],
    determinants=[458703648., 6466488., 90611376., 133097.63],
    inverses=[
        [[0.00085371657, 0.00071197288, 0.00023958916], [0.00071197288, 0.0025935620,
                                                         0.00076557708],
         [0.00023958916, 0.00076557708, 0.0015042332]],
        [[0.00024650150, 0.00045542428, 0.00015019422], [0.00045542428, 0.026412144, 0.018419769],
         [0.00015019422, 0.018419769, 0.037497383]],
        [[0.00037054974, 0.00038146760, 0.00040408765], [0.00038146760, 0.0085505722,
                                                         0.0079136286],
         [0.00040408765, 0.0079136286, 0.010982352]],
        [[0.00013709733, 0.00051228428, 0.00012777430], [0.00051228428, 0.28237113, 0.10528370],
         [0.00012777430, 0.10528370, 0.23468947]]])

# ITU-R BT.601 RGB (0..255) -> studio-range YCbCr: rows Y, Cb, Cr (per 255).
_YCBCR_MATRIX = np.array([[65.481, 128.553, 24.966],
                          [-37.797, -74.203, 112.0],
                          [112.0, -93.786, -18.214]]) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


def rgb_to_ycbcr(image):
    """uint8 (or 0..255 float) RGB [..., 3] -> BT.601 studio YCbCr float64 [..., 3]."""
    return np.asarray(image, np.float64) @ _YCBCR_MATRIX.T + _YCBCR_OFFSET


def skin_probability_map(image, prior=SKIN_PRIOR):
    """The posterior probability of skin per pixel.

    Args:
      image: uint8 RGB [H, W, 3].
      prior: P(skin) before seeing the colour (Deng's 0.8).

    Returns:
      float32 [H, W] in [0, 1].
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    colours = rgb_to_ycbcr(image.reshape(-1, 3))
    # posterior = 1 / (1 + exp(-log_odds)), log_odds = log(prior L_skin / ((1 - prior) L_nonskin))
    log_odds = (np.log(prior) + SKIN_MIXTURE.log_likelihood(colours)
                - np.log1p(-prior) - NONSKIN_MIXTURE.log_likelihood(colours))
    posterior = 0.5 * (1.0 + np.tanh(0.5 * log_odds))  # the logistic, stable for any log_odds
    return posterior.reshape(image.shape[:2]).astype(np.float32)


def probability_to_uint8(probability):
    """A probability map [H, W] -> the uint8 [H, W, 3] map MGCNet's loader
    reads (three equal channels, round(255 p))."""
    levels = np.round(np.clip(probability, 0.0, 1.0) * 255.0).astype(np.uint8)
    return np.repeat(levels[..., np.newaxis], 3, axis=-1)


def skin_map_uint8(image, prior=SKIN_PRIOR):
    """skin_probability_map as MGCNet's stored skin map: uint8 [H, W, 3]."""
    return probability_to_uint8(skin_probability_map(image, prior))
