"""Face boxes and 68 landmarks with dlib (HOG or MMOD CNN detector).

Coordinates are image pixels, x right, y down, with pixel centres at integers
(the convention of dlib, OpenCV's warpAffine and the landmark files). The
models come from the pip package face-recognition-models; they are loaded
once per process, on first use.
"""
import dataclasses
import functools
import importlib.util
import os
from typing import Optional, Tuple

import cv2
import numpy as np

# dlib's HOG detector at upsample >= 1 fires on small face-like patterns
# (0.12 on the astronaut's mission patch) while real faces score above 1.
# 0.3 separates them; the CNN detector's own threshold (0) is kept.
MIN_SCORE = {"hog": 0.3, "cnn": 0.0}
# Doubling costs the CNN 4x (1 s -> 4.5 s on a 512 px picture, 2 CPU cores)
# and it finds faces down to ~80 px without it; HOG needs it below ~80 px.
DEFAULT_UPSAMPLE = {"hog": 1, "cnn": 0}
# Long side above which a picture is shrunk for detection (MGCNet uses 900).
DETECTION_MAX_SIDE = 900
# When HOG finds no face above MIN_SCORE, a weaker HOG box (score down to
# WEAK_HOG_SCORE) that the CNN detector confirms (overlap >= CONFIRM_IOU with
# a CNN box) replaces that CNN box: the shape predictor was trained on HOG
# boxes, and on CNN boxes it often returns a frontal shape misplaced on a
# turned face. A HOG box and the CNN's box of one face overlap 0.5-0.9; less
# usually means a HOG box on part of the face. dlib's HOG filters are not
# left-right symmetric, so the mirror image is searched too (docs/RESULTS.md).
WEAK_HOG_SCORE = -1.0
CONFIRM_IOU = 0.4

# iBUG-68 index of each point's counterpart in the mirror image (left and
# right swap; points on the midline map to themselves).
MIRRORED_68 = np.concatenate([
    np.arange(16, -1, -1),                              # jaw
    np.arange(26, 16, -1),                              # brows
    np.arange(27, 31), np.arange(35, 30, -1),           # nose bridge, nose base
    [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40],   # eyes
    [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55],   # outer lips
    [64, 63, 62, 61, 60, 67, 66, 65],                   # inner lips
])

_MODEL_PACKAGE = "face-recognition-models"
_LANDMARK_MODEL = "shape_predictor_68_face_landmarks.dat"
_CNN_MODEL = "mmod_human_face_detector.dat"


@dataclasses.dataclass(frozen=True)
class FaceBox:
    """A detected face: box corners in image pixels, a score and its source.

    right and bottom are exclusive (dlib's inclusive corners + 1), so
    width = right - left. score: HOG margin or CNN confidence; detector:
    "hog", "cnn", "hog+cnn" (a weak HOG box the CNN detector confirmed;
    its score is HOG's) or "blazeface" (face_mesh.BlazeFaceDetector).
    eyes: ((x, y) of the right eye, (x, y) of the left eye) in image pixels
    when the detector gives them (BlazeFace), else None.
    nose_tip, mouth_centre: (x, y) in image pixels when the detector gives
    them (BlazeFace), else None.
    """
    left: float
    top: float
    right: float
    bottom: float
    score: float
    detector: str
    eyes: Optional[Tuple[Tuple[float, float], Tuple[float, float]]] = None
    nose_tip: Optional[Tuple[float, float]] = None
    mouth_centre: Optional[Tuple[float, float]] = None

    @property
    def width(self):
        return self.right - self.left

    @property
    def height(self):
        return self.bottom - self.top

    @property
    def area(self):
        return self.width * self.height

    def overlap(self, other):
        """Intersection over union with another FaceBox."""
        width = min(self.right, other.right) - max(self.left, other.left)
        height = min(self.bottom, other.bottom) - max(self.top, other.top)
        intersection = max(width, 0.0) * max(height, 0.0)
        return intersection / (self.area + other.area - intersection)

    def mirrored(self, image_width):
        """The same box in the mirror image (x -> width - x on box edges)."""
        def mirror(point):
            return None if point is None else (image_width - 1 - point[0], point[1])
        eyes = None
        if self.eyes is not None:  # the right eye of the mirror face is the left one
            right, left = self.eyes
            eyes = (mirror(left), mirror(right))
        return dataclasses.replace(self, left=image_width - self.right,
                                   right=image_width - self.left, eyes=eyes,
                                   nose_tip=mirror(self.nose_tip),
                                   mouth_centre=mirror(self.mouth_centre))

    def scaled(self, factor):
        """The same box in a picture resized by `factor`."""
        def scale(point):
            return None if point is None else (point[0] * factor, point[1] * factor)
        eyes = None if self.eyes is None else tuple(scale(p) for p in self.eyes)
        return dataclasses.replace(self, left=self.left * factor, top=self.top * factor,
                                   right=self.right * factor, bottom=self.bottom * factor,
                                   eyes=eyes, nose_tip=scale(self.nose_tip),
                                   mouth_centre=scale(self.mouth_centre))


