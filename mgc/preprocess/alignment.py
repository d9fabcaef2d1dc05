"""MGCNet's face crop: 5 points mapped onto a fixed template by a similarity.

All points are image pixels, x right, y down, pixel centres at integers. A
transform is a 3x3 float64 matrix M acting on [x, y, 1] columns; M maps the
original picture into the crop (MGCNET_REFERENCE.md §7).
"""
import cv2
import numpy as np

CROP_SIZE = 224
# std_224_bfm09: where the 5 points of the BFM mean face land in the 224 crop
# (left eye, right eye, nose tip, left and right mouth corner; "left" = image left).
STD_224_BFM09 = np.array([
    [81.672401, 88.470589],
    [141.862671, 88.462921],
    [112.0, 132.863434],
    [87.397392, 153.562943],
    [136.007263, 153.552078],
], dtype=np.float64)

# 0-based iBUG indices: eyes 37-42 and 43-48, nose tip 34, mouth corners 49, 55.
_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP, _MOUTH_LEFT, _MOUTH_RIGHT = 33, 48, 54


def five_points(landmarks68):
    """The 5 alignment points [5, 2] float64 of iBUG 68 landmarks [68, 2]:
    eye centres (means of the 6 eye points), nose tip, mouth corners."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks [68, 2], got {lm.shape}")
    return np.stack([lm[_LEFT_EYE].mean(axis=0), lm[_RIGHT_EYE].mean(axis=0),
                     lm[_NOSE_TIP], lm[_MOUTH_LEFT], lm[_MOUTH_RIGHT]])


def similarity_transform(source_points, target_points):
    """Least-squares similarity (rotation, uniform scale, translation; never a
    reflection) taking source_points [N, 2] onto target_points [N, 2].

    Closed form: with points as complex numbers centred on their means, the
    best z_t = c z_s has c = sum(conj(z_s) z_t) / sum(|z_s|^2), whose matrix
    [[a, -b], [b, a]] has determinant |c|^2 > 0. This is the solution of
    Umeyama (1991) and of skimage's SimilarityTransform.estimate.

    Returns:
      M [3, 3] float64 with M @ [x, y, 1] ~ [x', y', 1].
    """
    source = np.asarray(source_points, dtype=np.float64)
    target = np.asarray(target_points, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise ValueError(f"expected two [N, 2] point sets with N >= 2, got {source.shape} "
                         f"and {target.shape}")
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    s = source - source_mean
    t = target - target_mean
    spread = np.sum(s * s)
    if not spread > 1e-12:
        raise ValueError("the source points coincide: no similarity is defined")
    a = np.sum(s[:, 0] * t[:, 0] + s[:, 1] * t[:, 1]) / spread
    b = np.sum(s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]) / spread
    linear = np.array([[a, -b], [b, a]])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = target_mean - linear @ source_mean
    return matrix


def transform_points(points, matrix):
    """Points [..., 2] mapped by an affine M [3, 3]; float64 [..., 2]."""
    points = np.asarray(points, dtype=np.float64)
    matrix = np.asarray(matrix, dtype=np.float64)
    return points @ matrix[:2, :2].T + matrix[:2, 2]


def invert(matrix):
    """Inverse of an affine M [3, 3] (crop -> picture for an alignment M)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (3, 3) or not np.allclose(matrix[2], [0.0, 0.0, 1.0]):
        raise ValueError(f"expected an affine [3, 3] matrix with last row [0, 0, 1], got {matrix}")
    linear_inverse = np.linalg.inv(matrix[:2, :2])
    inverse = np.eye(3)
    inverse[:2, :2] = linear_inverse
    inverse[:2, 2] = -linear_inverse @ matrix[:2, 2]
    return inverse


def template(size=CROP_SIZE):
    """STD_224_BFM09 for a size x size crop (scaled by size / 224)."""
    return STD_224_BFM09 * (size / CROP_SIZE)


def align(image, points5, size=CROP_SIZE):
    """MGCNet's crop: the 5 points moved onto the template.

    Args:
      image: uint8 [H, W, 3] RGB (or [H, W], repeated to 3 channels).
      points5: [5, 2] pixels in `image`, ordered as five_points returns them.
      size: side of the square crop in pixels.

    Returns:
      (crop uint8 [size, size, 3], M [3, 3] float64 mapping image -> crop).
      Pixels outside the picture repeat its border (BORDER_REPLICATE).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 image [H, W, 3], got {image.dtype} {image.shape}")
    points5 = np.asarray(points5, dtype=np.float64)
    if points5.shape != (5, 2):
        raise ValueError(f"expected 5 points [5, 2], got {points5.shape}")
    matrix = similarity_transform(points5, template(size))
    crop = cv2.warpAffine(np.ascontiguousarray(image), matrix[:2], (size, size),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop, matrix
