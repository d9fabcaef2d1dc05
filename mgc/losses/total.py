"""MGCNet's loss weights and total loss (MGCNET_REFERENCE.md §5.7, §5.9).

common = w_rs reg_shape + w_rc reg_color + w_lm lm2d + w_pix render + w_id id
mgc    = photom pixel + ssim ssim + epipolar epi + depth depth
total  = common + MULTIVIEW mgc

Every product whose weight is 0 is left out of the graph (the original's
"if weight > 0" switches), so a term that is not computed may be missing from
the dict and a NaN in an unused term does not reach the total.
"""
import dataclasses

import tensorflow as tf

from mgc.losses.per_view import checked_weight

LOSS_NAMES = ("reg_shape_loss", "reg_color_loss", "lm2d_loss", "render_loss", "id_loss",
              "pixel_loss", "ssim_loss", "depth_loss", "epi_loss")
SUM_NAMES = ("common_loss", "mgc_loss", "total_loss")


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """The original's weight flags, named as they are, with their flag defaults (§5.9)."""
    MULTIVIEW_weight: float = 0.1
    photom_weight: float = 0.15
    ssim_weight: float = 0.85
    depth_weight: float = 0.1
    epipolar_weight: float = 0.0
    gpmm_lm_loss_weight: float = 0.0
    lm_detail_weight: float = 1.0
    gpmm_pixel_loss_weight: float = 0.0
    gpmm_id_loss_weight: float = 0.0
    gpmm_regular_shape_loss_weight: float = 1.0
    gpmm_regular_color_loss_weight: float = 1.0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, checked_weight(getattr(self, field.name), field.name))

    @classmethod
    def documented(cls):
        """The documented training command (README / train_unsupervise.py docstring, §5.7)."""
        return cls(MULTIVIEW_weight=1.0, photom_weight=0.15, ssim_weight=0.0,
                   depth_weight=0.0001, epipolar_weight=0.0, gpmm_lm_loss_weight=0.001,
                   lm_detail_weight=5.0, gpmm_pixel_loss_weight=1.9, gpmm_id_loss_weight=0.2,
                   gpmm_regular_shape_loss_weight=0.0001,
                   gpmm_regular_color_loss_weight=0.0003)

    def common_terms(self):
        """(term, weight) of the common sum, in the original's order."""
        return (("reg_shape_loss", self.gpmm_regular_shape_loss_weight),
                ("reg_color_loss", self.gpmm_regular_color_loss_weight),
                ("lm2d_loss", self.gpmm_lm_loss_weight),
                ("render_loss", self.gpmm_pixel_loss_weight),
                ("id_loss", self.gpmm_id_loss_weight))

    def multi_view_terms(self):
        """(term, weight) of the mgc sum, in the original's order."""
        return (("pixel_loss", self.photom_weight),
                ("ssim_loss", self.ssim_weight),
                ("epi_loss", self.epipolar_weight),
                ("depth_loss", self.depth_weight))


def total_loss(terms, weights):
    """terms: dict of unweighted scalar losses (LOSS_NAMES; those with weight 0 may
    be missing); weights: LossWeights. Returns a dict of common_loss, mgc_loss and
    total_loss (float32 scalars)."""
    if not isinstance(weights, LossWeights):
        raise ValueError(f"weights must be a LossWeights, got {type(weights).__name__}")
    unknown = sorted(set(terms) - set(LOSS_NAMES))
    if unknown:
        raise ValueError(f"terms has unknown names {unknown}; expected some of {LOSS_NAMES}")
    common = _weighted_sum(terms, weights.common_terms())
    multi_view = _weighted_sum(terms, weights.multi_view_terms())
    total = common
    if weights.MULTIVIEW_weight > 0:
        total = common + weights.MULTIVIEW_weight * multi_view
    return {"common_loss": common, "mgc_loss": multi_view, "total_loss": total}


def _weighted_sum(terms, weighted_names):
    """sum of weight * term over the pairs with weight > 0 (0 when there are none)."""
    total = None
    for name, weight in weighted_names:
        if weight <= 0:
            continue
        product = weight * _scalar(terms, name)
        total = product if total is None else total + product
    return tf.constant(0.0, tf.float32) if total is None else total


def _scalar(terms, name):
    if name not in terms:
        raise ValueError(f"terms must hold {name}: its weight is non-zero")
    value = tf.convert_to_tensor(terms[name])
    if not value.dtype.is_floating or value.shape.rank not in (0, None):
        raise ValueError(f"terms[{name!r}] must be a floating scalar, got {value.dtype.name} "
                         f"shape {value.shape}")
    return tf.cast(value, tf.float32)