def model_path(filename):
    """Path of a model file shipped by face-recognition-models.

    Found without importing the package: its __init__ imports pkg_resources,
    which recent setuptools no longer provides.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"dlib's face models are missing: pip install {_MODEL_PACKAGE} "
                          f"(it ships {filename}).")
    path = os.path.join(spec.submodule_search_locations[0], "models", filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found; reinstall the pip package {_MODEL_PACKAGE}.")
    return path


def _dlib():
    try:
        import dlib  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise ImportError("face detection needs dlib: pip install dlib-bin") from error
    return dlib


@functools.lru_cache(maxsize=None)
def _hog_detector():
    return _dlib().get_frontal_face_detector()


@functools.lru_cache(maxsize=None)
def _cnn_detector():
    return _dlib().cnn_face_detection_model_v1(model_path(_CNN_MODEL))


@functools.lru_cache(maxsize=None)
def _shape_predictor():
    return _dlib().shape_predictor(model_path(_LANDMARK_MODEL))


def load_models(kinds=("hog", "cnn"), landmarks=True):
    """Loads dlib's detectors of `kinds` and (landmarks) the landmark
    predictor now (otherwise on first use): the predictor alone takes about a
    second, which a run would rather spend at start-up than on its first
    picture."""
    loaders = {"hog": _hog_detector, "cnn": _cnn_detector}
    for kind in kinds:
        loaders[kind]()
    if landmarks:
        _shape_predictor()


def _as_uint8(image):
    """A C-contiguous uint8 [H, W] or [H, W, 3] array, as dlib requires."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (
            image.ndim == 3 and image.shape[2] != 3):
        raise ValueError(f"expected a uint8 image [H, W] or [H, W, 3], got {image.dtype} "
                         f"{image.shape}")
    return np.ascontiguousarray(image)


class FaceDetector:
    """dlib face detector: "hog" (0.1 s per 512 px picture, frontal to about
    45 degrees of yaw) or "cnn" (MMOD, 1 s per 512 px picture on 2 CPU cores
    at upsample 0, finds faces at more poses).

    Args:
      kind: "hog" or "cnn".
      upsample: times the picture is doubled before detection (smaller faces,
        4x the time each); default DEFAULT_UPSAMPLE[kind].
      min_score: boxes scoring below are dropped; default MIN_SCORE[kind].
      max_side: pictures with a longer side are shrunk to it for detection.
    """

    def __init__(self, kind="hog", upsample=None, min_score=None, max_side=DETECTION_MAX_SIDE):
        if kind not in MIN_SCORE:
            raise ValueError(f"unknown detector {kind!r}; use 'hog' or 'cnn'")
        self.kind = kind
        self.upsample = DEFAULT_UPSAMPLE[kind] if upsample is None else int(upsample)
        self.min_score = MIN_SCORE[kind] if min_score is None else float(min_score)
        self.max_side = max_side

    def detect(self, image):
        """Faces in uint8 [H, W] or [H, W, 3] RGB, largest area first."""
        image = _as_uint8(image)
        scale = min(1.0, self.max_side / max(image.shape[:2])) if self.max_side else 1.0
        if scale < 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        boxes = self._hog(image) if self.kind == "hog" else self._cnn(image)
        boxes = [b.scaled(1.0 / scale) for b in boxes if b.score >= self.min_score]
        return sorted(boxes, key=lambda b: b.area, reverse=True)

    def _hog(self, image):
        rects, scores, _ = _hog_detector().run(image, self.upsample, min(self.min_score, 0.0))
        return [_box(r, s, "hog") for r, s in zip(rects, scores)]

    def _cnn(self, image):
        found = _cnn_detector()(image, self.upsample)
        return [_box(d.rect, d.confidence, "cnn") for d in found]

    def __repr__(self):
        return (f"FaceDetector(kind={self.kind!r}, upsample={self.upsample}, "
                f"min_score={self.min_score})")


