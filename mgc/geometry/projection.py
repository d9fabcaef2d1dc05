"""Pinhole intrinsics, projection to pixels and to clip space
(MGCNET_REFERENCE.md §3.3).

Pixel coordinates follow OpenCV: x right, y down, integer = pixel centre.
Clip space is OpenGL's, for the rasterizer: clip = P @ MV @ [X, 1] with
MV = diag(1, -1, -1, 1) @ [R | t] turning the OpenCV camera into OpenGL's.
"""
import dataclasses

import numpy as np
import tensorflow as tf

from mgc.geometry import pose as pose_lib


@dataclasses.dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera, its image size and its depth range (mm)."""

    focal: float = 4700.0
    cx: float = 112.0
    cy: float = 112.0
    width: int = 224
    height: int = 224
    near: float = 3000.0
    far: float = 7000.0

    def matrix(self):
        """K [3, 3] float32."""
        return np.array([[self.focal, 0, self.cx], [0, self.focal, self.cy], [0, 0, 1]],
                        np.float32)

    def frustum(self):
        """OpenGL projection P [4, 4] float32 of this camera. With the principal
        point at the image centre it is MGCNet's projectionFrustrumMatrix."""
        w, h, n, f = float(self.width), float(self.height), self.near, self.far
        return np.array([
            [2 * self.focal / w, 0, 1 - 2 * self.cx / w, 0],
            [0, 2 * self.focal / h, 2 * self.cy / h - 1, 0],
            [0, 0, -(f + n) / (f - n), -2 * f * n / (f - n)],
            [0, 0, -1, 0]], np.float32)

    def scaled(self, width, height):
        """The same view at another image size (focal and centre scale)."""
        scale_x, scale_y = width / self.width, height / self.height
        if not np.isclose(scale_x, scale_y):
            raise ValueError(f"aspect ratio changes from {self.width}x{self.height} "
                             f"to {width}x{height}")
        return dataclasses.replace(self, focal=self.focal * scale_x, cx=self.cx * scale_x,
                                   cy=self.cy * scale_y, width=width, height=height)


MGCNET_INTRINSICS = Intrinsics()
OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0]).astype(np.float32)


def project_to_image(camera_points, intrinsics=MGCNET_INTRINSICS):
    """OpenCV camera points [..., N, 3] to pixels [..., N, 2]:
    (K X)_xy / ((K X)_z + 1e-6), as the original."""
    projected = tf.linalg.matmul(camera_points, tf.constant(intrinsics.matrix()), transpose_b=True)
    return projected[..., :2] / (projected[..., 2:] + 1e-6)


def model_view_matrix(pose):
    """MV = diag(1, -1, -1, 1) @ [R | t], [..., 4, 4]."""
    return tf.linalg.matmul(tf.constant(OPENCV_TO_OPENGL), pose_lib.extrinsic_matrix(pose))


def clip_space(model_points, pose, intrinsics=MGCNET_INTRINSICS):
    """Model points [B, N, 3] under poses [B, 6] to clip space [B, N, 4]."""
    matrices = tf.linalg.matmul(tf.constant(intrinsics.frustum()), model_view_matrix(pose))
    homogeneous = tf.concat([model_points, tf.ones_like(model_points[..., :1])], axis=-1)
    return tf.linalg.matmul(homogeneous, matrices, transpose_b=True)
