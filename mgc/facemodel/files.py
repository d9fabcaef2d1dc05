"""Opening face-model files with one-line errors that name the file and the problem.

The libraries underneath report a cut-off or foreign file in their own terms
(zipfile.BadZipFile, h5py's OSError, scipy reading a cut-off .mat's first
variables and then silently stopping); these helpers turn that into
FaceModelError (FileNotFoundError for a missing file) before anything is built.
"""
import os
import struct
import zipfile
import zlib

import numpy as np

# What a file's first bytes say it is (for "not an npz: it is an HDF5 file").
SIGNATURES = ((b"PK\x03\x04", "an npz (zip) file"), (b"PK\x05\x06", "an npz (zip) file"),
              (b"\x89HDF\r\n\x1a\n", "an HDF5 file"), (b"MATLAB", "a MATLAB file"),
              (b"\x93NUMPY", "a single NumPy array (.npy)"))
MAT_HEADER_BYTES = 128
MAT_COMPRESSED = 15  # miCOMPRESSED: its elements are not padded to 8 bytes


class FaceModelError(ValueError):
    """A face-model file or array is missing something or is inconsistent."""


def one_line(error):
    """An exception's message on one line (h5py's and scipy's may span several)."""
    return " ".join(str(error).split())


def check_file(path):
    """FileNotFoundError for a missing path, FaceModelError for a folder."""
    if os.path.isdir(path):
        raise FaceModelError(f"{path} is a folder, not a face-model file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"face model {path} does not exist")


def file_kind(path):
    """What the file's first bytes say it is, e.g. "an HDF5 file"; None if unknown."""
    with open(path, "rb") as file:
        start = file.read(8)
    for signature, kind in SIGNATURES:
        if start.startswith(signature):
            return kind
    return None


def not_a(path, what, error=None):
    """FaceModelError for a file that is not `what`, e.g. "an HDF5 file":
    says what it is instead where its first bytes tell, else the library's
    `error`."""
    found = file_kind(path) or (one_line(error) if error else
                                "its first bytes match no known format")
    return FaceModelError(f"{path}: not {what} ({found})")


def _check_zip(path, what):
    if file_kind(path) != "an npz (zip) file":
        raise not_a(path, what)


def npz_keys(path, what="an npz file"):
    """The array names of an npz without reading the arrays."""
    check_file(path)
    _check_zip(path, what)
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise FaceModelError(f"{path}: cut off or corrupt npz ({one_line(error)})") from None
    return {name[:-4] if name.endswith(".npy") else name for name in names}


def read_npz(path, what="an npz file"):
    """Every array of an npz, read now, so that a cut-off or corrupt member
    fails here rather than while a model is being built.

    Args:
      path: the file.
      what: what it should be, for messages, e.g. "an ICT-FaceKit npz".

    Returns:
      dict key -> ndarray.

    Raises:
      FileNotFoundError: no such file.
      FaceModelError: a folder, another kind of file, a cut-off or corrupt
        zip, or pickled objects (never loaded).
    """
    check_file(path)
    _check_zip(path, what)
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as error:
        raise FaceModelError(f"{path}: cut off or corrupt npz ({one_line(error)})") from None
    except ValueError as error:  # object arrays: refused rather than unpickled
        raise FaceModelError(f"{path}: not {what} ({one_line(error)})") from None


def mat_cut_off(path):
    """Why a MATLAB v5 file is cut off, or None.

    scipy.io.loadmat reads a cut-off file's first variables and then either
    fails ("could not read bytes") or silently stops, depending on which
    variables are asked for, so a cut-off file would look like one with
    missing keys. The top-level element tags say how long the file must be.
    Other versions (v4, v7.3 = HDF5) are not checked here.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as file:
        header = file.read(MAT_HEADER_BYTES)
        if not header.startswith(b"MATLAB"):
            return None
        if len(header) < MAT_HEADER_BYTES:
            return (f"cut off MATLAB file: {size} bytes, less than its "
                    f"{MAT_HEADER_BYTES}-byte header")
        endian = {b"IM": "<", b"MI": ">"}.get(header[126:128])
        if endian is None or struct.unpack(endian + "H", header[124:126])[0] != 0x0100:
            return None
        position = MAT_HEADER_BYTES
        while position < size:
            file.seek(position)
            tag = file.read(8)
            if len(tag) < 8:
                return f"cut off MATLAB file: it ends inside the variable at byte {position}"
            kind, length = struct.unpack(endian + "II", tag)
            if kind >> 16:  # small element: tag and data in 8 bytes
                position += 8
                continue
            position += 8 + length + (0 if kind == MAT_COMPRESSED else -length % 8)
    if position > size:
        return f"cut off MATLAB file: its variables need {position} bytes, it has {size}"
    return None
