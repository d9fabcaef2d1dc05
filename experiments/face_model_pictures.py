"""Pictures of face models at several poses, for docs/ and for checking a
converted model by eye.

    python -m experiments.face_model_pictures --models=ict,bfm_mean --output=docs/images

For each model writes <name>_turntable.png: rows of lit colour (a light from
the upper left through MGCNet's SH lighting) and of MGCNet's gray geometry
render, at yaws -60 ... 60 degrees around the default pose (positive yaw
turns the nose to the image right), 224x224 views as the network sees them.
--output defaults to out/face_models; a picture already there stops the run
(FileExistsError) unless --overwrite.
"""
import os

import numpy as np
from absl import app, flags

from experiments import common_flags
from mgc.export import save_image, turntable
from mgc.facemodel import CoefficientLayout, load_face_model
from mgc.render import render_face

FLAGS = flags.FLAGS
common_flags.use("output", "data_root", "overwrite")
OUTPUT = "out/face_models"
flags.DEFINE_list("models", ["ict", "bfm_mean"], "Built-in model names or model files.")
flags.DEFINE_list("yaw", ["-60", "-30", "0", "30", "60"], "Yaw angles in degrees.")

# SH lighting [R, G, B] x 9: ambient plus a light from the upper left front.
LIGHT_BANDS = np.array([0.1, 0.25, 0.35, 0.25, 0, 0, 0, 0, 0], np.float32)


def model_pictures(model, yaw_degrees):
    layout = CoefficientLayout.for_model(model)
    coefficients = np.zeros((1, layout.size), np.float32)
    coefficients[0, -27:] = np.tile(LIGHT_BANDS, 3)
    face = render_face(coefficients, model)
    rows = [turntable(face, model.triangles, yaw_degrees, appearance=look)
            for look in ("color", "gray")]
    return np.concatenate(rows, axis=0)


def main(argv):
    del argv
    yaw = [float(angle) for angle in FLAGS.yaw]
    for name in FLAGS.models:
        model = load_face_model(name, data_root=FLAGS.data_root)
        stem = os.path.splitext(os.path.basename(name))[0]
        path = os.path.join(common_flags.value_or("output", OUTPUT), f"{stem}_turntable.png")
        save_image(path, model_pictures(model, yaw), overwrite=FLAGS.overwrite)
        print(f"{model.name}: {model.num_vertices} vertices -> {path}")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
