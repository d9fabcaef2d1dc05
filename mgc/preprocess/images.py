"""Reading pictures from disk as uint8 RGB arrays, with clear errors."""
import os

import numpy as np
from PIL import Image
from PIL import ImageOps


class ImageError(ValueError):
    """A file that cannot be read as a picture; the message names the file."""


# Modes PIL keeps at 16 bits per sample: scaled down to 8 bits, not clipped.
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def load_image(path):
    """Reads a picture as uint8 RGB [H, W, 3] (rows top to bottom).

    EXIF orientation is applied, so the array is upright as a viewer shows it.
    Grayscale is repeated to three channels; transparency is composited over
    white; only the first frame of an animation is read.

    Args:
      path: the file (any format Pillow decodes: JPEG, PNG, BMP, TIFF, ...).

    Returns:
      uint8 array [H, W, 3].

    Raises:
      ImageError: the file is missing, empty, not a picture, or corrupt. The
        message holds the path and the reason.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        reason = "is a directory" if os.path.isdir(path) else "does not exist"
        raise ImageError(f"cannot read image {path}: the file {reason}")
    if os.path.getsize(path) == 0:
        raise ImageError(f"cannot read image {path}: the file is empty")
    try:
        with Image.open(path) as image:
            image.load()  # Decodes now, so truncated data fails here.
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except Image.UnidentifiedImageError:
        raise ImageError(f"cannot read image {path}: not a picture format Pillow knows "
                         f"(a text file or another non-image file?)") from None
    # Decoders raise many types (OSError, SyntaxError, struct.error, ...) on
    # damaged data; every one of them means the same thing to the caller.
    except Exception as error:  # pylint: disable=broad-except
        raise ImageError(f"cannot read image {path}: corrupt or unsupported data "
                         f"({type(error).__name__}: {error})") from error


def _to_rgb(image):
    """uint8 [H, W, 3] of a decoded PIL image of any mode."""
    if image.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
