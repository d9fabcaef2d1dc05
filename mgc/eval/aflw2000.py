"""The AFLW2000-3D 68-point protocol: NME by yaw bin, as the literature
reports it (3DDFA, PRNet, MGCNet, 3DDFA_V2).

  * ground truth: the original `pt3d_68` x, y in original-image pixels
    (gt_arrays_3ddfa/AFLW2000-3D.pts68.npy, row i = line i of the file list);
  * yaw: |AFLW2000-3D.pose.npy| in degrees; bins [0, 30), [30, 60),
    [60, inf) hold 1312 / 383 / 305 of the 2000 images;
  * NME: mean point-to-point distance over the 68 points divided by
    sqrt(w * h) of the ground truth's x/y extent;
  * "mean": the mean of the three bin NMEs (each bin weighs the same);
  * a face that was not found is counted for its bin, never averaged in.

Pure NumPy; the ground truth is read here and used only for scoring (and for
the literature's ground-truth boxes, gt_face_box).
"""
import csv
import dataclasses
import math
import os
from typing import Dict, List

import numpy as np

from mgc import paths
from mgc.preprocess.detection import FaceBox

DATA_DIR = "aflw2000_3d"
FILE_LIST = os.path.join(DATA_DIR, "AFLW2000-3D_file_list.txt")
PTS68 = os.path.join(DATA_DIR, "gt_arrays_3ddfa", "AFLW2000-3D.pts68.npy")
POSE = os.path.join(DATA_DIR, "gt_arrays_3ddfa", "AFLW2000-3D.pose.npy")
SUBSET_DIR = os.path.join(DATA_DIR, "subset_every10th")

BIN_EDGES = (30.0, 60.0)  # degrees of |yaw|; the last bin is open above
BIN_LABELS = ("0-30", "30-60", "60-90")
NUM_BINS = len(BIN_LABELS)

# The fit to the face mesh's 468 points, and the mesh's own 68 points (read
# off it at the calibrated mesh points, mgc.preprocess.face_mesh.MESH_68).
METHOD_FITTED_MESH = "fitted to mesh (ours)"
METHOD_MESH = "mesh 68 (raw)"
# The fit to dlib's 68 points, dlib's answer, and dlib's answer averaged with
# its answer on the mirror image (the fit's input).
METHOD_FITTED = "fitted to dlib (ours)"
METHOD_DLIB = "dlib 68 (raw)"
METHOD_DLIB_MIRRORED = "dlib 68 (mirror-averaged)"
METHODS = (METHOD_FITTED_MESH, METHOD_MESH, METHOD_FITTED, METHOD_DLIB, METHOD_DLIB_MIRRORED)
# The landmark backend each method's points come from.
BACKEND_METHODS = {"mesh": (METHOD_FITTED_MESH, METHOD_MESH),
                   "dlib": (METHOD_FITTED, METHOD_DLIB, METHOD_DLIB_MIRRORED)}
METHOD_BACKEND = {m: b for b, methods in BACKEND_METHODS.items() for m in methods}
# Column suffixes of the per-image CSV.
METHOD_KEYS = {METHOD_FITTED_MESH: "fitted_mesh", METHOD_MESH: "mesh", METHOD_FITTED: "fitted",
               METHOD_DLIB: "dlib", METHOD_DLIB_MIRRORED: "dlib_mirrored"}
# Box sources, as FaceBox.detector names them, in the breakdown's words;
# "+keypoints": the fit followed the detector's keypoints, not the mesh
# (PreparedFace.mesh_failure).
BOX_SOURCES = {"blazeface": "BlazeFace",
               "blazeface+keypoints": "BlazeFace, fitted to its keypoints (mesh failed)",
               "hog": "HOG", "hog+cnn": "weak HOG confirmed by CNN",
               "cnn": "CNN (no HOG box on the face)", "gt": "ground truth"}

# --use_gt_boxes: a square around the ground-truth points placed like a dlib
# HOG box, whose placement dlib's landmark predictor was trained on. Against
# the HOG boxes of the 134 subset images where HOG finds the face (all poses),
# the box centre is the mean of the 51 inner points (brows, eyes, nose,
# mouth; off by 0.01 (sd 0.03) of a side in x, 0.00 (sd 0.05) in y), where the
# centre of the points' extent is off by 0.13 sd in x on turned faces; the
# side is 1.04 (sd 0.09) x the longer side of the extent.
GT_BOX_SCALE = 1.04
INNER_POINTS = slice(17, 68)


