"""Face models: the container, converters from the original formats, and the
coefficient layout. Above mgc.geometry on the import ladder."""
from mgc.facemodel.coefficients import MGCNET_LAYOUT, CoefficientLayout
from mgc.facemodel.decode import decode_albedo, decode_shape
from mgc.facemodel.loaders import (FORMATS, MGCNET_LANDMARKS_BFM, MODEL_NAMES,
                                   default_face_model, detect_format, load_bfm2009,
                                   load_bfm_mean, load_deng_mat, load_face_model, load_ict_facekit,
                                   load_mgcnet_h5, load_surrey)
from mgc.facemodel.model import FaceModel, FaceModelError

__all__ = ["MGCNET_LAYOUT", "CoefficientLayout", "FaceModel", "FaceModelError", "decode_albedo",
           "decode_shape", "FORMATS", "MGCNET_LANDMARKS_BFM", "MODEL_NAMES",
           "default_face_model", "detect_format", "load_bfm2009", "load_bfm_mean", "load_deng_mat",
           "load_face_model", "load_ict_facekit", "load_mgcnet_h5", "load_surrey"]
