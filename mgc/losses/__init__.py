"""Training losses of MGCNet (MGCNET_REFERENCE.md §5): plain functions of
tensors. One import line per name and one `__all__ +=` line per module, so
that additions merge cleanly."""
from mgc.losses.multi_view import covisibility_mask
from mgc.losses.multi_view import depth_consistency_loss
from mgc.losses.multi_view import epipolar_loss
from mgc.losses.multi_view import gate_multi_view
from mgc.losses.multi_view import inverse_warp
from mgc.losses.multi_view import matrix_to_pose
from mgc.losses.multi_view import pixel_consistency_loss
from mgc.losses.multi_view import pose_to_matrix
from mgc.losses.multi_view import relative_pose
from mgc.losses.multi_view import source_depth_in_target
from mgc.losses.multi_view import ssim_loss
from mgc.losses.multi_view import TermForms

__all__ = []
__all__ += ["covisibility_mask", "depth_consistency_loss", "epipolar_loss", "gate_multi_view", "inverse_warp", "matrix_to_pose", "pixel_consistency_loss", "pose_to_matrix", "relative_pose", "source_depth_in_target", "ssim_loss", "TermForms"]  # noqa: E501 (multi_view)
from mgc.losses.per_view import average_over_views
from mgc.losses.per_view import checked_weight
from mgc.losses.per_view import composite
from mgc.losses.per_view import identity_loss
from mgc.losses.per_view import image_to_float
from mgc.losses.per_view import landmark_loss
from mgc.losses.per_view import landmark_weights
from mgc.losses.per_view import photometric_loss
from mgc.losses.per_view import regularisation_losses
from mgc.losses.per_view import skin_weights
from mgc.losses.total import LOSS_NAMES
from mgc.losses.total import SUM_NAMES
from mgc.losses.total import LossWeights
from mgc.losses.total import total_loss

__all__ += ["average_over_views", "checked_weight", "composite", "identity_loss", "image_to_float", "landmark_loss", "landmark_weights", "photometric_loss", "regularisation_losses", "skin_weights"]  # noqa: E501 (per_view)
__all__ += ["LOSS_NAMES", "SUM_NAMES", "LossWeights", "total_loss"]  # noqa: E501 (total)
from mgc.losses.training import TrainingOutputs
from mgc.losses.training import training_losses
from mgc.losses.training import view_coefficients

__all__ += ["TrainingOutputs", "training_losses", "view_coefficients"]  # (training)
