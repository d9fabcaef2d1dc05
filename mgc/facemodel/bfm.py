"""Basel Face Model 2009 converters: Deng et al.'s `BFM_model_front.mat` and the
official `01_MorphableModel.mat` + Guo et al.'s expression basis, both on Deng's
35,709-vertex front mesh (MGCNET_REFERENCE.md §2, Appendix F).

Units: the container is in millimetres. Deng's file is in "decimetres"
(micrometres / 1e5), so x100; the raw BFM is in micrometres, so /1000. Colours
are 0..255 in both, so /255. The BFM model frame is kept as is (x to the
subject's left, y up, +z out of the face) and, like MGCNet and unlike Deng's
runtime code, the shape is not re-centred.

Landmarks: MGCNet indexes its 35,709-vertex mesh with Deng's 1-based
`keypoints` numbers used as 0-based, i.e. every landmark is the vertex right
after Deng's (MGCNET_REFERENCE.md §2.4, §9 B2). A container that is to
reproduce MGCNet must use that list, MGCNET_LANDMARKS_BFM, not keypoints - 1.
"""
import os
import zlib

import numpy as np
import scipy.io
from absl import logging

from mgc import paths
from mgc.facemodel import loader_utils as lu
from mgc.facemodel.files import mat_cut_off, not_a, one_line, read_npz
from mgc.facemodel.model import FaceModelError

# MGCNET_REFERENCE.md Appendix A: 0-based into the 35,709-vertex front mesh,
# iBUG-68 order. Numerically Deng's 1-based `keypoints` (B2).
MGCNET_LANDMARKS_BFM = np.array([
    16645, 16889, 16468, 16265, 32245, 32940, 33376, 33655, 33839, 34023, 34313, 34767, 35473,
    27817, 27609, 27209, 27441, 28112, 28788, 29178, 29383, 29550, 30289, 30455, 30663, 31057,
    31717, 8162, 8178, 8188, 8193, 6516, 7244, 8205, 9164, 9884, 2216, 3887, 4921, 5829, 4802,
    3641, 10456, 11354, 12384, 14067, 12654, 11493, 5523, 6026, 7496, 8216, 8936, 10396, 10796,
    9556, 8837, 8237, 7637, 6916, 5910, 7385, 8224, 9065, 10538, 8830, 8230, 7630], np.int32)
MGCNET_LANDMARKS_BFM.setflags(write=False)

NUM_FRONT_VERTICES = 35709  # Deng's cropped BFM ("trim" in MGCNet's file name)
TOPOLOGY_DIR = os.path.join("bfm09_topology", "deep3dfacerecon_BFM")
UM_PER_MM = 1000.0
MM_PER_DECIMETRE = 100.0  # Deng's unit: micrometres / 1e5


def bfm_landmarks(num_vertices, keypoints_1based=None, source=""):
    """[68] landmark vertices for a BFM front mesh.

    The MGCNet list (Appendix A) on the 35,709-vertex mesh; on any other mesh
    Deng's `keypoints` - 1 when given (the list MGCNet's is one vertex off
    from), else all -1.
    """
    if num_vertices == NUM_FRONT_VERTICES:
        return MGCNET_LANDMARKS_BFM.copy()
    if keypoints_1based is not None:
        logging.warning("%s: %d vertices, not %d: MGCNet's landmark list does not apply; "
                        "using keypoints - 1", source, num_vertices, NUM_FRONT_VERTICES)
        return lu.as_indices(keypoints_1based, "keypoints", source, 1, num_vertices)
    logging.warning("%s: no landmarks for a %d-vertex mesh", source, num_vertices)
    return lu.no_landmarks()


