"""Face models for tests built from the real BFM mean shape and topology
(shared/data/bfm09_topology) with small smooth synthetic bases."""
import numpy as np

from mgc import paths
from mgc.facemodel import FaceModel


def smooth_fields(mean_shape, count, scale, seed):
    """[3N, count] basis columns: seeded cubic polynomials of the normalised
    coordinates, so every column is a smooth deformation field."""
    rng = np.random.default_rng(seed)
    unit = (mean_shape - mean_shape.mean(0)) / np.abs(mean_shape - mean_shape.mean(0)).max(0)
    x, y, z = unit.T
    features = np.stack([np.ones_like(x), x, y, z, x * y, y * z, x * z, x * x, y * y, z * z,
                         x * y * z, x ** 3, y ** 3, z ** 3], axis=1)  # [N, 14]
    weights = rng.normal(size=(features.shape[1], 3, count)) / np.sqrt(features.shape[1])
    fields = np.einsum("nf,fck->nck", features, weights) * scale
    return fields.reshape(len(mean_shape) * 3, count).astype(np.float32)


def bfm_mean_face_model(landmarks, identity_rank=0, expression_rank=0, albedo_rank=0, seed=0):
    """BFM 2009 front mean shape (mm) and topology with synthetic bases."""
    data = np.load(paths.data_file("bfm09_topology/bfm09_front_mean.npz"))
    mean = data["meanshape"].astype(np.float64) * 100.0
    n = len(mean)
    mean_albedo = np.clip(0.6 + 0.1 * (mean - mean.mean(0)) / 100.0, 0, 1) * [1.0, 0.8, 0.7]
    return FaceModel(
        name="BFM 2009 mean + synthetic bases (test)",
        mean_shape=mean,
        identity_basis=smooth_fields(mean, identity_rank, 3.0, seed),
        expression_basis=smooth_fields(mean, expression_rank, 2.0, seed + 1),
        mean_albedo=mean_albedo,
        albedo_basis=smooth_fields(mean, albedo_rank, 0.03, seed + 2),
        triangles=data["triangles"],
        landmarks=landmarks,
        contour_landmarks=np.zeros(0),
        skin_mask=data["skinmask"],
        front_vertices=np.arange(n),
        front_triangles=data["triangles"],
    )
