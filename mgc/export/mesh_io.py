"""Mesh files: OBJ (per-vertex colours or a UV texture) and PLY (as MGCNet
writes its `<stem>.ply`), and baking per-vertex colours into a UV texture.

Vertices are written as given (MGCNet writes model-frame millimetres, not
posed); triangles are 0-based in memory and 1-based in OBJ files. Colours are
floats in [0, 1].
"""
import hashlib
import os

import numpy as np
import trimesh
from scipy import ndimage, sparse

from mgc.export.overlays import save_image, to_uint8
from mgc.render import rasterize_triangles

_MATERIAL = "material_0"


def _numpy(value, dtype):
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype)


def _check_mesh(vertices, triangles, colors=None):
    """NumPy copies (float64 [N, 3], int64 [T, 3], float64 [N, 3] or None),
    with shapes and index ranges checked."""
    vertices, triangles = _numpy(vertices, np.float64), _numpy(triangles, np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ValueError(f"vertices must have shape [N, 3], got {list(vertices.shape)}")
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise ValueError(f"triangles must have shape [T, 3], got {list(triangles.shape)}")
    if triangles.size and (triangles.min() < 0 or triangles.max() >= len(vertices)):
        raise ValueError(f"triangles index outside [0, {len(vertices)}): "
                         f"min {triangles.min()}, max {triangles.max()}")
    if colors is not None:
        colors = _numpy(colors, np.float64)
        if colors.shape != vertices.shape:
            raise ValueError(f"colors must have shape {list(vertices.shape)}, "
                             f"got {list(colors.shape)}")
        colors = np.clip(colors, 0.0, 1.0)
    return vertices, triangles, colors


def _check_uvs(uvs, uv_triangles, triangles, num_vertices):
    """(uvs float64 [M, 2], uv_triangles int64 [T, 3]); per-vertex UVs
    (uv_triangles None) need M = N and reuse the triangles."""
    uvs = _numpy(uvs, np.float64)
    if uvs.ndim != 2 or uvs.shape[1] != 2:
        raise ValueError(f"uvs must have shape [M, 2], got {list(uvs.shape)}")
    if uv_triangles is None:
        if len(uvs) != num_vertices:
            raise ValueError(f"per-vertex uvs need {num_vertices} rows, got {len(uvs)} "
                             "(pass uv_triangles for per-corner UVs)")
        return uvs, triangles
    uv_triangles = _numpy(uv_triangles, np.int64)
    if uv_triangles.shape != triangles.shape:
        raise ValueError(f"uv_triangles must have shape {list(triangles.shape)}, "
                         f"got {list(uv_triangles.shape)}")
    if uv_triangles.size and (uv_triangles.min() < 0 or uv_triangles.max() >= len(uvs)):
        raise ValueError(f"uv_triangles index outside [0, {len(uvs)})")
    return uvs, uv_triangles


def _make_parent(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def write_obj(path, vertices, triangles, colors=None, uvs=None, texture=None, uv_triangles=None):
    """Writes a Wavefront OBJ.

    Args:
      path: the .obj file (folders are created).
      vertices: [N, 3] positions.
      triangles: [T, 3] 0-based vertex indices.
      colors: optional [N, 3] per-vertex colours in [0, 1], written as the
        common `v x y z r g b` extension (MeshLab, trimesh, Blender read it).
      uvs: optional texture coordinates in [0, 1], v up (OBJ convention):
        [N, 2] per vertex, or [M, 2] with uv_triangles.
      texture: optional [H, W, 3] image (uint8, or float in [0, 1]) for the
        UVs, top-down (row 0 is v = 1). Written as `<stem>.png` with a
        `<stem>.mtl` that references it; needs uvs.
      uv_triangles: optional [T, 3] 0-based indices into uvs, for models whose
        UVs have seams (more UV corners than vertices).
    """
    vertices, triangles, colors = _check_mesh(vertices, triangles, colors)
    if texture is not None and uvs is None:
        raise ValueError("a texture needs uvs")
    if uvs is not None:
        uvs, uv_triangles = _check_uvs(uvs, uv_triangles, triangles, len(vertices))
    stem = os.path.splitext(os.path.basename(path))[0]
    _make_parent(path)
    lines = ["# mgc export\n"]
    if texture is not None:
        _write_material(path, stem, texture)
        lines.append(f"mtllib {stem}.mtl\nusemtl {_MATERIAL}\n")
    rows = vertices if colors is None else np.concatenate([vertices, colors], axis=1)
    lines.append(format_float_rows("v", rows))
    lines.append(_topology_text(triangles, uvs, uv_triangles))
    with open(path, "w", newline="\n") as stream:
        stream.write("".join(lines))


def _format_rows(row_format, rows):
    """One formatted line per row, each ending in a newline. One % over the
    whole array: several times faster than a line at a time."""
    return ((row_format + "\n") * len(rows)) % tuple(rows.ravel().tolist())


def format_float_rows(prefix, rows, decimals=6):
    """The text of `prefix x y ...` lines, each number as '%.6f' formats it
    (decimals=6), the same characters.

    Float32 values (what the networks and renders give) take a vectorised
    path, about twice as fast as Python's formatting for a mesh: x * 10**6
    is exact in float64 for them, so rounding it to an integer rounds as
    '%.6f' does (half to even on exact ties), and the digits are put
    together as bytes. Other values are formatted by Python.
    """
    values = np.asarray(rows, np.float64)
    scale = 10 ** decimals
    scaled = np.abs(np.rint(values * scale))
    if (values.size == 0 or decimals > 9 or not np.all(scaled < 2.0 ** 31 * scale)
            or not np.array_equal(values.astype(np.float32), values)):
        return _format_rows(prefix + f" %.{decimals}f" * values.shape[1], values)
    whole = (scaled // scale).astype(np.int32).ravel()
    fraction = (scaled % scale).astype(np.int32).ravel()
    whole_digits = len(str(int(whole.max()))) if whole.size else 1
    point = 2 + whole_digits  # a number is: space, sign, digits, point, decimals
    chars = np.zeros((point + 1 + decimals, whole.size), np.uint8)  # a row per position
    chars[0] = ord(" ")
    chars[point] = ord(".")
    for position in range(point + decimals, point, -1):
        fraction, digit = np.divmod(fraction, 10)
        chars[position] = digit + ord("0")
    first = np.full(whole.size, point - 1)  # where each number's first digit goes
    for position in range(point - 1, 1, -1):
        shown = (whole > 0) | (position == point - 1)  # no leading zeros, but the units
        whole, digit = np.divmod(whole, 10)
        chars[position] = np.where(shown, digit + ord("0"), 0)
        first[shown] = position
    negative = np.nonzero(np.signbit(values).ravel())[0]  # -0.0 too, as '%f' writes it
    chars[first[negative] - 1, negative] = ord("-")
    lines = np.zeros((len(values), len(prefix) + chars.size // len(values) + 1), np.uint8)
    lines[:, :len(prefix)] = np.frombuffer(prefix.encode("ascii"), np.uint8)
    lines[:, len(prefix):-1] = chars.T.reshape(len(values), -1)
    lines[:, -1] = ord("\n")
    text = lines.ravel()
    return text[text != 0].tobytes().decode("ascii")  # the unused positions are 0


_TOPOLOGY = {}  # digest of the arrays -> text; one entry (one model per run is usual)


def _topology_text(triangles, uvs, uv_triangles):
    """The `vt` and `f` lines, which are the same for every face of a model:
    made once and reused while the topology is unchanged."""
    digest = hashlib.sha1(triangles.tobytes())
    for array in (uvs, uv_triangles):
        digest.update(b"|" if array is None else array.tobytes())
    key = digest.hexdigest()
    if key not in _TOPOLOGY:
        if uvs is None:
            text = _format_rows("f %d %d %d", triangles + 1)
        else:
            corners = np.stack([triangles + 1, uv_triangles + 1], axis=-1).reshape(-1, 6)
            text = format_float_rows("vt", uvs) + _format_rows("f %d/%d %d/%d %d/%d", corners)
        _TOPOLOGY.clear()
        _TOPOLOGY[key] = text
    return _TOPOLOGY[key]


def _write_material(obj_path, stem, texture):
    """`<stem>.mtl` and `<stem>.png` beside the OBJ."""
    directory = os.path.dirname(os.path.abspath(obj_path))
    save_image(os.path.join(directory, f"{stem}.png"), to_uint8(_numpy(texture, None)))
    material = [f"newmtl {_MATERIAL}", "Ka 1.000000 1.000000 1.000000",
                "Kd 1.000000 1.000000 1.000000", "Ks 0.000000 0.000000 0.000000",
                "d 1.000000", "illum 1", f"map_Kd {stem}.png"]
    with open(os.path.join(directory, f"{stem}.mtl"), "w", newline="\n") as stream:
        stream.write("\n".join(material) + "\n")


def read_obj(path):
    """Reads an OBJ written by write_obj (or any triangle/polygon OBJ).

    Polygons are split into fans; normals (`vn`, `a/b/c`) are ignored.

    Returns:
      (vertices float64 [N, 3], triangles int32 [T, 3] 0-based,
      colors float64 [N, 3] or None, uvs float64 [M, 2] or None,
      uv_triangles int32 [T, 3] or None).
    """
    vertices, colors, uvs, faces, uv_faces = [], [], [], [], []
    with open(path, "r") as stream:
        for number, line in enumerate(stream, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            try:
                _parse_obj_line(fields, vertices, colors, uvs, faces, uv_faces)
            except (ValueError, IndexError) as error:
                raise ValueError(f"{path}:{number}: cannot parse {line.strip()!r} ({error})") \
                    from None
    has_colors = bool(colors) and len(colors) == len(vertices)
    has_uvs = bool(uvs) and all(corner is not None for face in uv_faces for corner in face)
    return (np.array(vertices, np.float64).reshape(-1, 3),
            np.array(faces, np.int32).reshape(-1, 3),
            np.array(colors, np.float64) if has_colors else None,
            np.array(uvs, np.float64).reshape(-1, 2) if has_uvs else None,
            np.array(uv_faces, np.int32).reshape(-1, 3) if has_uvs else None)


def _parse_obj_line(fields, vertices, colors, uvs, faces, uv_faces):
    """Appends one OBJ statement's data to the lists (1-based -> 0-based)."""
    keyword = fields[0]
    if keyword == "v":
        vertices.append([float(value) for value in fields[1:4]])
        if len(fields) >= 7:
            colors.append([float(value) for value in fields[4:7]])
    elif keyword == "vt":
        uvs.append([float(value) for value in fields[1:3]])
    elif keyword == "f":
        corners = [corner.split("/") for corner in fields[1:]]
        if len(corners) < 3:
            raise ValueError("a face needs at least 3 corners")
        points = [_obj_index(corner[0], len(vertices)) for corner in corners]
        textures = [_obj_index(corner[1], len(uvs)) if len(corner) > 1 and corner[1] else None
                    for corner in corners]
        for k in range(1, len(corners) - 1):
            faces.append([points[0], points[k], points[k + 1]])
            uv_faces.append([textures[0], textures[k], textures[k + 1]])


def _obj_index(token, count):
    """1-based (or negative, relative) OBJ index -> 0-based."""
    index = int(token)
    return index - 1 if index > 0 else count + index


def write_ply(path, vertices, triangles, colors=None):
    """Writes a binary little-endian PLY as MGCNet's `<stem>.ply` (which it
    writes through trimesh; the same records): float xyz, faces as
    uchar-counted int lists, and, with colours, uchar RGBA per vertex
    (255 * colour rounded, NaN as 0; alpha 255).

    Args:
      path: the .ply file (folders are created).
      vertices: [N, 3] positions (MGCNet: model frame, mm, not posed).
      triangles: [T, 3] 0-based.
      colors: optional [N, 3] in [0, 1] (clipped, as MGCNet clips lit colours).
    """
    vertices, triangles, colors = _check_mesh(vertices, triangles, colors)
    fields = [("xyz", "<f4", (3,))] + ([] if colors is None else [("rgba", "u1", (4,))])
    vertex_records = np.empty(len(vertices), np.dtype(fields))
    vertex_records["xyz"] = vertices
    properties = [f"property float {axis}" for axis in "xyz"]
    if colors is not None:
        vertex_records["rgba"][:, :3] = np.round(np.nan_to_num(colors, nan=0.0) * 255.0)
        vertex_records["rgba"][:, 3] = 255
        properties += [f"property uchar {channel}" for channel in ("red", "green", "blue", "alpha")]
    face_records = np.empty(len(triangles), np.dtype([("count", "u1"), ("corners", "<i4", (3,))]))
    face_records["count"] = 3
    face_records["corners"] = triangles
    header = ["ply", "format binary_little_endian 1.0", "comment mgc export",
              f"element vertex {len(vertices)}", *properties, f"element face {len(triangles)}",
              "property list uchar int vertex_indices", "end_header"]
    _make_parent(path)
    with open(path, "wb") as stream:
        stream.write(("\n".join(header) + "\n").encode("ascii"))
        stream.write(vertex_records.tobytes())
        stream.write(face_records.tobytes())


def read_ply(path):
    """Reads a PLY mesh, keeping the vertex order (no merging or cleaning).

    Returns:
      (vertices float64 [N, 3], triangles int32 [T, 3] 0-based,
      colors float32 [N, 3] in [0, 1] or None when the file has none).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    mesh = trimesh.load(path, process=False, force="mesh")
    colors = None
    if mesh.visual.kind == "vertex":
        colors = np.asarray(mesh.visual.vertex_colors[:, :3], np.float32) / 255.0
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int32), colors


class TextureBaker:
    """Bakes per-vertex colours into one UV layout's texture with the
    project's rasterizer. The layout is rasterized once, here; each bake is
    then one sparse product (every texel a weighted sum of 3 vertex
    colours), so a reconstruction keeps one baker per face model.

    The UV layout is rasterized with clip = (2u - 1, 2v - 1, 0, 1), so texel
    centres sample the linear interpolation of the corner colours.

    Args:
      uvs: [N, 2] per-vertex UVs in [0, 1] (v up), or [M, 2] with uv_triangles.
      triangles: [T, 3] 0-based vertex indices (index the colours).
      size: texture side in texels, or (height, width).
      uv_triangles: optional [T, 3] indices into uvs (seamed layouts).
      padding: fill texels outside every triangle with the nearest covered
        texel's colour, so bilinear lookups at island edges do not bleed black.
      num_vertices: the colours' row count; default: the largest index + 1.
    """

    def __init__(self, uvs, triangles, size=512, uv_triangles=None, padding=True,
                 num_vertices=None):
        triangles = _numpy(triangles, np.int64)
        if num_vertices is None:
            num_vertices = int(triangles.max()) + 1 if triangles.size else 0
        _, triangles, _ = _check_mesh(np.zeros([num_vertices, 3]), triangles)
        uvs, uv_triangles = _check_uvs(uvs, uv_triangles, triangles, num_vertices)
        self.height, self.width = (size, size) if np.isscalar(size) else size
        self.num_vertices = num_vertices
        barycentrics, corners = _uv_raster(uvs, uv_triangles, triangles, int(self.width),
                                           int(self.height), padding)
        # Rows: texels top-down; entries in corner order, so the product adds
        # the three terms in the order a per-texel sum would.
        texels = int(self.width) * int(self.height)
        self.weights = sparse.csr_matrix(
            (barycentrics[::-1].reshape(-1), corners[::-1].reshape(-1),
             np.arange(0, 3 * texels + 1, 3)), shape=(texels, num_vertices))

    def __call__(self, colors):
        """float32 [H, W, 3] texture, top-down (row 0 is v = 1), of colours
        [N, 3] (NumPy or tensor), ready for write_obj(texture=...)."""
        colors = _numpy(colors, np.float32)
        if colors.shape != (self.num_vertices, 3):
            raise ValueError(f"colors must have shape [{self.num_vertices}, 3], "
                             f"got {list(colors.shape)}")
        return np.asarray(self.weights @ colors).reshape(int(self.height), int(self.width), 3)


def _uv_raster(uvs, uv_triangles, triangles, width, height, padding):
    """The UV layout rasterized: barycentrics float32 [H, W, 3] and vertex
    corners [H, W, 3] per texel, bottom-up. Uncovered texels have
    barycentrics 0, or with padding those of the nearest covered texel (so
    they take its colour)."""
    clip = np.concatenate([2.0 * uvs - 1.0, np.zeros_like(uvs[:, :1]),
                           np.ones_like(uvs[:, :1])], axis=1).astype(np.float32)
    barycentrics, triangle_ids, _ = rasterize_triangles(
        clip[np.newaxis], uv_triangles.astype(np.int32), width, height)
    barycentrics, triangle_ids = barycentrics[0].numpy(), triangle_ids[0].numpy()
    covered = triangle_ids >= 0
    # Same triangle ids, other corner indices: colours come from the vertices.
    corners = triangles[np.maximum(triangle_ids, 0)]
    if padding and covered.any() and not covered.all():
        rows, columns = ndimage.distance_transform_edt(~covered, return_distances=False,
                                                       return_indices=True)
        barycentrics, corners = barycentrics[rows, columns], corners[rows, columns]
    return barycentrics, corners


def bake_texture(uvs, triangles, colors, size=512, uv_triangles=None, padding=True):
    """One texture of per-vertex colours [N, 3]: TextureBaker(...)(colors)
    (see TextureBaker for the arguments); for many, keep the baker.

    Returns:
      float32 [H, W, 3] texture, top-down (row 0 is v = 1).
    """
    colors = _numpy(colors, np.float32)
    baker = TextureBaker(uvs, triangles, size, uv_triangles, padding, num_vertices=len(colors))
    return baker(colors)
