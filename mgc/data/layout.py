"""The original MGCNet's training tuples on disk (MGCNET_REFERENCE.md §1.2-1.3).

One dataset folder holds a list file `<name>.txt` with lines
`"<flag> <subfolder> <frame_id>\\n"` and, per tuple, three files in
`<subfolder>/`:

    <frame_id>.jpg       224x672 RGB row: source1 | target | source2
    <frame_id>_skin.jpg  the skin maps, same layout
    <frame_id>_cam.txt   3 lines of 9 comma-separated floats (row-major K of
                         target, source1, source2), then for each view,
                         target first, a line `68` and 68 lines `x,y`
                         (crop pixels)

In memory (`Tuple`) the views are in the graph's order (target, source1,
source2). Every defect of a file raises `TupleError` naming the file and, for
text files, the line.
"""
import dataclasses
import io
import os

import numpy as np
from PIL import Image

VIEWS = 3
CROP = 224
POINTS = 68
ROW_SHAPE = (CROP, VIEWS * CROP, 3)
FLAGS = (0, 1, 2)

# On disk the row is left | target | right; view v of the graph is the crop
# at column block ROW_BLOCK[v].
ROW_BLOCK = (1, 0, 2)


class TupleError(ValueError):
    """A training tuple or list file that cannot be used; the message names
    the file (and the line for text files)."""


@dataclasses.dataclass
class Tuple:
    """One training sample, views in the order (target, source1, source2).

    images: uint8 [3, 224, 224, 3] RGB crops.
    skins: uint8 [3, 224, 224, 3] skin maps.
    landmarks: float32 [3, 68, 2] ground-truth (x, y) in crop pixels.
    intrinsics: float32 [3, 3, 3] K per view (read but unused by the graph).
    flag: flag_sgl_mul, 0, 1 or 2 (which multi-view losses are on).
    name: "<subfolder>/<frame_id>".
    """
    images: np.ndarray
    skins: np.ndarray
    landmarks: np.ndarray
    intrinsics: np.ndarray
    flag: int
    name: str


def tuple_paths(dataset_dir, subfolder, frame_id):
    """(image, skin, cam) file paths of one tuple."""
    stem = os.path.join(os.fspath(dataset_dir), subfolder, frame_id)
    return stem + ".jpg", stem + "_skin.jpg", stem + "_cam.txt"


def views_to_row(views):
    """[3, 224, 224, C] (target, source1, source2) -> [224, 672, C] on-disk row."""
    return np.concatenate([views[1], views[0], views[2]], axis=1)


def row_to_views(row):
    """[224, 672, C] on-disk row -> [3, 224, 224, C] (target, source1, source2)."""
    return np.stack([row[:, b * CROP:(b + 1) * CROP] for b in ROW_BLOCK])


# ---------------------------------------------------------------- writing

def write_tuple(dataset_dir, subfolder, frame_id, tuple_):
    """Writes one tuple's three files into `<dataset_dir>/<subfolder>/`.

    The two images are PNG bytes under the `.jpg` names the original loader
    expects (as shared/parity's training tuple): lossless, and both
    `tf.io.decode_jpeg` and `decode_image` recognise PNG by its header.
    Numbers in `_cam.txt` have 9 significant digits, so float32 values parse
    back exactly. Each file is written under a temporary name first and then
    renamed, so an interrupted write leaves no half file.

    Args:
      dataset_dir: the dataset folder (made if missing, as is the subfolder).
      subfolder, frame_id: names as in the list file (no spaces).
      tuple_: a `Tuple`; its `flag` and `name` are not stored here (the flag
        belongs in the list file, see `write_list`).

    Returns:
      (image, skin, cam) paths written.
    """
    _check_names(subfolder, frame_id)
    check_tuple(tuple_)
    image_path, skin_path, cam_path = tuple_paths(dataset_dir, subfolder, frame_id)
    os.makedirs(os.path.dirname(image_path), exist_ok=True)
    _write_atomically(image_path, png_bytes(views_to_row(tuple_.images)))
    _write_atomically(skin_path, png_bytes(views_to_row(tuple_.skins)))
    _write_atomically(cam_path, cam_text(tuple_.intrinsics, tuple_.landmarks).encode("ascii"))
    return image_path, skin_path, cam_path


def write_list(dataset_dir, entries, name="train"):
    """Writes `<dataset_dir>/<name>.txt`, one `"<flag> <subfolder> <frame_id>\\n"`
    line per (flag, subfolder, frame_id) entry; returns its path."""
    lines = []
    for flag, subfolder, frame_id in entries:
        _check_names(subfolder, frame_id)
        lines.append(f"{checked_flag(flag)} {subfolder} {frame_id}\n")
    os.makedirs(os.fspath(dataset_dir), exist_ok=True)
    path = list_path(dataset_dir, name)
    _write_atomically(path, "".join(lines).encode("utf-8"))
    return path


