"""Where do dlib's 68 landmarks fall on the face model's surface?

Renders random faces of the model (mgc.eval.synthetic: random identity,
expression, pose and light), runs the project's detection (dlib HOG/CNN box,
dlib's 68 points) on each picture, and for each landmark asked for finds the
model vertex, near the landmark's current vertex, whose projections lie
closest to dlib's point on average (NME units, % of the sqrt(w h) box of the
true landmarks). The renders are split in two: the vertices are chosen on
the first half and both choices are scored on the second, so the printed
gain is measured on faces the choice did not see.

Only landmarks the render shows by geometry alone are worth calibrating: the
nose (27-35) and the chin (6-10). Brows, lids and lips are painted where the
model's own landmarks are (synthetic_albedo), so dlib finds them there by
construction, and the side jaw points slide along the silhouette when fitting.

    python -m experiments.calibrate_landmarks [--count=160] [--landmark_indices=27-35]
        [--nofile_landmarks]

Shared flags left unset: --count 160 faces, --seed 2024, --output
out/calibrate_landmarks (for calibration.csv).

dlib's points are taken as the fit takes them: averaged with the answer on
the mirror image.
"""
import csv
import os

import numpy as np
from absl import app, flags
from tqdm import tqdm

from experiments import common_flags
from mgc.eval import synthetic
from mgc.facemodel import load_face_model

FLAGS = flags.FLAGS
common_flags.use("face_model", "count", "seed", "output")
COUNT = 160  # random faces rendered: half choose, half score
SEED = 2024
OUTPUT = "out/calibrate_landmarks"
flags.DEFINE_string("landmark_indices", "27-35", "Landmarks (0-based iBUG) to calibrate: a "
                    "range a-b or a comma list.")
flags.DEFINE_float("radius_mm", 12.0, "Candidate vertices lie this close to the current one.")
flags.DEFINE_bool("file_landmarks", True, "Start from the landmark vertices of the model's "
                  "file (for ICT, calibrated_landmarks=False), as DLIB_CALIBRATED_LANDMARKS "
                  "was measured.")


def parse_landmarks(text):
    """'27-35' or '6,7,8' -> sorted list of 0-based indices in [0, 68)."""
    indices = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        indices.update(range(int(low), int(high or low) + 1))
    if not indices or min(indices) < 0 or max(indices) > 67:
        raise ValueError(f"--landmark_indices must name indices in 0..67, got {text!r}")
    return sorted(indices)


def collect(model, count, seed):
    """(vertices_2d [R, N, 2], dlib [R, 68, 2], box [R]) of the renders in
    which a face was found."""
    scenes = tqdm(synthetic.detected_scenes(model, count, seed), total=count, desc="renders")
    found = [(face, prepared) for face, prepared in scenes if prepared is not None]
    print(f"{len(found)} of {count} faces found ({count - len(found)} missed)")
    vertices = np.stack([face.vertices_2d for face, _ in found])
    dlib68 = np.stack([prepared.landmarks68 for _, prepared in found])
    boxes = np.array([np.sqrt(np.prod(np.ptp(face.landmarks, axis=0))) for face, _ in found])
    return vertices, dlib68, boxes


def mean_nme(vertices_2d, dlib68, boxes, vertex, landmark):
    """Mean distance (% of the box) between a vertex and a dlib landmark."""
    distance = np.linalg.norm(vertices_2d[:, vertex] - dlib68[:, landmark, None], axis=-1)
    return 100 * (distance / boxes[:, None]).mean(0)


def calibrate(model, vertices_2d, dlib68, boxes, landmarks, radius):
    """Rows (landmark, current vertex, chosen vertex, NMEs on held-out faces)."""
    half = len(boxes) // 2
    choose = slice(0, half)
    score = slice(half, None)
    mean = model.mean_shape
    rows = []
    for j in landmarks:
        current = int(model.landmarks[j])
        near = np.linalg.norm(mean - mean[current], axis=1) < radius
        candidates = np.nonzero(near & (model.skin_mask > 0))[0]
        cost = mean_nme(vertices_2d[choose], dlib68[choose], boxes[choose], candidates, j)
        chosen = int(candidates[np.argmin(cost)])
        before, after = mean_nme(vertices_2d[score], dlib68[score], boxes[score],
                                 np.array([current, chosen]), j)
        shift = np.linalg.norm(mean[chosen] - mean[current])
        rows.append(dict(landmark=j, current_vertex=current, chosen_vertex=chosen,
                         shift_mm=round(float(shift), 2), held_out_nme_current=round(before, 3),
                         held_out_nme_chosen=round(after, 3)))
    return rows


def main(argv):
    del argv
    landmarks = parse_landmarks(FLAGS.landmark_indices)
    options = {}
    if FLAGS.face_model == "ict":
        options["calibrated_landmarks"] = not FLAGS.file_landmarks
    model = load_face_model(FLAGS.face_model, **options)
    vertices_2d, dlib68, boxes = collect(model, common_flags.value_or("count", COUNT),
                                         common_flags.value_or("seed", SEED))
    if len(boxes) < 10:
        raise SystemExit(f"only {len(boxes)} faces were found; nothing to calibrate on")
    rows = calibrate(model, vertices_2d, dlib68, boxes, landmarks, FLAGS.radius_mm)
    output = common_flags.value_or("output", OUTPUT)
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, "calibration.csv")
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("| landmark | vertex now | chosen | shift (mm) | held-out NME now | chosen |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(value) for value in row.values()) + " |")
    chosen = {row["landmark"]: row["chosen_vertex"] for row in rows}
    print(f"chosen vertices: {chosen}")
    print(f"wrote {path}")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
