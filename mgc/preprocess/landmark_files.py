"""Landmark files stored beside pictures: 300-W .pts and plain .txt.

Points are returned as written, float32 [N, 2] (x right, y down, image
pixels). Note that 300-W annotations are usually taken to be 1-based
(Matlab); no offset is applied here.
"""
import os
import re

import numpy as np

# Counts a landmark file may hold: iBUG 68 or the 5 points of the alignment.
SUPPORTED_COUNTS = (5, 68)


PTS_ORIGIN = 1.0  # .pts coordinates are 1-based


class LandmarkFileError(ValueError):
    """A landmark file that cannot be parsed; the message names file and line."""


def read_pts(path):
    """Reads a 300-W .pts file: `version: 1`, `n_points: N`, `{`, N lines `x y`, `}`.

    The iBUG annotations (300-W, Menpo) count pixels from 1, as MATLAB does;
    this project counts from 0 (pixel centres at integers, as dlib and
    OpenCV), so 1 is subtracted, as iBUG's own menpo does when it reads them.

    Returns:
      float32 [N, 2], 0-based pixel coordinates.
    """
    lines = _numbered_lines(path)
    header, points, closed = {}, [], False
    in_points = False
    for number, text in lines:
        if closed:
            raise _error(path, number, f"text after the closing brace: {text!r}")
        if not in_points:
            if text == "{":
                in_points = True
            elif ":" in text:
                key, value = (part.strip() for part in text.split(":", 1))
                header[key] = value
            else:
                raise _error(path, number, f"expected 'key: value' or '{{', got {text!r}")
        elif text == "}":
            closed = True
        else:
            points.append(_parse_xy(path, number, text))
    if not closed:
        raise _error(path, None, "no '{ ... }' block of points")
    expected = header.get("n_points")
    if expected is not None and (not expected.isdigit() or int(expected) != len(points)):
        raise _error(path, None, f"n_points is {expected} but {len(points)} points follow")
    return _checked(path, points) - PTS_ORIGIN


def read_txt(path):
    """Reads x y per line (whitespace or comma separated), with an optional
    first line holding only the count (MGCNet's `_lm2d.txt` layout).

    Returns:
      float32 [N, 2].
    """
    lines = _numbered_lines(path)
    expected = None
    if lines and re.fullmatch(r"\d+", lines[0][1]):
        expected = int(lines[0][1])
        lines = lines[1:]
    points = [_parse_xy(path, number, text) for number, text in lines]
    if expected is not None and expected != len(points):
        raise _error(path, 1, f"the first line says {expected} points but {len(points)} follow")
    return _checked(path, points)


def read_landmark_file(path):
    """Reads a .pts or .txt landmark file (by extension) as float32 [N, 2], N in 5 or 68."""
    if os.path.splitext(path)[1].lower() == ".pts":
        return read_pts(path)
    return read_txt(path)


def landmark_file_candidates(image_path):
    """Where a landmark file for `image_path` may lie, in the order searched:
    <stem>.pts and <stem>.txt beside the picture, then detections/<stem>.txt
    (the Deep3DFaceRecon layout)."""
    folder, name = os.path.split(os.fspath(image_path))
    stem = os.path.splitext(name)[0]
    return [os.path.join(folder, stem + ".pts"), os.path.join(folder, stem + ".txt"),
            os.path.join(folder, "detections", stem + ".txt")]


def find_landmark_file(image_path):
    """The first existing file of landmark_file_candidates, or None."""
    return next((p for p in landmark_file_candidates(image_path) if os.path.isfile(p)), None)


def _numbered_lines(path):
    """(1-based line number, stripped text) of the non-blank lines."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        raise LandmarkFileError(f"cannot read landmark file {path}: {error}") from error
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if line.strip()]


def _parse_xy(path, number, text):
    fields = [f for f in re.split(r"[,\s]+", text) if f]
    if len(fields) != 2:
        raise _error(path, number, f"expected 2 numbers 'x y', got {text!r}")
    try:
        point = (float(fields[0]), float(fields[1]))
    except ValueError:
        raise _error(path, number, f"not a number in {text!r}") from None
    if not all(np.isfinite(point)):
        raise _error(path, number, f"non-finite coordinate in {text!r}")
    return point


def _checked(path, points):
    if len(points) not in SUPPORTED_COUNTS:
        raise _error(path, None, f"holds {len(points)} points; expected one of {SUPPORTED_COUNTS}")
    return np.asarray(points, dtype=np.float32)


def _error(path, number, message):
    where = f"{path}, line {number}" if number else path
    return LandmarkFileError(f"landmark file {where}: {message}")
