"""Image-side skin probability for the photometric loss.

The original used Deng et al.'s skin GMM, whose parameters are not public
(docs/DIFFERENCES.md). This colour model adapts to each photo instead: a
Gaussian in (Cb, Cr) fitted to the pixels of the cheeks and nose, the part
of a face that is skin in almost every picture, found from the landmarks.
"""
import cv2
import numpy as np

# iBUG-68 (0-based) polygon around cheeks and nose, below the eyes and above
# the mouth: eye outer corners, nose sides, jaw points at mouth height.
_CHEEK_POLYGON = (1, 36, 39, 27, 42, 45, 15, 13, 54, 33, 48, 3)
_THRESHOLD = 3.0  # Mahalanobis distance where the probability falls to 0


def _chroma(image):
    ycrcb = cv2.cvtColor(np.ascontiguousarray(image, np.float32), cv2.COLOR_RGB2YCrCb)
    return ycrcb[..., 1:]


def skin_probability(image, landmarks):
    """Per-pixel skin probability [H, W] float32 in [0, 1].

    Args:
      image: [H, W, 3] RGB, float in [0, 1] or uint8.
      landmarks: [68, 2] iBUG landmarks (pixels); rows with NaN are skipped.
        With fewer than 8 usable cheek points every pixel gets 1.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    polygon = np.asarray(landmarks, np.float64)[list(_CHEEK_POLYGON)]
    polygon = polygon[np.all(np.isfinite(polygon), axis=1)]
    if len(polygon) < 8:
        return np.ones(image.shape[:2], np.float32)
    region = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(region, [np.round(polygon).astype(np.int32)], 1)
    chroma = _chroma(image)
    samples = chroma[region > 0]
    if len(samples) < 20:
        return np.ones(image.shape[:2], np.float32)
    mean = np.median(samples, axis=0)
    covariance = np.cov(samples.T) + np.eye(2) * 1e-5
    difference = chroma - mean
    distance = np.sqrt(np.einsum("...i,ij,...j->...", difference, np.linalg.inv(covariance),
                                 difference))
    return np.clip(1.0 - distance / _THRESHOLD, 0.0, 1.0).astype(np.float32)
