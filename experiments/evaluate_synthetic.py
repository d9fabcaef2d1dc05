"""The whole pipeline (detection, alignment, fitting) on random synthetic
faces with known answers (mgc.eval.synthetic): head-pose errors and the NME
of the fitted, the raw dlib and the mirror-averaged dlib landmarks against
the model's true landmarks, in the picture's pixels. A table per run, one row
per FitSettings variant.

    python -m experiments.evaluate_synthetic [--count=24] [--seed=7]
        [--variants="landmark_sigma=1.0;detail_weight=1.0"]

Shared flags left unset: --count 24 faces, --seed 7 (calibrate_landmarks
uses 2024).
"""
import dataclasses

import numpy as np
from absl import app, flags
from tqdm import tqdm

from experiments import common_flags
from mgc.eval import synthetic
from mgc.eval.aflw2000 import nme
from mgc.facemodel import CoefficientLayout, load_face_model
from mgc.fitting import FitSettings, fit_faces
from mgc.preprocess import invert, transform_points

FLAGS = flags.FLAGS
common_flags.use("face_model", "count", "seed")
COUNT = 24
SEED = 7
flags.DEFINE_string("variants", "", "FitSettings variants to compare with the defaults, "
                    "';'-separated, each 'name=value,name=value'.")


def parse_variant(text):
    """'landmark_sigma=1.0,detail_weight=2' -> FitSettings with those fields."""
    fields = {field.name: field.type for field in dataclasses.fields(FitSettings)}
    changes = {}
    for item in filter(None, text.split(",")):
        name, _, value = item.partition("=")
        if name not in fields:
            raise ValueError(f"FitSettings has no field {name!r} (fields: {', '.join(fields)})")
        changes[name] = int(value) if fields[name] in (int, "int") else float(value)
    return dataclasses.replace(FitSettings(), **changes)


def evaluate(model, faces, prepared, settings):
    """(mean |yaw|, |pitch|, |roll| errors, fitted NME, raw and mirror-averaged
    dlib NME) in degrees and %."""
    layout = CoefficientLayout.for_model(model)
    crops = np.stack([p.crop for p in prepared])
    targets = np.stack([p.crop_landmarks68 for p in prepared])
    result = fit_faces(crops, targets, model, settings)
    angle_errors, fitted_nme, dlib_nme, mirrored_nme = [], [], [], []
    for i, (face, found) in enumerate(zip(faces, prepared)):
        pose = layout.split(result.coefficients[i][np.newaxis])["pose"][0]
        rotation = synthetic.picture_rotation(found.crop_matrix, pose)
        angle_errors.append(np.abs(synthetic.head_angles(rotation) - face.angles))
        fitted = transform_points(result.landmarks_2d[i], invert(found.crop_matrix))
        fitted_nme.append(nme(fitted, face.landmarks))
        dlib_nme.append(nme(found.raw_landmarks68, face.landmarks))
        mirrored_nme.append(nme(found.landmarks68, face.landmarks))
    return (*np.mean(angle_errors, 0),
            *(100 * np.mean(values) for values in (fitted_nme, dlib_nme, mirrored_nme)))


def main(argv):
    del argv
    model = load_face_model(FLAGS.face_model)
    count = common_flags.value_or("count", COUNT)
    scenes = tqdm(synthetic.detected_scenes(model, count, common_flags.value_or("seed", SEED)),
                  total=count, desc="renders")
    found = [(face, prepared) for face, prepared in scenes if prepared is not None]
    faces = [face for face, _ in found]
    prepared = [found_face for _, found_face in found]
    print(f"{len(faces)} of {count} faces found")
    variants = [""] + [v for v in FLAGS.variants.split(";") if v]
    print("| settings | yaw err | pitch err | roll err | NME fitted | NME dlib raw "
          "| NME dlib mirror-averaged |")
    print("|---|---|---|---|---|---|---|")
    for variant in variants:
        row = evaluate(model, faces, prepared, parse_variant(variant))
        print(f"| {variant or 'defaults'} | " + " | ".join(f"{value:.2f}" for value in row) + " |")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
