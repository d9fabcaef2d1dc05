"""AFLW2000-3D 68-point NME of the fitted face model and of the raw
landmarks it was fitted to (protocol: mgc/eval/aflw2000.py), on the images
of the 2000 that are present, for each landmark backend.

Per image and backend (--landmarks_model; unset: mesh and dlib): a face box
(--detector; auto is the backend's own: BlazeFace for the mesh, dlib's
HOG/CNN for dlib), the backend's landmarks (the face mesh's 468 points and
the 68 read off them; dlib's 68 averaged with those of the mirror image),
MGCNet's 224 crop, then fit_faces in batches (to the mesh's points, or to
dlib's 68); the scored points are the model's fixed vertices in the BFM09
keypoints' convention (mgc.fitting.keypoints: a 3-D jaw as deep as the one
AFLW2000-3D marks) projected and mapped back to the picture, as reconstruct
writes them to <stem>_lm68.txt. Where BlazeFace finds several faces, the one
it scores highest is scored (scored_box). The backend's raw 68 points of the same box are its
baseline. Detection and fitting see only the image; the ground truth is
read afterwards, to score.
With --use_gt_boxes the box comes from the ground truth instead (the
literature's protocol, reported separately).

    python -m experiments.evaluate_aflw2000 [--limit=N] [--steps=560]
        [--landmarks_model=mesh] [--detector=auto] [--use_gt_boxes]
        [--output=out/aflw2000] [--write_docs]

Shared flags left unset: --output out/aflw2000 (results.csv, results.md with
the per-box-source breakdown, per_image.csv), --batch_size 8 faces fitted
together, --steps FitSettings' defaults, --landmarks_model both backends.
--write_docs replaces the measured tables in docs/RESULTS.md.
"""
import dataclasses
import os
import subprocess
import time

import numpy as np
from absl import app, flags
from tqdm import tqdm

from experiments import common_flags, doc_blocks
from mgc import paths
from mgc import preprocess
from mgc.eval import aflw2000
from mgc.export import results
from mgc.facemodel import load_face_model
from mgc.fitting import FitSettings, fit_faces
from mgc.preprocess import pipeline

FLAGS = flags.FLAGS
common_flags.use("data_root", "output", "detector", "steps", "batch_size", "face_model",
                 "write_docs", "landmarks_model")
OUTPUT = "out/aflw2000"
BATCH_SIZE = 8
flags.DEFINE_string("image_dir", None,
                    "Folder of AFLW2000-3D .jpg files (default: aflw2000_3d/subset_every10th).")
flags.DEFINE_list("images", [], "Image names to evaluate (default: every listed image present).")
flags.DEFINE_integer("limit", 0, "Evaluate only the first N present images (0: all).")
flags.DEFINE_bool("use_gt_boxes", False, "Boxes from the ground-truth landmarks "
                  "(aflw2000.gt_face_box) instead of a detector.")

RESULTS_DOC = os.path.join(paths.REPO_ROOT, "docs", "RESULTS.md")


@dataclasses.dataclass
class Prediction:
    """What the pipeline made of one image, before any scoring."""
    name: str
    boxes: dict = dataclasses.field(default_factory=dict)   # backend -> box source
    points: dict = dataclasses.field(default_factory=dict)  # method -> [68, 2] picture pixels
    find_seconds: float = 0.0          # reading, detection, landmarks, crop
    fit_seconds: float = 0.0           # its share of the batches' fits

    @property
    def seconds(self):
        return self.find_seconds + self.fit_seconds


def find_face(image, detector, box, backend, predictor):
    """Box, landmarks and crop of the largest face; None when none is found.

    Args:
      image: uint8 RGB picture: the only input taken from the data set.
      detector: one of preprocess.pipeline.DETECTORS.
      box: a FaceBox to use instead of detecting (--use_gt_boxes), or None.
      backend: "mesh" or "dlib"; predictor: its landmark predictor.
    """
    if box is None:
        boxes = pipeline.detect_faces(image, detector, backend)
        if not boxes:
            return None
        box = scored_box(boxes)
    return preprocess.detected_face(image, box, predictor)


def scored_box(boxes):
    """The box of the face the ground truth marks: each AFLW2000-3D picture
    is cut around one face, which BlazeFace scores highest where it sees
    others (3 of the 200 subset pictures: on one of them the largest box is
    another person); dlib's boxes (scores of two detectors, not comparable):
    the largest, as reconstruct writes first."""
    if all(b.detector == "blazeface" for b in boxes):
        return max(boxes, key=lambda b: b.score)
    return boxes[0]


