"""The flags of the original train_unsupervise.py that evaluate_losses and
train share, with the original's names and defaults
(../shared/spec/MGCNET_REFERENCE.md §5.9), defined once here.

    from experiments import mgcnet_flags
    weights = mgcnet_flags.loss_weights()

One default departs from the original: --match_num is 68, because with the
original's 0 the graph cannot be built (docs/DIFFERENCES.md).
"""
import dataclasses

from absl import flags

from mgc.facemodel import MGCNET_LAYOUT, CoefficientLayout, FaceModelError, load_face_model
from mgc.facemodel.files import one_line
from mgc.losses.multi_view import DEPTH_FRAMES, EPIPOLAR_FORMS, TermForms
from mgc.losses.total import LossWeights

FLAGS = flags.FLAGS
_DEFAULTS = LossWeights()

flags.DEFINE_string("dataset_dir", "", "Folder of the training tuples in the original layout "
                    "(<dataset_dir>/<dataset_name_list>.txt and its files).")
flags.DEFINE_string("dataset_name_list", "train", "The list file's name without .txt.")
flags.DEFINE_string("path_gpmm", None, "The face model: MGCNet's h5 "
                    "(bfm09_trim_exp_uv_presplit.h5) or a model file with its 257 layout.")
flags.DEFINE_integer("match_num", 68, "Landmarks per view in _cam.txt; must be 68 (the "
                     "original's default 0 cannot build the graph).")
flags.DEFINE_integer("flag_fore", 1, "1: render the front sub-mesh (as the original "
                     "trains); 0: the whole mesh.", lower_bound=0, upper_bound=1)
flags.DEFINE_bool("per_sample_gating", False, "Gate each sample's multi-view errors by its "
                  "own flag_sgl_mul, as the paper describes, instead of the original's executed "
                  "[B, B] broadcast (docs/DIFFERENCES.md).")
flags.DEFINE_enum("depth_frame", "source", DEPTH_FRAMES, "Depth consistency: 'source' "
                  "compares the warped source-camera depth with the target-camera depth, as "
                  "the original (B5); 'target' re-expresses the source surface in the target "
                  "camera first and compares only samples wholly on the source face, so that "
                  "views that agree on the shape give (nearly) zero error (docs/DIFFERENCES.md).")
flags.DEFINE_enum("epipolar", "original", EPIPOLAR_FORMS, "Epipolar term: 'original' builds "
                  "F from R [t]x (B4); 'textbook' from [t]x R, the constraint of the relative "
                  "pose (docs/DIFFERENCES.md).")
for _field in dataclasses.fields(LossWeights):
    flags.DEFINE_float(_field.name, getattr(_DEFAULTS, _field.name),
                       f"Loss weight (the original's flag and default; --preset documented: "
                       f"{getattr(LossWeights.documented(), _field.name)}).", lower_bound=0.0)

WEIGHT_FLAGS = tuple(field.name for field in dataclasses.fields(LossWeights))
SHARED = ("dataset_dir", "dataset_name_list", "path_gpmm", "match_num", "flag_fore",
          "per_sample_gating", "depth_frame", "epipolar") + WEIGHT_FLAGS


def loss_weights(preset=None):
    """LossWeights from the weight flags. With preset="documented" the
    documented command's weights, except the flags given explicitly."""
    base = LossWeights.documented() if preset == "documented" else LossWeights()
    chosen = {name: FLAGS[name].value for name in WEIGHT_FLAGS
              if preset != "documented" or FLAGS[name].present}
    return dataclasses.replace(base, **chosen)


def term_forms():
    """TermForms of --depth_frame and --epipolar."""
    return TermForms(depth_frame=FLAGS.depth_frame, epipolar=FLAGS.epipolar)


class FaceModelFlagError(ValueError):
    """--path_gpmm cannot be used; the message is one line naming it."""


def face_model(data_root=None):
    """The face model of --path_gpmm, checked to have MGCNet's 257 layout."""
    try:
        model = load_face_model(FLAGS.path_gpmm, data_root=data_root)
    except (FaceModelError, OSError, ValueError) as error:
        raise FaceModelFlagError(f"--path_gpmm={FLAGS.path_gpmm}: {one_line(error)}") from None
    layout = CoefficientLayout.for_model(model)
    if layout != MGCNET_LAYOUT:
        raise FaceModelFlagError(f"--path_gpmm={FLAGS.path_gpmm} has {layout.size} "
                                 f"coefficients; the network predicts MGCNet's "
                                 f"{MGCNET_LAYOUT.size}")
    return model
