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

With --landmarks_model=mesh it calibrates MediaPipe's 468-point face mesh
instead, on renders turned up to --max_yaw degrees, found by BlazeFace:
  * for each mesh point, the model vertex whose projections lie closest to
    it on average (all vertices are candidates): the correspondence the fit
    uses, written to mgc/fitting/face_mesh_vertices.json under the model's
    name (--write_files);
  * with the BFM09 mean (MESH_68_MODEL), for each iBUG landmark the mesh
    point closest to the model's landmark vertex on average: the 68 points
    read off the mesh (mgc/preprocess/face_mesh_68.json).
Both are chosen on the first half of the renders and scored on the second.
With --min_yaw above 0 the renders are turned between --min_yaw and
--max_yaw degrees either way, the mesh answers are mirror-averaged as the fit
sees them, and the correspondence goes to the profile table
(mgc/fitting/face_mesh_vertices_profile.json; no 68-point list):

    python -m experiments.calibrate_landmarks --landmarks_model=mesh --face_model=ict \
        --min_yaw=55 --max_yaw=88 --write_files

    python -m experiments.calibrate_landmarks --landmarks_model=mesh --face_model=ict \
        [--count=200] [--write_files]

With --keypoints it writes instead, for --face_model, the 68 vertices in the
convention of the BFM09 keypoints (AFLW2000-3D's and MGCNet's: a fixed jaw as
deep as BFM's) into mgc/fitting/keypoints_68.json (mgc.fitting.keypoints):

    python -m experiments.calibrate_landmarks --keypoints --face_model=ict

With --mirror_map it writes which mesh point marks each point's mirror image,
from the correspondences of the built-in models (mesh_targets.mirror_map), into
mgc/preprocess/face_mesh_mirror.json (the mesh backend's mirror average):

    python -m experiments.calibrate_landmarks --mirror_map
"""
import csv
import json
import os

import numpy as np
from absl import app, flags
from tqdm import tqdm

from experiments import common_flags
from mgc.eval import synthetic
from mgc.facemodel import CoefficientLayout, load_face_model
from mgc.fitting import keypoints, mesh_targets
from mgc.preprocess import face_mesh

FLAGS = flags.FLAGS
common_flags.use("face_model", "count", "seed", "output", "landmarks_model")
COUNT = 160  # random faces rendered: half choose, half score
SEED = 2024
OUTPUT = "out/calibrate_landmarks"
flags.DEFINE_string("landmark_indices", "27-35", "Landmarks (0-based iBUG) to calibrate: a "
                    "range a-b or a comma list.")
flags.DEFINE_float("radius_mm", 12.0, "Candidate vertices lie this close to the current one.")
# The model whose 68 landmarks the mesh's 68 points are calibrated to: the
# BFM09 keypoints, which AFLW2000-3D and MGCNet mark (on the AFLW2000-3D
# subset, mesh 68 NME 3.77 / 9.20 / 13.01 % against 4.13 / 10.14 / 14.12 %
# calibrated to ICT's landmarks, whose jaw lies 17 mm less deep).
MESH_68_MODEL = "bfm_mean"
flags.DEFINE_float("max_yaw", 70.0, "Mesh: renders turned up to this many degrees of yaw.")
flags.DEFINE_float("min_yaw", 0.0, "Mesh: renders turned at least this many degrees either way; "
                   "above 0, the profile table (mesh_targets.PROFILE_CORRESPONDENCE_FILE).")
flags.DEFINE_bool("write_files", False, "Mesh: write the correspondence (and, for ict, the "
                  "68-point list) into the package's JSON files.")
flags.DEFINE_bool("keypoints", False, "Write the model's 68 vertices in the BFM09 keypoints' "
                  "convention (mgc.fitting.keypoints) and stop.")
flags.DEFINE_bool("mirror_map", False, "Write the mesh points' mirror map "
                  "(mesh_targets.mirror_map, from every built-in model's correspondence) and stop.")
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


def mesh_scenes(model, count, seed, max_yaw, min_yaw=0.0):
    """Yields (SyntheticFace, MeshAnswer or None) for `count` random renders
    turned up to max_yaw degrees, found by BlazeFace; with min_yaw above 0,
    turned between min_yaw and max_yaw either way, and the answers
    mirror-averaged as the fit sees them."""
    rng = np.random.default_rng(seed)
    layout = CoefficientLayout.for_model(model)
    background = synthetic.flag_background()
    # The front table from single answers: the mirror map that the mirror
    # average needs is made from it (--mirror_map), and it was made so.
    detector = face_mesh.BlazeFaceDetector()
    predictor = face_mesh.FaceMeshPredictor(mirror_average=min_yaw > 0)
    for _ in range(count):
        identity = rng.normal(0, 0.8, layout.identity)
        expression = np.clip(rng.normal(0, 0.1, layout.expression), 0, 1)
        angles = rng.uniform([-max_yaw, -15, -10], [max_yaw, 15, 10])
        if min_yaw > 0:
            angles[0] = rng.uniform(min_yaw, max_yaw) * rng.choice([-1.0, 1.0])
        light = np.array(synthetic.TOP_LIGHT)
        light[:4] += rng.uniform([-0.05, -0.1, -0.1, -0.2], [0.1, 0.15, 0.05, 0.1])
        face = synthetic.render_scene(model, identity, expression, angles,
                                      background[:, ::-1] if rng.random() < 0.5 else background,
                                      light)
        boxes = detector.detect(face.image)
        yield face, (predictor.predict(face.image, boxes[0]) if boxes else None)


def nearest_on_average(candidates_2d, targets_2d, boxes):
    """For each target point, the candidate whose positions lie closest to
    it on average over the renders (distance over the box size).

    candidates_2d [R, C, 2], targets_2d [R, T, 2], boxes [R] -> [T] indices.
    """
    cost = np.zeros((targets_2d.shape[1], candidates_2d.shape[1]), np.float64)
    for candidates, targets, box in zip(candidates_2d, targets_2d, boxes):
        difference = targets[:, None].astype(np.float32) - candidates[None].astype(np.float32)
        cost += np.sqrt(np.sum(np.square(difference), -1)) / box
    return np.argmin(cost, axis=1)


def held_out_error(points_a, points_b, boxes):
    """Mean distance (% of the box) between matched points [R, P, 2]."""
    return float(100 * np.nanmean(np.linalg.norm(points_a - points_b, axis=-1) / boxes[:, None]))


def calibrate_mesh(model, count, seed, max_yaw, min_yaw=0.0):
    """(vertex of each mesh point [468], mesh point of each iBUG landmark
    [68], a report dict); chosen on half the renders, scored on the rest."""
    scenes = tqdm(mesh_scenes(model, count, seed, max_yaw, min_yaw), total=count,
                  desc="renders")
    found = [(face, answer) for face, answer in scenes if answer is not None]
    print(f"{len(found)} of {count} faces found by BlazeFace")
    if len(found) < 10:
        raise SystemExit(f"only {len(found)} faces were found; nothing to calibrate on")
    vertices = np.stack([face.vertices_2d for face, _ in found])
    mesh = np.stack([answer.points[:, :2] for _, answer in found])
    landmarks = np.stack([face.landmarks for face, _ in found])
    # Models without some landmarks (Surrey) have NaN rows there.
    boxes = np.array([np.sqrt(np.prod(np.nanmax(face.landmarks, 0) - np.nanmin(face.landmarks, 0)))
                      for face, _ in found])
    half = len(found) // 2
    fit, score = slice(0, half), slice(half, None)
    correspondence = nearest_on_average(vertices[fit], mesh[fit], boxes[fit])
    mesh68 = nearest_on_average(mesh[fit], landmarks[fit], boxes[fit])
    report = dict(
        renders=count, found=len(found), max_yaw=max_yaw, min_yaw=min_yaw,
        held_out_mesh_to_vertex_nme=held_out_error(vertices[score][:, correspondence],
                                                   mesh[score], boxes[score]),
        held_out_mesh68_nme=held_out_error(mesh[score][:, mesh68], landmarks[score],
                                           boxes[score]))
    return correspondence, mesh68, report


def main_mesh(model):
    profile = FLAGS.min_yaw > 0
    correspondence, mesh68, report = calibrate_mesh(
        model, common_flags.value_or("count", COUNT), common_flags.value_or("seed", SEED),
        FLAGS.max_yaw, FLAGS.min_yaw)
    print(report)
    output = common_flags.value_or("output", OUTPUT)
    os.makedirs(output, exist_ok=True)
    kind = "_profile" if profile else ""
    path = os.path.join(output, f"mesh_calibration_{FLAGS.face_model}{kind}.json")
    with open(path, "w") as stream:
        json.dump(dict(vertex_of_mesh_point=[int(v) for v in correspondence],
                       mesh_index_of_ibug68=[int(i) for i in mesh68], measured=report), stream)
    print(f"wrote {path}")
    if FLAGS.write_files:
        mesh_targets.write_correspondence(FLAGS.face_model, model.num_vertices, correspondence,
                                          report, profile=profile)
        print(f"wrote {mesh_targets.correspondence_file(profile)} [{FLAGS.face_model}]")
        if FLAGS.face_model == MESH_68_MODEL and not profile:
            face_mesh.write_mesh_68(mesh68, dict(report, face_model=FLAGS.face_model))
            print(f"wrote {face_mesh.MESH_68_FILE}")


def main_keypoints(model):
    vertices, report = keypoints.compute_keypoints(model, load_face_model(MESH_68_MODEL))
    print(report)
    keypoints.write_keypoints(FLAGS.face_model, model.num_vertices, vertices, report)
    print(f"wrote {keypoints.KEYPOINTS_FILE} [{FLAGS.face_model}]")


MIRROR_MODELS = ("bfm_mean", "ict", "surrey")


def main_mirror_map():
    models = [load_face_model(name) for name in MIRROR_MODELS]
    mirror = mesh_targets.mirror_map(models)
    report = dict(face_models=list(MIRROR_MODELS),
                  on_the_midline=int(np.sum(mirror == np.arange(len(mirror)))))
    print(report)
    face_mesh.write_mirror_map(mirror, report)
    print(f"wrote {face_mesh.MIRROR_FILE}")


def main(argv):
    del argv
    if FLAGS.mirror_map:
        main_mirror_map()
        return
    if FLAGS.keypoints:
        main_keypoints(load_face_model(FLAGS.face_model))
        return
    if common_flags.value_or("landmarks_model", "dlib") == "mesh":
        main_mesh(load_face_model(FLAGS.face_model))
        return
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