@dataclasses.dataclass(frozen=True)
class GroundTruth:
    """The whole set: names [N], pts68 [N, 68, 2] float64 pixels, yaw [N]
    (|yaw| in degrees)."""
    names: List[str]
    pts68: np.ndarray
    yaw: np.ndarray

    def index(self, name):
        """Row of an image name (with or without .jpg)."""
        stem = os.path.splitext(os.path.basename(name))[0]
        try:
            return self.names.index(stem + ".jpg")
        except ValueError:
            raise KeyError(f"{name} is not an AFLW2000-3D image") from None


@dataclasses.dataclass
class ImageRecord:
    """One evaluated image.

    Attributes:
      name: image file name.
      yaw: |yaw| in degrees (from the ground truth, for binning).
      boxes: landmark backend ("mesh", "dlib") -> where its face box came
        from (a FaceBox.detector: "blazeface", "hog", "hog+cnn", "cnn",
        "gt"); a backend that found no face is absent.
      nme: method -> NME (a fraction, not %); a method that found no face
        is absent or NaN.
      seconds: processing time of the image (detection, landmarks and its
        share of the batch's fit).
    """
    name: str
    yaw: float
    boxes: Dict[str, str]
    nme: Dict[str, float]
    seconds: float = math.nan

    def found(self, method):
        return np.isfinite(self.nme.get(method, math.nan))


@dataclasses.dataclass
class TableRow:
    """One method's line of the table; NMEs are fractions (NaN when empty)."""
    method: str
    nme: List[float]        # per bin
    mean: float             # mean of the three bin NMEs
    overall: float          # mean over every scored face
    scored: List[int]       # faces scored per bin
    not_found: List[int]    # faces not found per bin


def read_file_list(data_root=None):
    """The 2000 image names, in the order of the ground-truth arrays."""
    with open(paths.data_file(FILE_LIST, data_root)) as stream:
        return [line.strip() for line in stream if line.strip()]


def load_ground_truth(data_root=None):
    """The original pt3d_68 (x, y) and |yaw| of all 2000 images."""
    names = read_file_list(data_root)
    pts = np.load(paths.data_file(PTS68, data_root))          # [N, 3, 68]
    yaw = np.abs(np.load(paths.data_file(POSE, data_root)))   # [N]
    if pts.shape[0] != len(names) or yaw.shape != (len(names),):
        raise ValueError(f"ground truth {pts.shape} / {yaw.shape} does not match "
                         f"{len(names)} names")
    pts68 = np.transpose(pts[:, :2], (0, 2, 1)).astype(np.float64)
    return GroundTruth(names=names, pts68=pts68, yaw=yaw.astype(np.float64))


def yaw_bin(yaw):
    """Bin index 0, 1 or 2 of a yaw in degrees (its absolute value is used)."""
    return int(np.searchsorted(BIN_EDGES, abs(float(yaw)), side="right"))


def extent(points):
    """(left, top, right, bottom) of points [68, 2]."""
    points = np.asarray(points, np.float64)
    (left, top), (right, bottom) = points.min(0), points.max(0)
    return left, top, right, bottom


def nme(prediction, ground_truth):
    """Mean distance of prediction [68, 2] to ground_truth [68, 2] over
    sqrt(w * h) of the ground truth's x/y extent (a fraction)."""
    prediction = np.asarray(prediction, np.float64)
    ground_truth = np.asarray(ground_truth, np.float64)
    if prediction.shape != (68, 2) or ground_truth.shape != (68, 2):
        raise ValueError(f"expected two [68, 2] arrays, got {prediction.shape} and "
                         f"{ground_truth.shape}")
    left, top, right, bottom = extent(ground_truth)
    size = math.sqrt((right - left) * (bottom - top))
    return float(np.linalg.norm(prediction - ground_truth, axis=1).mean() / size)


def gt_face_box(ground_truth):
    """The literature's ground-truth box, made to look like a dlib HOG box: a
    square of GT_BOX_SCALE x the longer side of the points' extent, centred
    on the mean of the inner points."""
    left, top, right, bottom = extent(ground_truth)
    side = GT_BOX_SCALE * max(right - left, bottom - top)
    cx, cy = np.asarray(ground_truth, np.float64)[INNER_POINTS].mean(0)
    return FaceBox(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2, 1.0, "gt")


def _mean(values):
    return float(np.mean(values)) if len(values) else math.nan


