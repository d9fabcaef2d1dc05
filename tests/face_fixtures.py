"""Face models for tests built from the real BFM mean shape and topology
(shared/data/bfm09_topology) with small smooth synthetic bases."""
import dataclasses

import numpy as np

from mgc.facemodel import load_bfm_mean


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


def bfm_mean_face_model(landmarks=None, identity_rank=0, expression_rank=0, albedo_rank=0,
                        seed=0):
    """The BFM 2009 front mean (load_bfm_mean: real mean shape, topology,
    MGCNet landmarks) with synthetic smooth bases and a shaded albedo."""
    model = load_bfm_mean()
    mean = model.mean_shape.astype(np.float64)
    mean_albedo = np.clip(0.6 + 0.1 * (mean - mean.mean(0)) / 100.0, 0, 1) * [1.0, 0.8, 0.7]
    return dataclasses.replace(
        model,
        name="BFM 2009 mean + synthetic bases (test)",
        identity_basis=smooth_fields(mean, identity_rank, 3.0, seed),
        expression_basis=smooth_fields(mean, expression_rank, 2.0, seed + 1),
        mean_albedo=mean_albedo,
        albedo_basis=smooth_fields(mean, albedo_rank, 0.03, seed + 2),
        landmarks=model.landmarks if landmarks is None else landmarks,
        front_vertices=np.arange(model.num_vertices),
        front_triangles=model.triangles)
