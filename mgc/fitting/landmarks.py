"""Landmark bookkeeping for the fitter: which model points a target set
means, their weights, mesh edges, and jaw landmarks that slide along the
face's silhouette."""
import numpy as np

from mgc import geometry

JAW = np.arange(17)
# MGCNet weights these more in its landmark loss (lm_detail_weight): the nose
# (27-35) and the inner lips (60-67), MGCNET_REFERENCE.md §1.3.
DETAIL = np.concatenate([np.arange(27, 36), np.arange(60, 68)])
# Jaw landmarks on the sides of the face: where the jaw line seen in a photo
# is the silhouette of the cheek, whichever vertex that is at this pose.
SLIDING_JAW = np.array([0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16])
# The five points of 5-point landmark files (0-based iBUG groups): eye
# centres, nose tip, mouth corners. The nose is iBUG 31, the tip, as in
# Deep3DFaceRecon's files; MGCNet's alignment template uses iBUG 34 instead
# (mgc.preprocess.five_points), which is why the two lists differ.
FIVE_POINT_GROUPS = (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))
CANDIDATE_RADIUS_MM = 30.0
SILHOUETTE_NORMAL_Z = 0.3  # |camera-space normal z| below this: on the silhouette


def selection_matrix(count, present=None):
    """[count, 68]: target points as averages of the 68 model landmarks.

    present: [68] bool, the landmarks the model has (default: all). A
    target averages only those of its group; one with none is a zero row
    (the fit leaves it out, see has_model_points).
    """
    if count == 68:
        groups = [(j,) for j in range(68)]
    elif count == 5:
        groups = FIVE_POINT_GROUPS
    else:
        raise ValueError(f"landmark targets must be 68 or 5 points, got {count}")
    present = np.ones(68, bool) if present is None else np.asarray(present, bool)
    selection = np.zeros((count, 68), np.float32)
    for row, group in enumerate(groups):
        members = [j for j in group if present[j]]
        if members:
            selection[row, members] = 1.0 / len(members)
    return selection


def has_model_points(selection):
    """[P] bool: targets the model has a point for (non-zero selection rows)."""
    return selection.any(axis=1)


def landmark_weights(selection, jaw_weight, detail_weight=1.0):
    """Per-target weights [P]: jaw points and MGCNet's detail points (nose,
    inner lips) weighted apart from the rest; 0 for targets without a model
    point."""
    weights = np.ones(68, np.float32)
    weights[JAW] = jaw_weight
    weights[DETAIL] = detail_weight
    totals = selection.sum(1)
    return np.where(totals > 0, selection @ weights / np.maximum(totals, 1e-12),
                    0.0).astype(np.float32)


def mesh_edges(triangles):
    """Unique undirected edges [E, 2] of a triangle mesh."""
    edges = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]],
                                    triangles[:, [2, 0]]]), axis=1).astype(np.int64)
    # One int64 key per edge: a 1-D unique is far faster than a row-wise one.
    base = int(edges.max(initial=0)) + 1
    keys = np.unique(edges[:, 0] * base + edges[:, 1])
    return np.stack([keys // base, keys % base], axis=1).astype(np.int32)


class ContourSlider:
    """Re-assigns jaw landmarks (default: the side ones) to the silhouette
    vertex nearest to each target, among the vertices near the landmark's
    own vertex."""

    def __init__(self, model, points=SLIDING_JAW):
        self.model = model
        mean = model.mean_shape
        self.candidates = {}
        for j in points:
            if model.landmarks[j] < 0:
                continue
            near = np.linalg.norm(mean - mean[model.landmarks[j]], axis=1) < CANDIDATE_RADIUS_MM
            self.candidates[j] = np.nonzero(near & (model.skin_mask > 0))[0]

    def update(self, problem, targets):
        """New landmark vertex indices [B, 68] for the problem's current fit."""
        coefficients = problem.layout.split(problem.coefficients())
        _, vertices = problem.projected_landmarks()
        normals = geometry.vertex_normals(vertices, self.model.triangles)
        pose = geometry.absolute_pose(coefficients["pose"])
        rotation = geometry.rotation_matrix(pose[:, :3]).numpy()
        pixels = geometry.project_to_image(geometry.transform_points(vertices, pose)).numpy()
        normals_z = np.einsum("bj,bnj->bn", rotation[:, 2], normals.numpy())
        return self.choose(pixels, normals_z, targets)

    def choose(self, pixels, normals_z, targets):
        """Landmark vertex indices [B, 68] from every vertex's projection
        [B, N, 2] and camera-space normal z [B, N] at the fitted pose."""
        indices = np.tile(self.model.landmarks[None], [len(targets), 1])
        for b, target in enumerate(targets):
            for j, candidates in self.candidates.items():
                if not np.all(np.isfinite(target[j])):
                    continue
                on_silhouette = candidates[np.abs(normals_z[b, candidates]) < SILHOUETTE_NORMAL_Z]
                if on_silhouette.size == 0:
                    continue
                distance = np.linalg.norm(pixels[b, on_silhouette] - target[j], axis=1)
                own = np.linalg.norm(pixels[b, self.model.landmarks[j]] - target[j])
                if distance.min() < own:
                    indices[b, j] = on_silhouette[np.argmin(distance)]
        return indices