def summarise(records, methods=METHODS):
    """The table: one TableRow per method, from ImageRecords; methods that
    no record has are left out."""
    methods = [m for m in methods if any(m in r.nme for r in records)] or list(methods)[:1]
    rows = []
    for method in methods:
        per_bin = [[] for _ in range(NUM_BINS)]
        not_found = [0] * NUM_BINS
        for record in records:
            b = yaw_bin(record.yaw)
            if record.found(method):
                per_bin[b].append(record.nme[method])
            else:
                not_found[b] += 1
        bins = [_mean(values) for values in per_bin]
        rows.append(TableRow(method=method, nme=bins, mean=float(np.mean(bins)),
                             overall=_mean([v for values in per_bin for v in values]),
                             scored=[len(values) for values in per_bin], not_found=not_found))
    return rows


# --- Writing -----------------------------------------------------------------

def _percent(value):
    return f"{100 * value:.2f}" if np.isfinite(value) else "-"


def _slashes(values):
    return " / ".join(str(v) for v in values)


CSV_FIELDS = (["method"] + [f"nme_{label}" for label in BIN_LABELS] + ["nme_mean", "nme_all"]
              + [f"scored_{label}" for label in BIN_LABELS]
              + [f"not_found_{label}" for label in BIN_LABELS])


def write_table_csv(table, path):
    """The table as CSV; NMEs in % (empty where a bin has no face)."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(CSV_FIELDS)
        for row in table:
            nmes = row.nme + [row.mean, row.overall]
            writer.writerow([row.method]
                            + [f"{100 * v:.4f}" if np.isfinite(v) else "" for v in nmes]
                            + row.scored + row.not_found)


def table_markdown(table):
    """The table as Markdown; NMEs in %."""
    bins = " | ".join(f"{label}" for label in BIN_LABELS)
    labels = "/".join(BIN_LABELS)
    lines = [f"| method | {bins} | mean | all faces | faces scored ({labels}) "
             f"| not found ({labels}) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in table:
        nmes = " | ".join(_percent(v) for v in row.nme)
        lines.append(f"| {row.method} | {nmes} | **{_percent(row.mean)}** | "
                     f"{_percent(row.overall)} | {_slashes(row.scored)} | "
                     f"{_slashes(row.not_found)} |")
    return "\n".join(lines)


def write_table_markdown(table, path, header=""):
    """table_markdown(table), after an optional header paragraph."""
    with open(path, "w") as stream:
        if header:
            stream.write(header.rstrip() + "\n\n")
        stream.write(table_markdown(table) + "\n")


PER_IMAGE_FIELDS = (("name", "yaw", "bin") + tuple(f"box_{b}" for b in BACKEND_METHODS)
                    + tuple(f"found_{METHOD_KEYS[m]}" for m in METHODS)
                    + tuple(f"nme_{METHOD_KEYS[m]}" for m in METHODS) + ("seconds",))


def write_per_image_csv(records, path):
    """One line per image; NMEs in % (empty when not found); box_<backend>
    is the source of the backend's box ("" when it found none)."""
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(PER_IMAGE_FIELDS)
        for r in records:
            values = [r.nme.get(m, math.nan) for m in METHODS]
            writer.writerow([r.name, f"{r.yaw:.2f}", BIN_LABELS[yaw_bin(r.yaw)]]
                            + [r.boxes.get(b, "") for b in BACKEND_METHODS]
                            + [int(r.found(m)) for m in METHODS]
                            + [f"{100 * v:.4f}" if np.isfinite(v) else "" for v in values]
                            + [f"{r.seconds:.3f}"])


def breakdown_markdown(records, backend):
    """Markdown: per yaw bin and box source of `backend`, the faces and each
    of its methods' NME in %, mean (median)."""
    methods = [m for m in BACKEND_METHODS[backend] if any(m in r.nme for r in records)]
    lines = [f"| yaw | box ({backend}) | faces | " + " | ".join(methods) + " |",
             "|---" * (3 + len(methods)) + "|"]
    for b, label in enumerate(BIN_LABELS):
        in_bin = [r for r in records if yaw_bin(r.yaw) == b and backend in r.boxes]
        for source, words in BOX_SOURCES.items():
            group = [r for r in in_bin if r.boxes[backend] == source]
            if not group:
                continue
            cells = []
            for method in methods:
                values = [100 * r.nme[method] for r in group if r.found(method)]
                cells.append(f"{np.mean(values):.2f} ({np.median(values):.2f})" if values else "-")
            lines.append(f"| {label} | {words} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_csv(path):
    """Rows of a CSV written here, as dicts of strings."""
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def present_images(names, image_dir):
    """The names of `names` whose file exists in image_dir, in order."""
    return [n for n in names if os.path.isfile(os.path.join(image_dir, n))]


def default_image_dir(data_root=None):
    """The 200-image subset of the data root."""
    return os.path.join(paths.data_root(data_root), SUBSET_DIR)