def fit_batch(faces, model, settings):
    """Fitted model points [B, 68, 2] in picture pixels (its fixed vertices in
    the BFM09 keypoints' convention, FitResult.keypoints_2d, as reconstruct
    writes them to <stem>_lm68.txt), fitted to the mesh's points where the
    faces have them; faces with 68 or 5 targets, with or without mesh points,
    are fitted in separate batches, as reconstruct does."""
    groups = {}
    for index, face in enumerate(faces):
        kind = (len(results.fit_target_landmarks(face)), face.crop_mesh_points is not None)
        groups.setdefault(kind, []).append(index)
    fitted = [None] * len(faces)
    for (_, has_mesh), indices in groups.items():
        group = [faces[i] for i in indices]
        crops = np.stack([face.crop for face in group])
        targets = np.stack([results.fit_target_landmarks(face) for face in group])
        mesh = np.stack([face.crop_mesh_points for face in group]) if has_mesh else None
        result = fit_faces(crops, targets, model, settings, mesh_points=mesh)
        for i, points, face in zip(indices, result.keypoints_2d, group):
            fitted[i] = preprocess.transform_points(points, preprocess.invert(face.crop_matrix))
    return fitted


FITTED_METHOD = {"mesh": aflw2000.METHOD_FITTED_MESH, "dlib": aflw2000.METHOD_FITTED}


def predict_chunk(names, image_dir, model, settings, boxes, backends, progress):
    """Predictions for a chunk of images, fitted as one batch per backend."""
    predictions, faces = [], {backend: [] for backend in backends}
    predictors = {b: pipeline.landmark_predictor(b) for b in backends}
    for name, box in zip(names, boxes):
        start = time.perf_counter()
        image = preprocess.load_image(os.path.join(image_dir, name))
        prediction = Prediction(name)
        for backend in backends:
            face = find_face(image, FLAGS.detector, box, backend, predictors[backend])
            if face is None:
                continue
            prediction.boxes[backend] = face.box.detector + ("+keypoints" if face.mesh_failure
                                                             else "")
            if backend == "mesh":
                prediction.points[aflw2000.METHOD_MESH] = face.raw_landmarks68
            else:
                prediction.points[aflw2000.METHOD_DLIB] = face.raw_landmarks68
                prediction.points[aflw2000.METHOD_DLIB_MIRRORED] = face.landmarks68
            faces[backend].append((prediction, face))
        prediction.find_seconds = time.perf_counter() - start
        predictions.append(prediction)
        progress.update(1)
    for backend, found in faces.items():
        if not found:
            continue
        progress.set_postfix_str(f"fitting {len(found)} ({backend})")
        start = time.perf_counter()
        fitted = fit_batch([face for _, face in found], model, settings)
        share = (time.perf_counter() - start) / len(found)
        for (prediction, _), points in zip(found, fitted):
            prediction.points[FITTED_METHOD[backend]] = points
            prediction.fit_seconds += share
    return predictions


def score(prediction, ground_truth):
    """The ImageRecord of a prediction against the ground truth."""
    i = ground_truth.index(prediction.name)
    gt = ground_truth.pts68[i]
    nmes = {method: aflw2000.nme(points, gt) for method, points in prediction.points.items()}
    return aflw2000.ImageRecord(prediction.name, float(ground_truth.yaw[i]),
                                dict(prediction.boxes), nmes, prediction.seconds)


def select_images(image_dir):
    """The images to evaluate, in file-list order."""
    listed = aflw2000.read_file_list(FLAGS.data_root)
    if FLAGS.images:
        wanted = {os.path.splitext(n)[0] + ".jpg" for n in FLAGS.images}
        unknown = wanted - set(listed)
        if unknown:
            raise ValueError(f"not AFLW2000-3D images: {sorted(unknown)}")
        listed = [n for n in listed if n in wanted]
    names = aflw2000.present_images(listed, image_dir)
    if FLAGS.limit > 0:
        names = names[:FLAGS.limit]
    if not names:
        raise FileNotFoundError(f"none of the selected AFLW2000-3D images is in {image_dir}")
    return names


