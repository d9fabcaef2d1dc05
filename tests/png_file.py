"""Reads 8-bit RGB / RGBA / grey PNG files with the standard library and NumPy
alone, so the golden-image tests of the rasterizer backends also run where
pillow is not installed (a GPU machine with only numpy and pytest);
conftest.load_golden uses pillow when it is there."""
import struct
import zlib

import numpy as np

_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter_row(kind, row, previous, channels):
    """One scanline (int arrays, bytes as 0..255) without its filter."""
    if kind == 0:
        return row
    if kind == 2:
        return (row + previous) % 256
    if kind == 1:  # Sub: a running sum per channel along the row.
        return np.cumsum(row.reshape(-1, channels), axis=0).reshape(-1) % 256
    out = row.copy()
    for start in range(0, len(row), channels):  # Average and Paeth depend on the left byte.
        left = out[start - channels:start] if start else np.zeros(channels, row.dtype)
        up = previous[start:start + channels]
        if kind == 3:
            predictor = (left + up) // 2
        else:
            up_left = previous[start - channels:start] if start else np.zeros(channels, row.dtype)
            predictor = _paeth(left, up, up_left)
        out[start:start + channels] = (row[start:start + channels] + predictor) % 256
    return out


def read_png(path):
    """uint8 [H, W, C] (C = 1 squeezed to [H, W]); row 0 is the file's first."""
    with open(path, "rb") as stream:
        data = stream.read()
    if not data.startswith(_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    offset, header, compressed = len(_SIGNATURE), None, []
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            compressed.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in _CHANNELS or interlace != 0:
        raise ValueError(f"{path}: only 8-bit, non-interlaced, non-palette PNGs are read here")
    channels = _CHANNELS[colour]
    raw = np.frombuffer(zlib.decompress(b"".join(compressed)), np.uint8).astype(np.int64)
    rows = raw.reshape(height, 1 + width * channels)
    previous = np.zeros(width * channels, np.int64)
    image = np.empty((height, width * channels), np.uint8)
    for y in range(height):
        previous = _unfilter_row(rows[y, 0], rows[y, 1:], previous, channels)
        image[y] = previous
    image = image.reshape(height, width, channels)
    return image[..., 0] if channels == 1 else image
