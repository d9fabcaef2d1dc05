"""MGCNet's text outputs: `<stem>_cam.txt`, `<stem>_lm2d.txt`, `<stem>_lm3d.txt`
(MGCNET_REFERENCE.md §8), written byte for byte as the released code does.

    _cam.txt    "224 224"                      width height
                "intrinsic"
                "4700.000000,0.000000,..."     K row-major, 9 values, %f
                "external"
                "0.071417,-0.356580,..."       pose [rz, ry, rx, tx, ty, tz], %f
    _lm2d.txt   "68", then one "x,y" line per landmark (crop pixels, %f)
    _lm3d.txt   "68", then one "x,y,z" line per landmark (model frame, mm, %f)

Every line ends with a newline. Readers return NumPy float64 arrays and raise
MgcnetTextError("<file>:<line>: ...") on malformed input.
"""
import collections
import os

import numpy as np

from mgc import geometry

CameraFile = collections.namedtuple("CameraFile", [
    "width",             # int, image width in pixels
    "height",            # int, image height in pixels
    "intrinsic_matrix",  # [3, 3] float64 K
    "pose",              # [6] float64 [rz, ry, rx, tx, ty, tz] (radians, mm)
])

_INTRINSIC = "intrinsic"
_EXTERNAL = "external"


class MgcnetTextError(ValueError):
    """A malformed MGCNet text file; the message names the file and line."""


def _numbers(values):
    """'%f' values joined by commas, as MGCNet writes them."""
    return ",".join("%f" % float(value) for value in values)


def _write_lines(path, lines):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", newline="\n") as stream:
        stream.write("".join(line + "\n" for line in lines))


def _as_numpy(array):
    """NumPy float64 view of an array or tensor."""
    return np.asarray(array.numpy() if hasattr(array, "numpy") else array, np.float64)


def write_camera(path, pose, intrinsics=geometry.MGCNET_INTRINSICS):
    """Writes an MGCNet `_cam.txt`.

    Args:
      path: output file (folders are created).
      pose: [6] absolute pose [rz, ry, rx, tx, ty, tz] (radians, mm), NumPy or
        tensor.
      intrinsics: mgc.geometry.Intrinsics giving K and the image size.
    """
    pose = _as_numpy(pose).reshape(-1)
    if pose.shape != (6,):
        raise ValueError(f"pose must have 6 values [rz, ry, rx, tx, ty, tz], got {pose.size}")
    matrix = np.asarray(intrinsics.matrix(), np.float64).reshape(-1)
    _write_lines(path, [f"{int(intrinsics.width)} {int(intrinsics.height)}", _INTRINSIC,
                        _numbers(matrix), _EXTERNAL, _numbers(pose)])


def write_landmarks(path, landmarks):
    """Writes `_lm2d.txt` ([P, 2], crop pixels) or `_lm3d.txt` ([P, 3], model
    frame mm): the count, then one comma-separated '%f' line per point.
    Landmarks a model lacks (NaN rows of FaceRender) are written as 'nan'."""
    points = _as_numpy(landmarks)
    if points.ndim != 2 or points.shape[1] not in (2, 3):
        raise ValueError(f"landmarks must have shape [P, 2] or [P, 3], got {list(points.shape)}")
    _write_lines(path, [str(len(points))] + [_numbers(point) for point in points])


def _read_lines(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    with open(path, "r") as stream:
        return stream.read().splitlines()


def _error(path, line_number, message):
    return MgcnetTextError(f"{path}:{line_number}: {message}")


def _parse_numbers(path, lines, index, count, allow_nan=False):
    """Line `index` (0-based) as `count` comma-separated floats."""
    if index >= len(lines):
        raise _error(path, index + 1, f"expected {count} comma-separated numbers, "
                                      "the file ends before")
    fields = lines[index].strip().split(",")
    if len(fields) != count:
        raise _error(path, index + 1, f"expected {count} comma-separated numbers, "
                                      f"got {len(fields)}: {lines[index]!r}")
    try:
        values = [float(field) for field in fields]
    except ValueError:
        raise _error(path, index + 1, f"not a number in {lines[index]!r}") from None
    if not np.all(np.isfinite(values) | (allow_nan & np.isnan(values))):
        raise _error(path, index + 1, f"non-finite number in {lines[index]!r}")
    return values


def _expect_keyword(path, lines, index, keyword):
    found = lines[index].strip() if index < len(lines) else "end of file"
    if found != keyword:
        raise _error(path, index + 1, f"expected {keyword!r}, got {found!r}")


def read_camera(path):
    """Reads an MGCNet `_cam.txt` into a CameraFile (see write_camera)."""
    lines = _read_lines(path)
    size = lines[0].split() if lines else []
    if len(size) != 2 or not all(field.isdigit() for field in size):
        raise _error(path, 1, f"expected 'width height', got {lines[0] if lines else ''!r}")
    _expect_keyword(path, lines, 1, _INTRINSIC)
    matrix = np.array(_parse_numbers(path, lines, 2, 9)).reshape(3, 3)
    _expect_keyword(path, lines, 3, _EXTERNAL)
    pose = np.array(_parse_numbers(path, lines, 4, 6))
    if any(line.strip() for line in lines[5:]):
        raise _error(path, 6, "unexpected text after the pose line")
    return CameraFile(int(size[0]), int(size[1]), matrix, pose)


def read_landmarks(path, dims=None):
    """Reads `_lm2d.txt` / `_lm3d.txt` into a float64 array [P, dims].

    Args:
      path: the file.
      dims: 2 or 3; None takes it from the first point line.

    'nan' entries (landmarks the model lacks) are read as NaN; infinities
    and anything unparsable are errors.
    """
    lines = _read_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()  # a trailing blank line is harmless
    header = lines[0].strip() if lines else ""
    if not header.isdigit():
        raise _error(path, 1, f"expected the number of points, got {header!r}")
    count = int(header)
    if len(lines) - 1 != count:
        raise _error(path, len(lines) + 1 if len(lines) - 1 < count else count + 2,
                     f"the header says {count} points, the file has {len(lines) - 1}")
    if dims is None:
        dims = len(lines[1].split(",")) if count else 2
    if dims not in (2, 3):
        raise _error(path, 2, f"points must have 2 or 3 coordinates, got {dims}")
    points = [_parse_numbers(path, lines, index, dims, allow_nan=True)
              for index in range(1, count + 1)]
    return np.array(points, np.float64).reshape(count, dims)


def intrinsics_from_camera(camera):
    """mgc.geometry.Intrinsics of a CameraFile (MGCNet's near/far kept).

    Raises ValueError for a K this project's camera cannot represent
    (fx != fy or skew).
    """
    k = camera.intrinsic_matrix
    if not np.isclose(k[0, 0], k[1, 1]) or k[0, 1] != 0 or not np.allclose(k[2], [0, 0, 1]):
        raise ValueError(f"K must be [[f, 0, cx], [0, f, cy], [0, 0, 1]], got {k.tolist()}")
    return geometry.Intrinsics(focal=float(k[0, 0]), cx=float(k[0, 2]), cy=float(k[1, 2]),
                               width=camera.width, height=camera.height)