def read_mat(path, keys):
    """The variables `keys` of a MATLAB v5 file; absent ones are left out.

    Raises:
      FileNotFoundError: no such file.
      FaceModelError: not a MATLAB file, v7.3, cut off or corrupt.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    problem = mat_cut_off(path)  # else a cut-off file reads as one with keys missing
    if problem:
        raise FaceModelError(f"{path}: {problem}")
    try:
        return scipy.io.loadmat(path, variable_names=list(keys))
    except NotImplementedError as error:
        raise FaceModelError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; "
                             f"re-save it with -v7 ({one_line(error)})") from None
    except ValueError as error:
        raise not_a(path, "a MATLAB file", error) from None
    except (OSError, EOFError, zlib.error, TypeError, scipy.io.matlab.MatReadError) as error:
        raise FaceModelError(f"{path}: corrupt MATLAB file ({one_line(error)})") from None


def mat_value(mat, key, source, expected):
    """mat[key], or FaceModelError naming the key and the expected shape."""
    if key not in mat:
        raise lu.missing_error(source, key, expected)
    return mat[key]


def mat_basis(mat, key, source, rows, rank, what):
    """The first `rank` (clamped) columns of a [rows, K] matrix, float64."""
    expected = f"[3N, K] = [{rows}, K]"
    basis = np.asarray(mat_value(mat, key, source, expected))
    if basis.ndim != 2 or basis.shape[0] != rows:
        raise lu.shape_error(source, key, basis.shape, expected)
    columns = lu.clamp_rank(rank, basis.shape[1], what, source)
    return np.asarray(basis[:, :columns], np.float64)


def triangles_1based(mat, key, source, num_vertices):
    """[T, 3] 1-based triangles -> 0-based int64."""
    triangles = np.asarray(mat_value(mat, key, source, "[T, 3]"))
    if triangles.ndim != 2 or triangles.shape[1] != 3:
        raise lu.shape_error(source, key, triangles.shape, "[T, 3]")
    return lu.as_indices(triangles, key, source, 1, num_vertices)


def deng_topology(mat, source, num_vertices):
    """Triangles, front region and skin mask from Deng's keys (all 1-based).

    Returns:
      dict of triangles [T, 3], front_vertices [N_front], front_triangles
      [T_front, 3] (0-based into front_vertices) and skin_mask [N].
    """
    front_idx = mat_value(mat, "frontmask2_idx", source, "[N_front, 1]")
    front = lu.as_indices(lu.vector(front_idx, "frontmask2_idx", source, "[N_front, 1]"),
                          "frontmask2_idx", source, 1, num_vertices)
    skin = lu.vector(mat_value(mat, "skinmask", source, f"[1, {num_vertices}]"), "skinmask",
                     source, f"[1, {num_vertices}]", size=num_vertices)
    return {
        "triangles": triangles_1based(mat, "tri", source, num_vertices),
        "front_vertices": front,
        "front_triangles": triangles_1based(mat, "tri_mask2", source, len(front)),
        "skin_mask": skin,
    }


DENG_KEYS = ("meanshape", "meantex", "idBase", "exBase", "texBase", "tri", "keypoints",
             "frontmask2_idx", "tri_mask2", "skinmask")


def load_deng_mat(path, identity_rank=80, albedo_rank=80, expression_rank=64):
    """Deng et al.'s `BFM_model_front.mat` (Appendix F) as a FaceModel.

    Shape and bases x100 (decimetres -> mm; Deng's bases already include the
    standard deviations), colours /255, triangles and front region 1-based ->
    0-based, skin = `skinmask`, landmarks = MGCNET_LANDMARKS_BFM (not
    `keypoints` - 1, see the module docstring). Ranks: None keeps every
    column; larger requests are clamped to what the file has. `point_buf` is
    not read (FaceModel.vertex_triangles rebuilds the rings).
    """
    mat = read_mat(path, DENG_KEYS)
    mean = lu.vector(mat_value(mat, "meanshape", path, "[1, 3N]"), "meanshape", path,
                     "[1, 3N]", multiple_of=3)
    n = mean.size // 3
    rows = 3 * n
    meantex = lu.vector(mat_value(mat, "meantex", path, f"[1, {rows}]"), "meantex", path,
                        f"[1, {rows}]", size=rows)
    keypoints = lu.vector(mat_value(mat, "keypoints", path, "[1, 68]"), "keypoints", path,
                          "[1, 68]", size=68)
    return lu.build_model(
        path,
        name="BFM 2009 front (Deng BFM_model_front.mat)",
        mean_shape=mean.reshape(n, 3) * MM_PER_DECIMETRE,
        identity_basis=mat_basis(mat, "idBase", path, rows, identity_rank, "identity")
        * MM_PER_DECIMETRE,
        expression_basis=mat_basis(mat, "exBase", path, rows, expression_rank, "expression")
        * MM_PER_DECIMETRE,
        mean_albedo=meantex.reshape(n, 3) / 255.0,
        albedo_basis=mat_basis(mat, "texBase", path, rows, albedo_rank, "albedo") / 255.0,
        landmarks=bfm_landmarks(n, keypoints, path),
        contour_landmarks=np.zeros(0, np.int32),
        uvs=None,
        source=os.path.abspath(path),
        **deng_topology(mat, path, n))


def read_exp_pca_bin(path, num_vertices, rank):
    """Guo et al.'s `Exp_Pca.bin` (little-endian; Appendix F).

    Layout: int32 n, then 3V float32 (mean offset, unused), then n * 3V
    float32 component-major, V = `num_vertices`.

    Returns:
      [min(rank, n), 3V] float32 (a memory map of the file) and n.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    count = np.fromfile(path, "<i4", count=1)
    size = os.path.getsize(path)
    n = int(count[0]) if count.size else -1
    expected = 4 + 4 * 3 * num_vertices * (n + 1)
    if n < 0 or size != expected:
        raise FaceModelError(
            f"{path}: not an Exp_Pca.bin of {num_vertices} vertices: header n = {n} needs "
            f"{expected} bytes (int32 n, 3V float32 mean, n x 3V float32), the file has {size}")
    columns = lu.clamp_rank(rank, n, "expression", path)
    components = np.memmap(path, "<f4", mode="r", offset=4 + 4 * 3 * num_vertices,
                           shape=(n, 3 * num_vertices))
    return components[:columns], n


