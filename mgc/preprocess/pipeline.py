"""Picture -> MGCNet input crops: landmarks from a file, from dlib or from
MediaPipe's face mesh (face_mesh.py), then the 5-point alignment of
alignment.py."""
import dataclasses
import os
from typing import Optional

import numpy as np

from mgc.preprocess import alignment
from mgc.preprocess import detection
from mgc.preprocess import face_mesh
from mgc.preprocess import landmark_files
from mgc.preprocess.images import load_image

LANDMARK_MODES = ("auto", "detect", "files")
DETECTORS = ("auto", "blazeface", "hog", "cnn")  # what each means: detect_faces
LANDMARK_MODELS = ("mesh", "dlib")


class NoFaceError(ValueError):
    """No face could be found or read for a picture; the message says why."""


@dataclasses.dataclass
class PreparedFace:
    """One face ready for the network.

    Attributes:
      box: the detector's FaceBox, or None when landmarks came from a file.
      landmarks68: [68, 2] float32 image pixels, or None when only 5 points
        are known (a 5-point file).
      points5: [5, 2] float64 image pixels used for the alignment.
      landmark_source: "detected" or "file".
      crop: uint8 [size, size, 3] RGB crop (224 for MGCNet).
      crop_matrix: M [3, 3] float64 mapping image pixels -> crop pixels.
      crop_landmarks68: landmarks68 mapped into the crop ([68, 2] float32), or None.
      landmark_file: the file the landmarks were read from, or None.
      raw_landmarks68: dlib's single answer on the picture, before the mirror
        average that landmarks68 holds (the baseline evaluations compare
        against); the mesh's 68 points for the mesh backend; None when
        landmarks came from a file.
      mesh_points: the face mesh's [468, 3] float32 points (x, y, depth) in
        image pixels (face_mesh.MeshAnswer), or None (other backends).
      crop_mesh_points: the same in crop pixels (depth scaled as x, y); None
        where the fit does not follow the mesh (mesh_failure).
      mesh_failure: why the fit does not follow this face's mesh answer and
        aligns and fits to the detector's keypoints instead
        (face_mesh.mesh_failure), or None.
    """
    box: Optional[detection.FaceBox]
    landmarks68: Optional[np.ndarray]
    points5: np.ndarray
    landmark_source: str
    crop: np.ndarray
    crop_matrix: np.ndarray
    crop_landmarks68: Optional[np.ndarray]
    landmark_file: Optional[str] = None
    raw_landmarks68: Optional[np.ndarray] = None
    mesh_points: Optional[np.ndarray] = None
    crop_mesh_points: Optional[np.ndarray] = None
    mesh_failure: Optional[str] = None


def prepare_faces(image, image_path=None, landmarks="auto", detector="auto",
                  largest_face_only=False, size=alignment.CROP_SIZE, mirror_average=True,
                  landmarks_model="dlib"):
    """Finds the faces of a picture and crops each as MGCNet expects.

    Args:
      image: uint8 RGB [H, W, 3] (e.g. from load_image), or a path, which is
        then loaded and used as image_path.
      image_path: where the picture lies; only used to find landmark files.
      landmarks: "auto" reads a landmark file beside the picture when there
        is one (see landmark_files.landmark_file_candidates) and detects
        otherwise; "files" requires such a file; "detect" never reads files.
      detector: one of DETECTORS (see detect_faces).
      largest_face_only: keep only the largest detected face.
      size: side of the crops in pixels.
      mirror_average: average the landmarks with those of the mirror image
        (detection.LandmarkPredictor, face_mesh.FaceMeshPredictor).
      landmarks_model: "dlib" (dlib's 68-point predictor) or "mesh"
        (MediaPipe's 468-point face mesh and the 68 points read off it).

    Returns:
      list of PreparedFace: one for a landmark file, else one per detected
      face, largest box first.

    Raises:
      NoFaceError: no face was detected.
      FileNotFoundError: landmarks="files" and no file exists (names the
        paths searched).
      ImageError, LandmarkFileError: unreadable picture or landmark file.
    """
    if landmarks not in LANDMARK_MODES:
        raise ValueError(f"landmarks must be one of {LANDMARK_MODES}, got {landmarks!r}")
    _check_detector(detector)
    predictor = landmark_predictor(landmarks_model, mirror_average)
    if isinstance(image, (str, os.PathLike)):
        image_path = image_path or image
        image = load_image(image)
    image = _rgb(image)

    path = _landmark_file(image_path, landmarks)
    if path is not None:
        return [_face_from_file(image, path, size)]
    boxes = _detect(image, detector, image_path, landmarks_model)
    if largest_face_only:
        boxes = boxes[:1]
    return [detected_face(image, box, predictor, size) for box in boxes]


def landmark_predictor(landmarks_model="dlib", mirror_average=True):
    """The predictor of a landmark backend (one of LANDMARK_MODELS)."""
    if landmarks_model == "dlib":
        return detection.LandmarkPredictor(mirror_average)
    if landmarks_model == "mesh":
        return face_mesh.FaceMeshPredictor(mirror_average=mirror_average)
    raise ValueError(f"landmarks_model must be one of {LANDMARK_MODELS}, got {landmarks_model!r}")


def detected_face(image, box, predictor, size=alignment.CROP_SIZE):
    """The PreparedFace of a detector's box: the predictor's landmarks (a
    detection.LandmarkPredictor or a face_mesh.FaceMeshPredictor) and the
    crop they align."""
    if isinstance(predictor, face_mesh.FaceMeshPredictor):
        return _mesh_face(image, box, predictor.predict(image, box), size)
    lm68, raw = predictor.predict_and_raw(image, box)
    return _prepared(image, box, lm68, alignment.five_points(lm68), "detected", size,
                     raw_landmarks68=raw)


