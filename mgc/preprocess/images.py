"""Reading pictures from disk as uint8 RGB arrays, with clear errors."""
import errno
import os
import stat
import warnings

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
      ImageError: the path is missing, a broken or looping link, a folder, a
        FIFO or another non-file, empty, not readable (permission), larger
        than Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS), not
        a picture, or corrupt. The message holds the path and the reason.
    """
    path = os.fspath(path)
    problem = _not_a_file(path)
    if problem:
        raise ImageError(f"cannot read image {path}: {problem}")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()  # Decodes now, so truncated data fails here.
                image = ImageOps.exif_transpose(image)
                return _to_rgb(image)
    except Image.UnidentifiedImageError:
        raise ImageError(f"cannot read image {path}: not a picture format Pillow knows "
                         f"(a text file or another non-image file?)") from None
    except PermissionError:
        raise ImageError(f"cannot read image {path}: permission denied") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageError(f"cannot read image {path}: too large ({error})") from None
    # Decoders raise many types (OSError, SyntaxError, struct.error, ...) on
    # damaged data; every one of them means the same thing to the caller.
    except Exception as error:  # pylint: disable=broad-except
        raise ImageError(f"cannot read image {path}: corrupt or unsupported data "
                         f"({type(error).__name__}: {error})") from error


def _not_a_file(path):
    """Why `path` is not a non-empty regular file we may open, or "".
    Checked before opening: opening a FIFO would block."""
    try:
        status = os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "the path is a loop of symbolic links"
        if os.path.islink(path):
            return f"the path is a broken symbolic link (to {os.readlink(path)})"
        if error.errno == errno.EACCES:
            return "permission denied"
        return "the file does not exist"
    if stat.S_ISDIR(status.st_mode):
        return "the path is a directory"
    if not stat.S_ISREG(status.st_mode):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(status.st_mode) else "not a regular file"
        return f"the path is {kind}, not a picture file"
    if status.st_size == 0:
        return "the file is empty"
    return ""


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