def read_std_exp(path, columns):
    """The expression standard deviations (`std_exp.txt`), first `columns`."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    try:
        std = np.loadtxt(path, dtype=np.float64).reshape(-1)
    except (ValueError, UnicodeDecodeError) as error:
        raise FaceModelError(f"{path}: not a text file of numbers ({one_line(error)})") from None
    if std.size < columns:
        raise lu.shape_error(path, "std_exp", std.shape, f"[K] with K >= {columns}")
    return std[:columns]


def scaled_columns(pcs, deviations, key, source, rows, rank, what):
    """pcs[rows, :k] * deviations[:k]: a BFM basis in units per standard deviation.

    Args:
      pcs: [3M, K] principal components.
      deviations: [K] (any shape of that size) standard deviations, `key`.
      source: file for messages.
      rows: int array, the rows to keep.
      rank: requested columns (None = all), clamped to K.
      what: basis name for messages.
    """
    columns = lu.clamp_rank(rank, pcs.shape[1], what, source)
    deviations = lu.vector(deviations, key, source, f"[K, 1] with K >= {columns}")
    if deviations.size < columns:
        raise lu.shape_error(source, key, deviations.shape, f"[K, 1] with K >= {columns}")
    return np.asarray(pcs[rows, :columns], np.float64) * deviations[:columns]


BFM2009_KEYS = ("shapeMU", "shapePC", "shapeEV", "texMU", "texPC", "texEV")


def read_bfm2009_mat(path):
    """The six arrays of `01_MorphableModel.mat`, shapes checked; 3M rows."""
    mat = read_mat(path, BFM2009_KEYS)
    mean = lu.vector(mat_value(mat, "shapeMU", path, "[3M, 1]"), "shapeMU", path, "[3M, 1]",
                     multiple_of=3)
    rows = mean.size
    arrays = {"shapeMU": mean}
    arrays["texMU"] = lu.vector(mat_value(mat, "texMU", path, f"[{rows}, 1]"), "texMU", path,
                                f"[{rows}, 1]", size=rows)
    for key in ("shapePC", "texPC"):
        expected = f"[3M, K] = [{rows}, K]"
        pcs = np.asarray(mat_value(mat, key, path, expected))
        if pcs.ndim != 2 or pcs.shape[0] != rows:
            raise lu.shape_error(path, key, pcs.shape, expected)
        arrays[key] = pcs
    for key in ("shapeEV", "texEV"):
        arrays[key] = mat_value(mat, key, path, "[K, 1]")
    return arrays


def load_bfm2009(morphable_model_mat, exp_pca_bin, std_exp_txt=None, topology_dir=None,
                 data_root=None, identity_rank=80, albedo_rank=80, expression_rank=64):
    """The official BFM 2009 plus Guo et al.'s expressions, assembled as Deng does.

    Equals Deng's `BFM_model_front.mat` x100 (mm): identity = shapePC * shapeEV,
    expression = expPC * std_exp, albedo = texPC * texEV (the first 80/64/80
    columns by default), on the 35,709 vertices trimIndex[front_idx] (shape,
    albedo) and front_idx (expression); micrometres /1000 -> mm, colours /255.
    Like Deng, the mean expression offset of `Exp_Pca.bin` is NOT added to the
    mean shape (MGCNet's file was built from Deng's model, so neither has it).

    Args:
      morphable_model_mat: path of `01_MorphableModel.mat` (shapeMU, shapePC,
        shapeEV, texMU, texPC, texEV; `tl` is not needed).
      exp_pca_bin: path of `Exp_Pca.bin` (53,215 trimmed vertices).
      std_exp_txt: path of `std_exp.txt`; default: the one in `topology_dir`.
      topology_dir: folder with Deng's BFM_front_idx.mat, BFM_exp_idx.mat and
        facemodel_info.mat; default: bfm09_topology/deep3dfacerecon_BFM under
        the data root.
      data_root: data root override (see mgc.paths).
      identity_rank, albedo_rank, expression_rank: columns kept (None = all).

    Returns:
      FaceModel with 35,709 vertices, landmarks MGCNET_LANDMARKS_BFM.
    """
    if topology_dir is None:
        topology_dir = paths.data_file(TOPOLOGY_DIR, data_root)
    if std_exp_txt is None:
        std_exp_txt = os.path.join(topology_dir, "std_exp.txt")
    front_file = os.path.join(topology_dir, "BFM_front_idx.mat")
    trim_file = os.path.join(topology_dir, "BFM_exp_idx.mat")
    info_file = os.path.join(topology_dir, "facemodel_info.mat")
    trim_index = lu.vector(mat_value(read_mat(trim_file, ["trimIndex"]), "trimIndex", trim_file,
                                     "[V_trim, 1]"), "trimIndex", trim_file, "[V_trim, 1]")
    front_idx = lu.vector(mat_value(read_mat(front_file, ["idx"]), "idx", front_file, "[N, 1]"),
                          "idx", front_file, "[N, 1]")
    front_in_trim = lu.as_indices(front_idx, "idx", front_file, 1, trim_index.size)
    info = read_mat(info_file, ("tri", "frontmask2_idx", "tri_mask2", "skinmask", "keypoints"))

    n = front_in_trim.size
    # The expression files first: they are cheap to check, the BFM is not.
    expression_pcs, _ = read_exp_pca_bin(exp_pca_bin, trim_index.size, expression_rank)
    expression_std = read_std_exp(std_exp_txt, expression_pcs.shape[0])
    expression = (np.asarray(expression_pcs[:, lu.vertex_rows(front_in_trim)], np.float64).T
                  * expression_std)

    bfm = read_bfm2009_mat(morphable_model_mat)
    full_vertices = bfm["shapeMU"].size // 3
    trim_in_full = lu.as_indices(trim_index, "trimIndex", trim_file, 1, full_vertices)
    full_rows = lu.vertex_rows(trim_in_full[front_in_trim])
    keypoints = info.get("keypoints")
    source = ", ".join(os.path.abspath(p) for p in (morphable_model_mat, exp_pca_bin, std_exp_txt,
                                                    topology_dir))
    return lu.build_model(
        morphable_model_mat,
        name="BFM 2009 front (01_MorphableModel.mat + Exp_Pca.bin, Deng's assembly)",
        mean_shape=np.asarray(bfm["shapeMU"][full_rows], np.float64).reshape(n, 3) / UM_PER_MM,
        identity_basis=scaled_columns(bfm["shapePC"], bfm["shapeEV"], "shapeEV",
                                      morphable_model_mat, full_rows, identity_rank, "identity")
        / UM_PER_MM,
        expression_basis=expression / UM_PER_MM,
        mean_albedo=np.asarray(bfm["texMU"][full_rows], np.float64).reshape(n, 3) / 255.0,
        albedo_basis=scaled_columns(bfm["texPC"], bfm["texEV"], "texEV", morphable_model_mat,
                                    full_rows, albedo_rank, "albedo") / 255.0,
        landmarks=bfm_landmarks(n, keypoints, info_file),
        contour_landmarks=np.zeros(0, np.int32),
        uvs=None,
        source=source,
        **deng_topology(info, info_file, n))


MEAN_FILE = os.path.join("bfm09_topology", "bfm09_front_mean.npz")


def load_bfm_mean(data_root=None):
    """The BFM 2009 front mean face without bases (all ranks 0).

    What can be rendered without a BFM licence: Deng's mean shape (the public
    bfm09_front_mean.npz, decimetres x100 -> mm) on MGCNet's 35,709-vertex
    topology, with its front region, skin mask and MGCNet's landmarks, and a
    constant skin tone. Useful for pictures, benchmarks and tests.
    """
    mean_file = paths.data_file(MEAN_FILE, data_root)
    info_file = os.path.join(paths.data_file(TOPOLOGY_DIR, data_root), "facemodel_info.mat")
    mean = lu.npz_value(read_npz(mean_file), "meanshape", mean_file, "the BFM front mean npz")
    mean = lu.vector(mean, "meanshape", mean_file, "[N, 3]", multiple_of=3).reshape(-1, 3)
    n = len(mean)
    info = read_mat(info_file, ("tri", "frontmask2_idx", "tri_mask2", "skinmask"))
    mean_albedo, no_basis = lu.constant_albedo(n)
    return lu.build_model(
        mean_file,
        name="BFM 2009 front mean shape (no bases)",
        mean_shape=np.asarray(mean, np.float64) * MM_PER_DECIMETRE,
        identity_basis=no_basis,
        expression_basis=no_basis,
        mean_albedo=mean_albedo,
        albedo_basis=no_basis,
        landmarks=bfm_landmarks(n),
        contour_landmarks=np.zeros(0, np.int32),
        source=f"{mean_file}, {info_file}",
        **deng_topology(info, info_file, n))

