"""Pure geometry: cameras, rotations and projections (no rendering, no I/O).

The bottom of the import ladder: nothing here imports another mgc module.
"""
from mgc.geometry.camera import euler_matrices
from mgc.geometry.camera import look_at
from mgc.geometry.camera import perspective
from mgc.geometry.camera import transform_homogeneous

__all__ = ["euler_matrices", "look_at", "perspective", "transform_homogeneous"]
