"""Face models: the container, converters from the original formats, and the
coefficient layout. Above mgc.geometry on the import ladder."""
from mgc.facemodel.coefficients import MGCNET_LAYOUT, CoefficientLayout
from mgc.facemodel.decode import decode_albedo, decode_shape
from mgc.facemodel.model import FaceModel, FaceModelError

__all__ = ["MGCNET_LAYOUT", "CoefficientLayout", "FaceModel", "FaceModelError", "decode_albedo",
           "decode_shape"]