def code_version():
    """The repository's commit (+ "-dirty" with local changes), or "unknown"."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    try:
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "mgc", "experiments")
        return git("rev-parse", "--short", "HEAD") + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def describe(count, image_dir, settings, batch_size, seconds, backends):
    """One paragraph: what produced the table."""
    if FLAGS.use_gt_boxes:
        boxes = "ground-truth boxes (aflw2000.gt_face_box)"
    else:
        boxes = "detector " + ", ".join(
            f"{pipeline.resolved_detector(FLAGS.detector, b)} for {b}" for b in backends)
    steps = "/".join(str(getattr(settings, f"{s}_steps"))
                     for s in ("pose", "landmark", "appearance", "joint"))
    where = os.path.relpath(image_dir, paths.data_root(FLAGS.data_root))
    return (f"{count} images of `{where}`, {boxes}, face model `{FLAGS.face_model}`, "
            f"{settings.total_steps} fitting steps (pose/landmark/appearance/joint {steps}), "
            f"batch {batch_size}, {os.cpu_count()} CPU cores: {seconds:.1f} s per image "
            f"({' and '.join(backends)}); "
            f"measured {time.strftime('%Y-%m-%d')} at commit {code_version()}. NME in %.")


def doc_block(backends):
    """The docs/RESULTS.md block a run's table replaces: a mesh-only run
    (detected boxes) has its own, beside the run of both backends."""
    if FLAGS.use_gt_boxes:
        return "aflw2000_gt_boxes"
    return "aflw2000_mesh" if backends == ["mesh"] else "aflw2000"


def main(argv):
    del argv
    image_dir = FLAGS.image_dir or aflw2000.default_image_dir(FLAGS.data_root)
    names = select_images(image_dir)
    model = load_face_model(FLAGS.face_model, data_root=FLAGS.data_root)
    settings = FitSettings().with_total_steps(FLAGS.steps)
    batch_size = common_flags.value_or("batch_size", BATCH_SIZE)
    output = common_flags.value_or("output", OUTPUT)
    landmarks_model = common_flags.value_or("landmarks_model", None)
    backends = [landmarks_model] if landmarks_model else list(pipeline.LANDMARK_MODELS)
    boxes = [None] * len(names)
    if FLAGS.use_gt_boxes:  # the literature's protocol: boxes from the ground truth
        truth = aflw2000.load_ground_truth(FLAGS.data_root)
        boxes = [aflw2000.gt_face_box(truth.pts68[truth.index(n)]) for n in names]

    start = time.perf_counter()
    predictions = []
    with tqdm(total=len(names), unit="image") as progress:
        for i in range(0, len(names), batch_size):
            chunk = slice(i, i + batch_size)
            predictions += predict_chunk(names[chunk], image_dir, model, settings, boxes[chunk],
                                         backends, progress)
    elapsed = time.perf_counter() - start

    # Scoring: the first (without --use_gt_boxes, the only) use of the ground truth.
    truth = aflw2000.load_ground_truth(FLAGS.data_root)
    records = [score(p, truth) for p in predictions]
    table = aflw2000.summarise(records)
    header = describe(len(names), image_dir, settings, batch_size, elapsed / len(names),
                      backends)
    breakdowns = "\n\n".join(
        f"Per box source ({backend} backend), NME in %, mean (median):\n\n"
        + aflw2000.breakdown_markdown(records, backend) for backend in backends)
    body = f"{header}\n\n{aflw2000.table_markdown(table)}\n\n{breakdowns}"
    os.makedirs(output, exist_ok=True)
    aflw2000.write_table_csv(table, os.path.join(output, "results.csv"))
    with open(os.path.join(output, "results.md"), "w") as stream:
        stream.write(body + "\n")
    aflw2000.write_per_image_csv(records, os.path.join(output, "per_image.csv"))

    finding = np.mean([p.find_seconds for p in predictions])
    fitting = np.mean([p.fit_seconds for p in predictions if p.boxes] or [0.0])
    print(f"\n{body}\n")
    for backend in backends:
        found = sum(backend in p.boxes for p in predictions)
        print(f"{backend}: {found} of {len(names)} faces found.")
    print(f"Time: {elapsed:.1f} s in all, {elapsed / len(names):.2f} s per image; detection + "
          f"landmarks + crop {finding:.3f} s per image, fitting {fitting:.2f} s per image "
          f"(all backends, batches of {batch_size}). Tables in {output}.")
    if FLAGS.write_docs:
        doc_blocks.replace_block(RESULTS_DOC, doc_block(backends), body)
        print(f"wrote {RESULTS_DOC}")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
