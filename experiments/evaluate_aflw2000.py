"""AFLW2000-3D 68-point NME of the fitted face model and of raw dlib landmarks
(protocol: mgc/eval/aflw2000.py), on the images of the 2000 that are present.

Per image: a face box (--detector: auto, hog or cnn), dlib's 68 landmarks
averaged with those of the mirror image, MGCNet's 224 crop, then fit_faces
in batches; the scored points are the model's fixed 68 landmark vertices
projected and mapped back to the picture. The raw dlib landmarks of the same
box are the baseline; the mirror-averaged ones (the fit's input) are
reported too. Detection and fitting see only the image; the ground truth is
read afterwards, to score.
With --use_gt_boxes the box comes from the ground truth instead (the
literature's protocol, reported separately).

    python -m experiments.evaluate_aflw2000 [--limit=N] [--steps=560]
        [--detector=auto] [--use_gt_boxes] [--output=out/aflw2000] [--write_docs]

Shared flags left unset: --output out/aflw2000 (results.csv, results.md,
per_image.csv), --batch_size 8 faces fitted together, --steps FitSettings'
defaults. --write_docs replaces the measured table in docs/RESULTS.md.
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
from mgc.facemodel import load_face_model
from mgc.fitting import FitSettings, fit_faces
from mgc.preprocess import pipeline

FLAGS = flags.FLAGS
common_flags.use("data_root", "output", "detector", "steps", "batch_size", "face_model",
                 "write_docs")
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
    detector: str = ""                 # box source; "" when no face was found
    dlib68: np.ndarray = None          # [68, 2] picture pixels, dlib's raw answer
    mirrored68: np.ndarray = None      # [68, 2] the mirror-averaged answer the fit uses
    fitted68: np.ndarray = None        # [68, 2] picture pixels
    find_seconds: float = 0.0          # reading, detection, landmarks, crop
    fit_seconds: float = 0.0           # its share of the batch's fit

    @property
    def seconds(self):
        return self.find_seconds + self.fit_seconds


def find_face(image, detector, box=None):
    """Box, dlib landmarks and crop of the largest face; None when none is found.

    Args:
      image: uint8 RGB picture: the only input taken from the data set.
      detector: one of preprocess.pipeline.DETECTORS.
      box: a FaceBox to use instead of detecting (--use_gt_boxes).
    """
    if box is None:
        boxes = pipeline.detect_faces(image, detector)
        if not boxes:
            return None
        box = boxes[0]
    return preprocess.detected_face(image, box, preprocess.LandmarkPredictor())


def fit_batch(faces, model, settings):
    """Fitted model landmarks [B, 68, 2] in picture pixels."""
    crops = np.stack([face.crop for face in faces])
    targets = np.stack([face.crop_landmarks68 for face in faces])
    result = fit_faces(crops, targets, model, settings)
    return [preprocess.transform_points(points, preprocess.invert(face.crop_matrix))
            for points, face in zip(result.landmarks_2d, faces)]


def predict_chunk(names, image_dir, model, settings, boxes, progress):
    """Predictions for a chunk of images, fitted as one batch."""
    predictions, faces = [], []
    for name, box in zip(names, boxes):
        start = time.perf_counter()
        image = preprocess.load_image(os.path.join(image_dir, name))
        face = find_face(image, FLAGS.detector, box)
        prediction = Prediction(name, find_seconds=time.perf_counter() - start)
        if face is not None:
            prediction.detector = face.box.detector
            prediction.dlib68, prediction.mirrored68 = face.raw_landmarks68, face.landmarks68
            faces.append((prediction, face))
        predictions.append(prediction)
        progress.update(1)
    if faces:
        progress.set_postfix_str(f"fitting {len(faces)}")
        start = time.perf_counter()
        fitted = fit_batch([face for _, face in faces], model, settings)
        share = (time.perf_counter() - start) / len(faces)
        for (prediction, _), points in zip(faces, fitted):
            prediction.fitted68, prediction.fit_seconds = points, share
    return predictions


def score(prediction, ground_truth):
    """The ImageRecord of a prediction against the ground truth."""
    i = ground_truth.index(prediction.name)
    gt = ground_truth.pts68[i]
    nmes = {}
    if prediction.fitted68 is not None:
        nmes[aflw2000.METHOD_FITTED] = aflw2000.nme(prediction.fitted68, gt)
    if prediction.dlib68 is not None:
        nmes[aflw2000.METHOD_DLIB] = aflw2000.nme(prediction.dlib68, gt)
        nmes[aflw2000.METHOD_DLIB_MIRRORED] = aflw2000.nme(prediction.mirrored68, gt)
    return aflw2000.ImageRecord(prediction.name, float(ground_truth.yaw[i]), prediction.detector,
                                nmes, prediction.seconds)


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


def describe(count, image_dir, settings, batch_size, seconds):
    """One paragraph: what produced the table."""
    boxes = ("ground-truth boxes (aflw2000.gt_face_box)" if FLAGS.use_gt_boxes
             else f"detector {FLAGS.detector}")
    steps = "/".join(str(getattr(settings, f"{s}_steps"))
                     for s in ("pose", "landmark", "appearance", "joint"))
    where = os.path.relpath(image_dir, paths.data_root(FLAGS.data_root))
    return (f"{count} images of `{where}`, {boxes}, face model `{FLAGS.face_model}`, "
            f"{settings.total_steps} fitting steps (pose/landmark/appearance/joint {steps}), "
            f"batch {batch_size}, {os.cpu_count()} CPU cores: {seconds:.1f} s per image; "
            f"measured {time.strftime('%Y-%m-%d')} at commit {code_version()}. NME in %.")


def main(argv):
    del argv
    image_dir = FLAGS.image_dir or aflw2000.default_image_dir(FLAGS.data_root)
    names = select_images(image_dir)
    model = load_face_model(FLAGS.face_model, data_root=FLAGS.data_root)
    settings = FitSettings().with_total_steps(FLAGS.steps)
    batch_size = common_flags.value_or("batch_size", BATCH_SIZE)
    output = common_flags.value_or("output", OUTPUT)
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
                                         progress)
    elapsed = time.perf_counter() - start

    # Scoring: the first (without --use_gt_boxes, the only) use of the ground truth.
    truth = aflw2000.load_ground_truth(FLAGS.data_root)
    records = [score(p, truth) for p in predictions]
    table = aflw2000.summarise(records)
    header = describe(len(names), image_dir, settings, batch_size, elapsed / len(names))
    os.makedirs(output, exist_ok=True)
    aflw2000.write_table_csv(table, os.path.join(output, "results.csv"))
    aflw2000.write_table_markdown(table, os.path.join(output, "results.md"), header)
    aflw2000.write_per_image_csv(records, os.path.join(output, "per_image.csv"))

    fitted = [p for p in predictions if p.fitted68 is not None]
    finding = np.mean([p.find_seconds for p in predictions])
    fitting = np.mean([p.fit_seconds for p in fitted]) if fitted else 0.0
    print(f"\n{header}\n\n{aflw2000.table_markdown(table)}\n")
    print(f"{len(fitted)} of {len(names)} faces found. Time: {elapsed:.1f} s in all, "
          f"{elapsed / len(names):.2f} s per image; detection + landmarks + crop "
          f"{finding:.3f} s per image, fitting {fitting:.2f} s per face (batches of "
          f"{batch_size}). Tables in {output}.")
    if FLAGS.write_docs:
        doc_blocks.replace_block(RESULTS_DOC,
                                 "aflw2000_gt_boxes" if FLAGS.use_gt_boxes else "aflw2000",
                                 f"{header}\n\n{aflw2000.table_markdown(table)}")
        print(f"wrote {RESULTS_DOC}")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
