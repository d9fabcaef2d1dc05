"""Analysis-by-synthesis fitting of a face model to photos (no network
weights needed). Above render on the import ladder."""
from mgc.fitting.fitter import (FitResult, FitSettings, check_model_landmarks, fit_faces,
                                trace_answer)
from mgc.fitting.initial_pose import initial_pose_delta
from mgc.fitting.skin import skin_probability

__all__ = ["FitResult", "FitSettings", "check_model_landmarks", "fit_faces", "initial_pose_delta",
           "skin_probability", "trace_answer"]