def list_path(dataset_dir, name="train"):
    return os.path.join(os.fspath(dataset_dir), name + ".txt")


def png_bytes(array):
    """Lossless PNG encoding of a uint8 [H, W, 3] array."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def cam_text(intrinsics, landmarks):
    """The `_cam.txt` content for K [3, 3, 3] and landmarks [3, 68, 2]."""
    lines = [",".join(_number(v) for v in np.asarray(k, np.float32).ravel()) for k in intrinsics]
    for points in np.asarray(landmarks, np.float32):
        lines.append(str(POINTS))
        lines.extend(f"{_number(x)},{_number(y)}" for x, y in points)
    return "\n".join(lines) + "\n"


def _number(value):
    return format(float(value), ".9g")


def _write_atomically(path, data):
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _check_names(subfolder, frame_id):
    for what, value in (("subfolder", subfolder), ("frame id", frame_id)):
        if not value or any(c.isspace() for c in value):
            raise TupleError(f"{what} {value!r} must be non-empty without spaces "
                             f"(the list file separates fields by spaces)")


def check_tuple(tuple_):
    """TupleError unless the arrays have the shapes and dtypes of `Tuple`
    (finite numbers) and the flag is 0, 1 or 2."""
    checked_flag(tuple_.flag, f"Tuple {tuple_.name!r}")
    expected = {"images": ((VIEWS, CROP, CROP, 3), np.uint8),
                "skins": ((VIEWS, CROP, CROP, 3), np.uint8),
                "landmarks": ((VIEWS, POINTS, 2), np.float32),
                "intrinsics": ((VIEWS, 3, 3), np.float32)}
    for field, (shape, dtype) in expected.items():
        array = np.asarray(getattr(tuple_, field))
        if array.shape != shape or array.dtype != dtype:
            raise TupleError(f"Tuple {tuple_.name!r}: {field} is {array.dtype} "
                             f"{list(array.shape)}, needs {np.dtype(dtype)} {list(shape)}")
        if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
            raise TupleError(f"Tuple {tuple_.name!r}: {field} has non-finite values")


def checked_flag(flag, where="flag"):
    """The flag as an int, or TupleError unless it is the integer 0, 1 or 2."""
    if isinstance(flag, (int, np.integer)) and not isinstance(flag, bool) and flag in FLAGS:
        return int(flag)
    raise TupleError(f"{where}: flag_sgl_mul {flag!r} is not 0, 1 or 2")


# ---------------------------------------------------------------- reading

def read_list(dataset_dir, name="train"):
    """Parses `<dataset_dir>/<name>.txt`.

    Returns:
      list of (flag, subfolder, frame_id, line_number), line numbers from 1.

    Raises:
      TupleError: the file is missing, or a line (named) is not
        `flag subfolder frame_id` or its flag is not 0, 1 or 2.
    """
    path = list_path(dataset_dir, name)
    return [parse_list_line(path, number, line) for number, line in list_lines(path)]


def list_lines(path):
    """(line_number, line) of a list file, from 1; TupleError if unreadable."""
    return list(enumerate(_read_text(path).splitlines(), start=1))


def parse_list_line(path, number, line):
    """(flag, subfolder, frame_id, number) of one list line, or TupleError
    naming path:number."""
    fields = line.split()
    if len(fields) != 3:
        raise TupleError(f"{path}:{number}: {line!r} is not '<flag> <subfolder> <frame_id>'")
    try:
        flag = int(fields[0])
    except ValueError:
        raise TupleError(f"{path}:{number}: flag {fields[0]!r} is not an integer") from None
    return checked_flag(flag, f"{path}:{number}"), fields[1], fields[2], number


def read_cam(path):
    """Parses a `_cam.txt` into (intrinsics float32 [3, 3, 3], landmarks
    float32 [3, 68, 2]); a defect raises TupleError naming path:line."""
    lines = _read_text(path).splitlines()
    cursor = _LineCursor(path, lines)
    intrinsics = [cursor.numbers(9, "intrinsics values").reshape(3, 3) for _ in range(VIEWS)]
    landmarks = []
    for view in range(VIEWS):
        cursor.point_count_header(view)
        landmarks.append([cursor.numbers(2, "coordinates (x,y)") for _ in range(POINTS)])
    cursor.expect_end()
    return np.asarray(intrinsics, np.float32), np.asarray(landmarks, np.float32)


class _LineCursor:
    """Walks the lines of a `_cam.txt`, naming path:line in every error."""

    def __init__(self, path, lines):
        self.path, self.lines, self.index = path, lines, 0

    def _next(self, what):
        if self.index >= len(self.lines):
            raise TupleError(f"{self.path}:{self.index + 1}: file ends where {what} should be "
                             f"(too few lines: wrong number of intrinsics or points?)")
        self.index += 1
        return self.lines[self.index - 1]

    def _error(self, message):
        return TupleError(f"{self.path}:{self.index}: {message}")

    def numbers(self, count, what):
        line = self._next(what)
        fields = line.split(",")
        if len(fields) != count:
            raise self._error(f"{len(fields)} comma-separated values, needs {count} {what}: "
                              f"{line!r}")
        try:
            values = np.array([float(field) for field in fields], np.float64)
        except ValueError:
            raise self._error(f"unparsable number in {line!r}") from None
        if not np.all(np.isfinite(values)):
            raise self._error(f"non-finite number in {line!r}")
        return values

    def point_count_header(self, view):
        # The original skips this line; a count other than 68 means the
        # blocks would be misread, so it is checked here.
        line = self._next(f"the point count of view {view}")
        if line.strip() != str(POINTS):
            raise self._error(f"expected the point count line '{POINTS}' of view {view}, "
                              f"found {line!r} (wrong number of points?)")

    def expect_end(self):
        rest = [n for n in range(self.index, len(self.lines)) if self.lines[n].strip()]
        if rest:
            raise TupleError(f"{self.path}:{rest[0] + 1}: unexpected extra line "
                             f"{self.lines[rest[0]]!r} (wrong number of points?)")


def _read_text(path):
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise TupleError(f"{path}: missing file") from None
    except OSError as error:
        raise TupleError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise TupleError(f"{path}: not a text file") from None


def check_image_file(path, full=False):
    """Checks that `path` is a 224x672 3-channel image from its header (cheap);
    `full=True` also decodes the pixels. Raises TupleError naming the file."""
    try:
        with Image.open(path) as image:
            size, bands = image.size, len(image.getbands())
            if full:
                image.load()
    except FileNotFoundError:
        raise TupleError(f"{path}: missing file") from None
    except Image.UnidentifiedImageError:
        raise TupleError(f"{path}: cannot be decoded as an image") from None
    except Exception as error:  # decoders raise many types on damaged data
        raise TupleError(f"{path}: cannot be decoded as an image ({error})") from None
    _check_row_shape(path, size[1], size[0], bands)


def _check_row_shape(path, height, width, channels):
    if (height, width, channels) != ROW_SHAPE:
        raise TupleError(f"{path}: image is {width}x{height} with {channels} channels, needs "
                         f"{ROW_SHAPE[1]}x{ROW_SHAPE[0]} with 3 (three 224x224 RGB crops side "
                         f"by side)")


def decode_row(path):
    """The file's pixels as TensorFlow decodes them (as the original loader
    and `mgc.data.reader` do): uint8 [224, 672, 3]."""
    import tensorflow as tf  # only reading pixels needs it
    data = _read_bytes(path)
    try:
        image = tf.io.decode_image(data, expand_animations=False).numpy()
    except (tf.errors.InvalidArgumentError, ValueError) as error:
        message = getattr(error, "message", str(error)).splitlines()[0]
        raise TupleError(f"{path}: cannot be decoded as an image ({message})") from None
    _check_row_shape(path, *image.shape)
    return image


def _read_bytes(path):
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        raise TupleError(f"{path}: missing file") from None
    except OSError as error:
        raise TupleError(f"{path}: cannot read ({error.strerror or error})") from None


def read_tuple(dataset_dir, subfolder, frame_id, flag):
    """Reads one tuple written in the original layout (see `write_tuple`).

    Pixels are decoded with TensorFlow, so they equal what the tf.data reader
    gives for the same files (JPEG decoders differ in the last bit).

    Returns:
      a `Tuple` named "<subfolder>/<frame_id>".

    Raises:
      TupleError naming the file (and line): missing file, undecodable image,
      an image that is not 224x672 with 3 channels, a bad `_cam.txt`, a flag
      that is not 0, 1 or 2.
    """
    flag = checked_flag(flag)
    image_path, skin_path, cam_path = tuple_paths(dataset_dir, subfolder, frame_id)
    intrinsics, landmarks = read_cam(cam_path)
    return Tuple(images=row_to_views(decode_row(image_path)),
                 skins=row_to_views(decode_row(skin_path)),
                 landmarks=landmarks, intrinsics=intrinsics, flag=flag,
                 name=f"{subfolder}/{frame_id}")
