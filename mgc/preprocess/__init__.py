"""Test-time preprocessing (MGCNET_REFERENCE.md §7): read a picture, find
faces and 68 landmarks (dlib) or read them from a file, and cut MGCNet's
224x224 crops by a 5-point similarity. NumPy, OpenCV, Pillow and dlib only:
no TensorFlow. May import mgc.geometry and mgc.paths only.
"""
from mgc.preprocess.alignment import CROP_SIZE
from mgc.preprocess.alignment import STD_224_BFM09
from mgc.preprocess.alignment import align
from mgc.preprocess.alignment import five_points
from mgc.preprocess.alignment import invert
from mgc.preprocess.alignment import similarity_transform
from mgc.preprocess.alignment import template
from mgc.preprocess.alignment import transform_points
from mgc.preprocess.detection import FaceBox
from mgc.preprocess.detection import FaceDetector
from mgc.preprocess.detection import LandmarkPredictor
from mgc.preprocess.detection import detect_with_fallback
from mgc.preprocess.images import ImageError
from mgc.preprocess.images import load_image
from mgc.preprocess.landmark_files import LandmarkFileError
from mgc.preprocess.landmark_files import find_landmark_file
from mgc.preprocess.landmark_files import landmark_file_candidates
from mgc.preprocess.landmark_files import read_landmark_file
from mgc.preprocess.landmark_files import read_pts
from mgc.preprocess.landmark_files import read_txt
from mgc.preprocess.pipeline import NoFaceError
from mgc.preprocess.pipeline import PreparedFace
from mgc.preprocess.pipeline import detected_face
from mgc.preprocess.pipeline import load_detection_models
from mgc.preprocess.pipeline import prepare_faces

__all__ = [
    "CROP_SIZE", "FaceBox", "FaceDetector", "ImageError", "LandmarkFileError",
    "LandmarkPredictor", "NoFaceError", "PreparedFace", "STD_224_BFM09", "align",
    "detect_with_fallback", "detected_face", "find_landmark_file", "five_points", "invert",
    "landmark_file_candidates", "load_detection_models", "load_image", "prepare_faces",
    "read_landmark_file", "read_pts", "read_txt", "similarity_transform", "template",
    "transform_points",
]
