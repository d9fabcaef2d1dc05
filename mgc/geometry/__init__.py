"""Pure geometry: cameras, poses, projections, normals and lighting (no
rendering, no I/O). The bottom of the import ladder: nothing here imports
another mgc package.
"""
from mgc.geometry.camera import euler_matrices
from mgc.geometry.camera import look_at
from mgc.geometry.camera import perspective
from mgc.geometry.camera import transform_homogeneous
from mgc.geometry.lighting import sh_basis
from mgc.geometry.lighting import sh_shading
from mgc.geometry.normals import vertex_normals
from mgc.geometry.pose import DEFAULT_POSE
from mgc.geometry.pose import absolute_pose
from mgc.geometry.pose import camera_center
from mgc.geometry.pose import extrinsic_matrix
from mgc.geometry.pose import pose_from_extrinsic
from mgc.geometry.pose import rotation_matrix
from mgc.geometry.pose import transform_points
from mgc.geometry.projection import MGCNET_INTRINSICS
from mgc.geometry.projection import Intrinsics
from mgc.geometry.projection import clip_space
from mgc.geometry.projection import model_view_matrix
from mgc.geometry.projection import project_to_image

__all__ = [
    "DEFAULT_POSE", "Intrinsics", "MGCNET_INTRINSICS", "absolute_pose", "camera_center",
    "clip_space", "euler_matrices", "extrinsic_matrix", "look_at", "model_view_matrix",
    "perspective", "pose_from_extrinsic", "project_to_image", "rotation_matrix", "sh_basis",
    "sh_shading", "transform_homogeneous", "transform_points", "vertex_normals",
]
