"""reconstruct pads a short last batch with copies of its last face, so the
fitter's compiled steps for the full batch serve it. That is only right if a
face's fit does not depend on the other faces of its batch (the batch's loss
is a sum of per-face terms and Adam is elementwise): checked here."""
import numpy as np

from mgc import paths
from mgc.facemodel import default_face_model
from mgc.fitting import FitSettings, fit_faces
from mgc.preprocess import load_image, prepare_faces


def test_a_face_fits_the_same_alone_and_in_a_padded_batch():
    model = default_face_model()
    # Landmark stages only: the property does not depend on the stage.
    settings = FitSettings(pose_steps=5, landmark_steps=10, appearance_steps=0, joint_steps=0)
    image = load_image(paths.data_file("demo_images/astronaut_eileen_collins_public_domain.png"))
    face = prepare_faces(image, landmarks="detect")[0]
    crop, points = face.crop[np.newaxis], face.crop_landmarks68[np.newaxis]
    alone = fit_faces(crop, points, model, settings)
    # The real face first, then two padding copies of a shifted face.
    padded = fit_faces(np.concatenate([crop, crop, crop]),
                       np.concatenate([points, points + 4.0, points + 4.0]), model, settings)
    np.testing.assert_allclose(padded.coefficients[0], alone.coefficients[0], rtol=0, atol=1e-4)
    np.testing.assert_allclose(padded.landmarks_2d[0], alone.landmarks_2d[0], rtol=0, atol=1e-2)
    assert not np.allclose(padded.coefficients[1], alone.coefficients[0], atol=1e-3)