def _box(rect, score, detector):
    # dlib's right/bottom are the last pixel inside; +1 makes width = r - l.
    return FaceBox(float(rect.left()), float(rect.top()), float(rect.right() + 1),
                   float(rect.bottom() + 1), float(score), detector)


def detect_with_fallback(image, hog_upsample=None, cnn_upsample=None):
    """HOG faces, or the CNN detector's when HOG finds none (profiles, tilts),
    each replaced by a weak HOG box on the same face where there is one
    (WEAK_HOG_SCORE, CONFIRM_IOU), from the picture or its mirror image.

    Returns a list of FaceBox, largest first; empty when neither finds one.
    """
    image = _as_uint8(image)
    hog = FaceDetector("hog", hog_upsample, min_score=WEAK_HOG_SCORE)
    weak = hog.detect(image)
    strong = [box for box in weak if box.score >= MIN_SCORE["hog"]]
    if strong:
        return strong
    mirror = np.ascontiguousarray(image[:, ::-1])
    weak += [box.mirrored(image.shape[1]) for box in hog.detect(mirror)]
    found = []
    for cnn_box in FaceDetector("cnn", cnn_upsample).detect(image):
        match = _weak_match(cnn_box, weak)
        if match is None:
            found.append(cnn_box)
        else:
            weak.remove(match)  # one box per face
            found.append(dataclasses.replace(match, detector="hog+cnn"))
    return sorted(found, key=lambda b: b.area, reverse=True)


def _weak_match(cnn_box, weak_boxes):
    """The best-scoring weak HOG box on the CNN box's face, or None."""
    matches = [box for box in weak_boxes if box.overlap(cnn_box) >= CONFIRM_IOU]
    return max(matches, key=lambda box: box.score) if matches else None


class LandmarkPredictor:
    """dlib's 68-point shape predictor (iBUG 300-W order, trained on HOG boxes).

    Args:
      mirror_average: also run the predictor on the mirror image of the
        picture and average the two answers (default). dlib's regression
        trees are not left-right symmetric, so the two answers err
        differently; their mean is closer to the truth on AFLW2000-3D (every
        yaw bin) and on rendered faces (docs/RESULTS.md), for 1 ms more.
    """

    def __init__(self, mirror_average=True):
        self.mirror_average = mirror_average

    def predict(self, image, box):
        """68 landmarks [68, 2] float32 (x, y pixels) of the face in `box`.

        Args:
          image: uint8 [H, W] or [H, W, 3] RGB, the picture `box` refers to.
          box: a FaceBox in the pixels of `image`.
        """
        return self.predict_and_raw(image, box)[0]

    def predict_and_raw(self, image, box):
        """(predict's landmarks, dlib's single answer on the picture alone),
        both [68, 2] float32; the second is the raw baseline evaluations
        compare against."""
        image = _as_uint8(image)
        raw = _predict_once(image, box)
        if not self.mirror_average:
            return raw, raw
        return (raw + _predict_mirrored(image, box)) / 2, raw


def _predict_once(image, box):
    dlib = _dlib()
    rect = dlib.rectangle(int(round(box.left)), int(round(box.top)),
                          int(round(box.right)) - 1, int(round(box.bottom)) - 1)
    shape = _shape_predictor()(image, rect)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def _predict_mirrored(image, box):
    """The prediction on the mirror image, mapped back: x -> width - 1 - x
    (pixel centres at integers), the box's exclusive right edge becoming the
    left one, and each point renamed after its mirror counterpart."""
    width = image.shape[1]
    points = _predict_once(np.ascontiguousarray(image[:, ::-1]), box.mirrored(width))
    points[:, 0] = width - 1 - points[:, 0]
    return points[MIRRORED_68]
