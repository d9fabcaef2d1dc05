"""The op against the NumPy reference rasterizer on random meshes.

Both evaluate the same float32 formula, so ids and depths must be equal and
barycentrics agree to 1e-5. The only admissible differences are pixels on a
triangle edge (smallest barycentric below 1e-5) or at a depth tie, where a
different rounding could flip the decision; they are counted and bounded.
"""
import numpy as np
import pytest

import reference_rasterizer
from mgc.render import rasterize_triangles

EDGE = 1e-5


def random_scene(seed, batch=2, num_vertices=60, num_triangles=80):
    rng = np.random.default_rng(seed)
    clip = rng.uniform(-1.2, 1.2, (batch, num_vertices, 4)).astype(np.float32)
    w = rng.uniform(0.3, 3.0, (batch, num_vertices)).astype(np.float32)
    w[:, :3] *= -1  # a few vertices behind the eye
    clip[..., :3] *= w[..., np.newaxis]
    clip[..., 3] = w
    triangles = rng.integers(0, num_vertices, (num_triangles, 3)).astype(np.int32)
    return clip, triangles


def ambiguous(barycentrics, depth, other_depth):
    """Pixels where either result lies on an edge or the depths tie."""
    return (barycentrics.min(-1) < EDGE) | np.isclose(depth, other_depth, rtol=0, atol=1e-7)


@pytest.mark.parametrize("seed", range(4))
def test_op_matches_numpy_reference(seed):
    clip, triangles = random_scene(seed)
    width, height = 71, 53
    result = [t.numpy() for t in rasterize_triangles(clip, triangles, width, height)]
    total_mismatches = 0
    for image in range(clip.shape[0]):
        barycentrics, ids, z = (r[image] for r in result)
        ref_b, ref_ids, ref_z = reference_rasterizer.rasterize(clip[image], triangles, width, height)
        assert np.sum(ref_ids >= 0) > 0.2 * width * height  # the scene is not empty
        mismatch = (ids != ref_ids) | (z != ref_z) | (np.abs(barycentrics - ref_b).max(-1) > 1e-5)
        explained = ambiguous(barycentrics, z, ref_z) | ambiguous(ref_b, ref_z, z)
        assert not np.any(mismatch & ~explained), np.argwhere(mismatch & ~explained)[:5]
        total_mismatches += int(mismatch.sum())
    # Same arithmetic: in practice none at all; a handful would mean drift.
    assert total_mismatches <= 3