def _mesh_face(image, box, answer, size):
    """The PreparedFace of a face-mesh answer: aligned on and fitted to its
    points, or, where they fail (face_mesh.mesh_failure), to the detector's
    five keypoints, keeping the mesh's 68 as raw_landmarks68."""
    raw = face_mesh.landmarks68(answer.points)
    failure = face_mesh.mesh_failure(answer, box)
    if failure is None:
        return _prepared(image, box, raw, alignment.five_points(raw), "detected", size,
                         raw_landmarks68=raw, mesh_points=answer.points)
    face = _prepared(image, box, None, face_mesh.keypoint_points5(box), "detected", size,
                     raw_landmarks68=raw)
    return dataclasses.replace(face, mesh_points=answer.points, mesh_failure=failure)


def _rgb(image):
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    return image


def _landmark_file(image_path, mode):
    """The landmark file to use, or None to detect."""
    if mode == "detect":
        return None
    if image_path is None:
        if mode == "files":
            raise ValueError("landmarks='files' needs image_path to find the landmark file")
        return None
    path = landmark_files.find_landmark_file(image_path)
    if path is None and mode == "files":
        searched = ", ".join(landmark_files.landmark_file_candidates(image_path))
        raise FileNotFoundError(f"no landmark file for {image_path}; looked for {searched}")
    return path


def _face_from_file(image, path, size):
    points = landmark_files.read_landmark_file(path)
    lm68 = points if len(points) == 68 else None
    points5 = alignment.five_points(lm68) if lm68 is not None else points.astype(np.float64)
    return _prepared(image, None, lm68, points5, "file", size, path)


def detect_faces(image, detector="auto", landmarks_model="dlib"):
    """Face boxes of a uint8 RGB picture, largest first (possibly none).

    detector: "blazeface" (MediaPipe's BlazeFace, which finds profiles;
    where it finds nothing, dlib's as for "auto" with dlib), "hog" (dlib's
    HOG only), "cnn" (dlib's CNN only) or "auto": the landmark backend's
    own, BlazeFace for the mesh, and for dlib's predictor (trained on HOG
    boxes) dlib's HOG detector, where it finds nothing the CNN detector's
    boxes or weak HOG boxes the CNN confirms (detection.detect_with_fallback).
    """
    _check_detector(detector)
    if resolved_detector(detector, landmarks_model) == "blazeface":
        boxes = face_mesh.BlazeFaceDetector().detect(image)
        return boxes or detection.detect_with_fallback(image)
    if detector == "auto":
        return detection.detect_with_fallback(image)
    return detection.FaceDetector(detector).detect(image)


def resolved_detector(detector, landmarks_model):
    """The detector "auto" stands for with a landmark backend."""
    if detector == "auto":
        return "blazeface" if landmarks_model == "mesh" else "dlib"
    return detector


def load_detection_models(detector="auto", landmarks_model="dlib"):
    """Loads the models that detecting with `detector` and predicting with
    `landmarks_model` use (see detect_faces), so that the first picture does
    not pay for them. Raises face_mesh's MeshModelError (saying how to get
    them) when the mesh backend's files are missing."""
    _check_detector(detector)
    kind = resolved_detector(detector, landmarks_model)
    if landmarks_model == "mesh" or kind == "blazeface":
        face_mesh.load_models(detector="both" if kind == "blazeface" else None)
    detection.load_models(("hog", "cnn") if kind in ("dlib", "blazeface") else (kind,),
                          landmarks=landmarks_model == "dlib")


def _check_detector(detector):
    if detector not in DETECTORS:
        raise ValueError(f"detector must be one of {DETECTORS}, got {detector!r}")


_TRIED = {"dlib": "HOG or CNN detector", "hog": "HOG detector", "cnn": "CNN detector",
          "blazeface": "BlazeFace detectors or dlib's HOG or CNN detector"}


def _detect(image, detector, image_path, landmarks_model="dlib"):
    """Face boxes, largest first; NoFaceError when there are none."""
    boxes = detect_faces(image, detector, landmarks_model)
    if not boxes:
        where = image_path or "the image"
        tried = _TRIED[resolved_detector(detector, landmarks_model)]
        raise NoFaceError(f"no face found by the {tried} in {where} "
                          f"({image.shape[1]}x{image.shape[0]} pixels)")
    return boxes


def _prepared(image, box, lm68, points5, source, size, path=None, raw_landmarks68=None,
              mesh_points=None):
    crop, matrix = alignment.align(image, points5, size)
    crop_lm68 = crop_mesh = None
    if lm68 is not None:
        crop_lm68 = alignment.transform_points(lm68, matrix).astype(np.float32)
    if mesh_points is not None:
        scale = np.sqrt(abs(np.linalg.det(matrix[:2, :2])))  # a similarity's scale
        crop_mesh = np.concatenate([alignment.transform_points(mesh_points[:, :2], matrix),
                                    mesh_points[:, 2:] * scale], 1).astype(np.float32)
    return PreparedFace(box=box, landmarks68=lm68, points5=points5, landmark_source=source,
                        crop=crop, crop_matrix=matrix, crop_landmarks68=crop_lm68,
                        landmark_file=path, raw_landmarks68=raw_landmarks68,
                        mesh_points=mesh_points, crop_mesh_points=crop_mesh)
