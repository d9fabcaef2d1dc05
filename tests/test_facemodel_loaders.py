"""Face-model loaders: numbers, frames, round trips and errors.

The real BFM bases are not available. The BFM fixtures are written here, in the
original layouts (MGCNET_REFERENCE.md §2.2 and Appendix F), with h5py,
scipy.io.savemat and ndarray.tofile: the real BFM09 mean shape (3DDFA's
trimmed `u_shp`, micrometres) and Deng's topology from bfm09_topology/, and
random bases with more columns than MGCNet keeps (85 identity, 70 expression,
82 albedo) so that truncation to 80/64/80 is exercised. Deng's assembly is
re-done here, following Appendix F, as the reference for all three BFM loaders.
"""
import os
import subprocess
import sys
import types

import h5py
import numpy as np
import pytest
import scipy.io

from mgc import paths
from mgc.facemodel import (FORMATS, FaceModel, FaceModelError, MGCNET_LANDMARKS_BFM,
                           default_face_model, detect_format, load_bfm2009, load_deng_mat,
                           load_face_model, load_ict_facekit, load_mgcnet_h5, load_surrey)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPOLOGY_DIR = "bfm09_topology/deep3dfacerecon_BFM"

# MGCNET_REFERENCE.md Appendix A, copied from the spec (not from the package).
APPENDIX_A = [
    16645, 16889, 16468, 16265, 32245, 32940, 33376, 33655, 33839, 34023, 34313, 34767, 35473,
    27817, 27609, 27209, 27441, 28112, 28788, 29178, 29383, 29550, 30289, 30455, 30663, 31057,
    31717, 8162, 8178, 8188, 8193, 6516, 7244, 8205, 9164, 9884, 2216, 3887, 4921, 5829, 4802,
    3641, 10456, 11354, 12384, 14067, 12654, 11493, 5523, 6026, 7496, 8216, 8936, 10396, 10796,
    9556, 8837, 8237, 7637, 6916, 5910, 7385, 8224, 9065, 10538, 8830, 8230, 7630]

N_FULL, N_TRIM, N_FRONT = 53490, 53215, 35709
K_ID, K_EXP, K_TEX = 85, 70, 82
ARRAY_FIELDS = ("mean_shape", "identity_basis", "expression_basis", "mean_albedo",
                "albedo_basis", "triangles", "landmarks", "contour_landmarks", "skin_mask",
                "front_vertices", "front_triangles", "uvs")


# --------------------------------------------------------------------------- fixtures

def _mat_indices(name, key):
    values = scipy.io.loadmat(paths.data_file(f"{TOPOLOGY_DIR}/{name}"))[key]
    return np.rint(values).astype(np.int64)


@pytest.fixture(scope="module")
def topology():
    """Deng's index files and the real BFM09 mean (3DDFA trimmed, micrometres)."""
    info = scipy.io.loadmat(paths.data_file(f"{TOPOLOGY_DIR}/facemodel_info.mat"))
    front = _mat_indices("BFM_front_idx.mat", "idx").ravel() - 1      # into 53215
    trim = _mat_indices("BFM_exp_idx.mat", "trimIndex").ravel() - 1   # into 53490
    reference = np.load(paths.data_file("bfm09_topology/bfm09_front_mean.npz"))
    return types.SimpleNamespace(
        info=info, front=front, trim=trim, shape_rows=trim[front],
        u_shp=np.load(paths.data_file("bfm09_topology/3ddfa/u_shp.npy")).reshape(-1, 3),
        u_exp=np.load(paths.data_file("bfm09_topology/3ddfa/u_exp.npy")).reshape(-1),
        meanshape_dm=reference["meanshape"].astype(np.float64),
        keypoints68=reference["keypoints68"])


@pytest.fixture(scope="module")
def bfm_files(tmp_path_factory, topology):
    """01_MorphableModel.mat, Exp_Pca.bin and std_exp.txt in the Appendix F layouts."""
    rng = np.random.default_rng(2009)
    folder = tmp_path_factory.mktemp("bfm2009")
    shape_mu = rng.uniform(-1e5, 1e5, (N_FULL, 3)).astype(np.float32)
    shape_mu[topology.trim] = topology.u_shp          # the real trimmed mean, micrometres
    arrays = {
        "shapeMU": shape_mu.reshape(-1, 1),
        "shapePC": (rng.standard_normal((3 * N_FULL, K_ID)) / 400).astype(np.float32),
        "shapeEV": np.linspace(3e5, 1e4, K_ID, dtype=np.float32).reshape(-1, 1),
        "texMU": rng.uniform(40, 230, (3 * N_FULL, 1)).astype(np.float32),
        "texPC": (rng.standard_normal((3 * N_FULL, K_TEX)) / 400).astype(np.float32),
        "texEV": np.linspace(4e3, 2e2, K_TEX, dtype=np.float32).reshape(-1, 1),
        "tl": rng.integers(1, N_FULL + 1, (106466, 3)).astype(np.float64),
    }
    morphable = folder / "01_MorphableModel.mat"
    scipy.io.savemat(morphable, arrays)
    exp_pcs = (rng.standard_normal((K_EXP, 3 * N_TRIM)) / 400).astype("<f4")
    exp_std = np.linspace(4.5e5, 8e2, K_EXP)
    expression = folder / "Exp_Pca.bin"
    with open(expression, "wb") as file:
        np.array([K_EXP], "<i4").tofile(file)
        topology.u_exp.astype("<f4").tofile(file)
        exp_pcs.tofile(file)
    std = folder / "std_exp.txt"
    np.savetxt(std, exp_std[None], fmt="%.6g")
    return types.SimpleNamespace(morphable=str(morphable), expression=str(expression),
                                 std=str(std), arrays=arrays, exp_pcs=exp_pcs,
                                 exp_std=np.loadtxt(std))


def deng_assembly(bfm_files, topology, ranks=(80, 64, 80)):
    """Deng's BFM_model_front.mat (Appendix F, decimetres and 0..255) from the raw files.

    `ranks` = (identity, expression, texture) columns kept, None = all.
    """
    a = bfm_files.arrays
    rows = topology.shape_rows

    def per_vertex(pcs, scale, vertices, k):
        basis = (pcs.astype(np.float64) * scale.reshape(1, -1))[:, :k]
        return basis.reshape(-1, 3, basis.shape[1])[vertices].reshape(-1, basis.shape[1])

    k_id, k_exp, k_tex = ranks
    info = topology.info
    return {
        "meanshape": (a["shapeMU"].reshape(-1, 3)[rows] / 1e5).reshape(1, -1),
        "meantex": a["texMU"].reshape(-1, 3)[rows].reshape(1, -1),
        "idBase": per_vertex(a["shapePC"], a["shapeEV"], rows, k_id) / 1e5,
        "exBase": per_vertex(bfm_files.exp_pcs.T, bfm_files.exp_std, topology.front, k_exp) / 1e5,
        "texBase": per_vertex(a["texPC"], a["texEV"], rows, k_tex),
        **{key: info[key] for key in ("tri", "point_buf", "tri_mask2", "keypoints",
                                      "frontmask2_idx", "skinmask")},
    }


@pytest.fixture(scope="module")
def deng_file(tmp_path_factory, bfm_files, topology):
    """BFM_model_front.mat with every column (85/70/82), float32 like Deng's."""
    arrays = deng_assembly(bfm_files, topology, ranks=(None, None, None))
    arrays = {key: value.astype(np.float32) if value.dtype == np.float64 else value
              for key, value in arrays.items()}
    path = tmp_path_factory.mktemp("deng") / "BFM_model_front.mat"
    scipy.io.savemat(path, arrays)
    return str(path)


def write_h5(path, datasets):
    with h5py.File(path, "w") as h5:
        for key, value in datasets.items():
            h5.create_dataset(key, data=value)
    return str(path)


@pytest.fixture(scope="module")
def h5_datasets(bfm_files, topology):
    """MGCNet's h5 layout (§2.2) holding the raw PCs and signed pcaVariance."""
    a = bfm_files.arrays
    rows, front = topology.shape_rows, topology.front
    info = topology.info

    def vertex_rows(array, vertices):
        return array.reshape(-1, 3, array.shape[-1])[vertices].reshape(-1, array.shape[-1])

    # MGCNet uses |pcaVariance|: alternate the signs to check the absolute value.
    signs = np.where(np.arange(max(K_ID, K_EXP, K_TEX)) % 2, -1.0, 1.0).astype(np.float32)
    mean_um = a["shapeMU"].reshape(-1, 3)[rows]
    fore = np.rint(info["frontmask2_idx"]).astype(np.int32).ravel() - 1
    uv = np.random.default_rng(7).uniform(0, 1, (N_FRONT, 2)).astype(np.float32)
    return {
        "shape/model/mean": mean_um.reshape(-1),
        "shape/model/pcaBasis": vertex_rows(a["shapePC"], rows),
        "shape/model/pcaVariance": a["shapeEV"].ravel() * signs[:K_ID],
        "shape/representer/tri": np.rint(info["tri"]).astype(np.int32),
        "shape/representer/idx_sub": fore,
        "shape/representer/idx_lm68": np.array(APPENDIX_A, np.int32),
        "shape_fore/model/mean": mean_um[fore].reshape(-1),
        "shape_fore/representer/tri": np.rint(info["tri_mask2"]).astype(np.int32),
        "color/model/mean": a["texMU"].reshape(-1, 3)[rows].reshape(-1),
        "color/model/pcaBasis": vertex_rows(a["texPC"], rows),
        "color/model/pcaVariance": a["texEV"].ravel() * signs[:K_TEX],
        "color/model/uv": uv,
        "expression/model/pcaBasis": vertex_rows(bfm_files.exp_pcs.T, front),
        "expression/model/pcaVariance": bfm_files.exp_std.astype(np.float32) * signs[:K_EXP],
    }


@pytest.fixture(scope="module")
def h5_file(tmp_path_factory, h5_datasets):
    return write_h5(tmp_path_factory.mktemp("h5") / "bfm09_trim_exp_uv_presplit.h5", h5_datasets)


@pytest.fixture(scope="module")
def bfm2009_model(bfm_files):
    return load_bfm2009(bfm_files.morphable, bfm_files.expression, bfm_files.std)


@pytest.fixture(scope="module")
def deng_model(deng_file):
    return load_deng_mat(deng_file)


@pytest.fixture(scope="module")
def h5_model(h5_file):
    return load_mgcnet_h5(h5_file)


@pytest.fixture(scope="module")
def ict_model():
    return load_ict_facekit()


@pytest.fixture(scope="module")
def surrey_model():
    return load_surrey()


def tiny_h5_datasets(n=100, k_id=50, seed=0):
    """A small valid MGCNet-layout model (n vertices, a triangle fan)."""
    rng = np.random.default_rng(seed)
    tri = np.stack([np.zeros(n - 2), np.arange(1, n - 1), np.arange(2, n)], 1) + 1
    fore = np.arange(10, 60)
    mean = rng.uniform(-1e5, 1e5, (n, 3))
    return {
        "shape/model/mean": mean.reshape(-1),
        "shape/model/pcaBasis": rng.standard_normal((3 * n, k_id)),
        "shape/model/pcaVariance": np.ones(k_id),
        "shape/representer/tri": tri.astype(np.int32),
        "shape/representer/idx_sub": fore,
        "shape/representer/idx_lm68": np.arange(68, dtype=np.int32),
        "shape_fore/model/mean": mean[fore].reshape(-1),
        "shape_fore/representer/tri": np.array([[1, 2, 3], [1, 3, 4]], np.int32),
        "color/model/mean": rng.uniform(0, 255, 3 * n),
        "color/model/pcaBasis": rng.standard_normal((3 * n, 90)),
        "color/model/pcaVariance": np.ones(90),
        "color/model/uv": rng.uniform(0, 1, (n, 2)),
        "expression/model/pcaBasis": rng.standard_normal((3 * n, 64)),
        "expression/model/pcaVariance": np.ones(64),
    }


def assert_models_close(actual, expected, rtol=1e-5):
    for field in ("mean_shape", "identity_basis", "expression_basis", "mean_albedo",
                  "albedo_basis"):
        a, e = getattr(actual, field), getattr(expected, field)
        assert a.shape == e.shape, field
        np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * np.abs(e).max(), err_msg=field)
    for field in ("triangles", "landmarks", "front_vertices", "front_triangles"):
        np.testing.assert_array_equal(getattr(actual, field), getattr(expected, field), field)


# --------------------------------------------------------------------------- BFM numbers

def test_bfm2009_mean_is_the_real_mean_in_mm(bfm2009_model, topology):
    assert bfm2009_model.num_vertices == N_FRONT
    np.testing.assert_allclose(bfm2009_model.mean_shape, topology.meanshape_dm * 100, atol=1e-3)


def test_bfm2009_equals_deng_assembly_times_100(bfm2009_model, bfm_files, topology):
    deng = deng_assembly(bfm_files, topology)
    model = bfm2009_model
    assert (model.identity_rank, model.expression_rank, model.albedo_rank) == (80, 64, 80)
    for field, key, scale in (("mean_shape", "meanshape", 100), ("identity_basis", "idBase", 100),
                              ("expression_basis", "exBase", 100),
                              ("mean_albedo", "meantex", 1 / 255),
                              ("albedo_basis", "texBase", 1 / 255)):
        expected = deng[key] * scale
        np.testing.assert_allclose(getattr(model, field).reshape(expected.shape), expected,
                                   rtol=1e-5, atol=1e-6 * np.abs(expected).max(), err_msg=field)


def test_bfm2009_basis_columns_by_formula(bfm2009_model, bfm_files, topology):
    """A few entries computed straight from Appendix F: PC * sigma at the mapped row."""
    a = bfm_files.arrays
    for vertex, axis, column in ((0, 0, 0), (1000, 1, 3), (N_FRONT - 1, 2, 79), (17000, 1, 41)):
        full = topology.trim[topology.front[vertex]]
        row = 3 * vertex + axis
        expected_id = a["shapePC"][3 * full + axis, column] * a["shapeEV"][column, 0] / 1000
        assert bfm2009_model.identity_basis[row, column] == pytest.approx(expected_id, rel=1e-5)
        expected_tex = a["texPC"][3 * full + axis, column] * a["texEV"][column, 0] / 255
        assert bfm2009_model.albedo_basis[row, column] == pytest.approx(expected_tex, rel=1e-5)
        trimmed = topology.front[vertex]
        exp_column = min(column, 63)
        expected_exp = (bfm_files.exp_pcs[exp_column, 3 * trimmed + axis]
                        * bfm_files.exp_std[exp_column] / 1000)
        assert bfm2009_model.expression_basis[row, exp_column] == pytest.approx(expected_exp,
                                                                                rel=1e-5)


def test_bfm2009_does_not_add_the_mean_expression(bfm2009_model, topology):
    offset = topology.u_exp.reshape(-1, 3)[topology.front] / 1000
    assert np.abs(offset).max() > 0.1   # the offset is not negligible, so this can fail
    np.testing.assert_allclose(bfm2009_model.mean_shape, topology.meanshape_dm * 100, atol=1e-3)


@pytest.mark.parametrize("model_fixture", ["bfm2009_model", "deng_model", "h5_model"])
def test_bfm_topology_and_landmarks(model_fixture, request, topology):
    model = request.getfixturevalue(model_fixture)
    info = topology.info
    np.testing.assert_array_equal(model.triangles, info["tri"] - 1)
    np.testing.assert_array_equal(model.landmarks, APPENDIX_A)
    # MGCNet's list is Deng's 1-based keypoints used as 0-based: one vertex after Deng's.
    assert np.all(model.landmarks != topology.keypoints68)
    np.testing.assert_array_equal(model.landmarks, topology.keypoints68 + 1)
    np.testing.assert_array_equal(model.front_vertices, info["frontmask2_idx"].ravel() - 1)
    np.testing.assert_array_equal(model.front_triangles, info["tri_mask2"] - 1)
    assert len(model.front_vertices) == 27660 and len(model.front_triangles) == 54681
    if model_fixture == "h5_model":
        assert np.all(model.skin_mask == 1)          # the h5 has no skin mask
    else:
        np.testing.assert_array_equal(model.skin_mask, info["skinmask"].ravel())


def test_constant_matches_appendix_a():
    np.testing.assert_array_equal(MGCNET_LANDMARKS_BFM, APPENDIX_A)


def test_deng_mat_truncates_and_equals_bfm2009(deng_model, bfm2009_model, topology):
    assert (deng_model.identity_rank, deng_model.expression_rank,
            deng_model.albedo_rank) == (80, 64, 80)
    np.testing.assert_allclose(deng_model.mean_shape, topology.meanshape_dm * 100, atol=1e-3)
    assert_models_close(deng_model, bfm2009_model)


def test_deng_mat_all_columns(deng_file):
    model = load_deng_mat(deng_file, identity_rank=None, albedo_rank=None, expression_rank=None)
    assert (model.identity_rank, model.expression_rank, model.albedo_rank) == (K_ID, K_EXP, K_TEX)


def test_mgcnet_h5_equals_bfm2009(h5_model, bfm2009_model, h5_datasets):
    """Same PCs, |pcaVariance| as sigma: the h5 gives Deng's model x100 too."""
    assert_models_close(h5_model, bfm2009_model)
    np.testing.assert_allclose(h5_model.uvs, h5_datasets["color/model/uv"])


def test_mgcnet_h5_ranks_clamp_to_the_file(tmp_path):
    path = write_h5(tmp_path / "tiny.h5", tiny_h5_datasets(k_id=50))
    assert load_mgcnet_h5(path).identity_rank == 50                  # asked 80, has 50
    assert load_mgcnet_h5(path, identity_rank=None).identity_rank == 50
    assert load_mgcnet_h5(path, identity_rank=30).identity_rank == 30
    model = load_mgcnet_h5(path, albedo_rank=None, expression_rank=None)
    assert (model.albedo_rank, model.expression_rank) == (90, 64)
    with pytest.raises(FaceModelError, match="identity rank"):
        load_mgcnet_h5(path, identity_rank=-2)


def test_mgcnet_h5_one_based_idx_sub_is_detected(tmp_path):
    datasets = tiny_h5_datasets()
    expected = datasets["shape/representer/idx_sub"]
    datasets["shape/representer/idx_sub"] = expected + 1
    model = load_mgcnet_h5(write_h5(tmp_path / "one_based.h5", datasets))
    np.testing.assert_array_equal(model.front_vertices, expected)


def test_mgcnet_h5_wrong_idx_sub_is_an_error(tmp_path):
    datasets = tiny_h5_datasets()
    datasets["shape/representer/idx_sub"] = datasets["shape/representer/idx_sub"] + 5
    with pytest.raises(FaceModelError, match="idx_sub"):
        load_mgcnet_h5(write_h5(tmp_path / "bad.h5", datasets))


# --------------------------------------------------------------------------- errors

def test_h5_missing_dataset_names_its_path(tmp_path):
    datasets = tiny_h5_datasets()
    del datasets["color/model/pcaBasis"]
    with pytest.raises(FaceModelError,
                       match=r"'color/model/pcaBasis' is missing \(expected shape \[3N, K\]"):
        load_mgcnet_h5(write_h5(tmp_path / "missing.h5", datasets))


def test_h5_wrong_shape_names_key_and_expected_shape(tmp_path):
    datasets = tiny_h5_datasets()
    datasets["shape/representer/idx_lm68"] = np.arange(67)
    with pytest.raises(FaceModelError,
                       match=r"'shape/representer/idx_lm68' has shape \[67\], expected \[68\]"):
        load_mgcnet_h5(write_h5(tmp_path / "lm.h5", datasets))


def test_h5_basis_rows_not_3n_is_an_error(tmp_path):
    datasets = tiny_h5_datasets(n=100)
    datasets["expression/model/pcaBasis"] = np.zeros((303, 64))
    with pytest.raises(FaceModelError,
                       match=r"'expression/model/pcaBasis' has shape \[303, 64\], expected "
                             r"\[3N, K\] = \[300, K\]"):
        load_mgcnet_h5(write_h5(tmp_path / "rows.h5", datasets))


def test_h5_short_variance_is_an_error(tmp_path):
    datasets = tiny_h5_datasets(k_id=50)
    datasets["shape/model/pcaVariance"] = np.ones(40)
    with pytest.raises(FaceModelError, match=r"'shape/model/pcaVariance'.*K >= 50"):
        load_mgcnet_h5(write_h5(tmp_path / "variance.h5", datasets))


def test_h5_triangle_out_of_range_is_an_error(tmp_path):
    datasets = tiny_h5_datasets(n=100)
    datasets["shape/representer/tri"][0, 0] = 101
    with pytest.raises(FaceModelError, match=r"'shape/representer/tri'.*\[1, 100\]"):
        load_mgcnet_h5(write_h5(tmp_path / "tri.h5", datasets))


def test_not_an_h5_file(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("hello")
    with pytest.raises(FaceModelError, match="not an HDF5 file"):
        load_mgcnet_h5(str(path))


def test_deng_mat_errors(tmp_path):
    n = 100
    arrays = {"meanshape": np.zeros((1, 3 * n)), "meantex": np.zeros((1, 3 * n)),
              "idBase": np.zeros((3 * n, 80)), "exBase": np.zeros((3 * n + 3, 64)),
              "texBase": np.zeros((3 * n, 80)), "tri": np.array([[1, 2, 3]]),
              "keypoints": np.arange(1, 69)[None], "frontmask2_idx": np.arange(1, 11)[:, None],
              "tri_mask2": np.array([[1, 2, 3]]), "skinmask": np.ones((1, n))}
    scipy.io.savemat(tmp_path / "rows.mat", arrays)
    with pytest.raises(FaceModelError, match=r"'exBase' has shape \[303, 64\], expected "
                                             r"\[3N, K\] = \[300, K\]"):
        load_deng_mat(str(tmp_path / "rows.mat"))
    del arrays["skinmask"]
    arrays["exBase"] = np.zeros((3 * n, 64))
    scipy.io.savemat(tmp_path / "missing.mat", arrays)
    with pytest.raises(FaceModelError, match=r"'skinmask' is missing \(expected shape \[1, 100\]"):
        load_deng_mat(str(tmp_path / "missing.mat"))


def test_exp_pca_bin_of_the_wrong_size_is_an_error(tmp_path, bfm_files):
    path = tmp_path / "Exp_Pca.bin"
    with open(path, "wb") as file:
        np.array([79], "<i4").tofile(file)
        np.zeros(3 * N_TRIM * 10, "<f4").tofile(file)
    with pytest.raises(FaceModelError, match="Exp_Pca.bin of 53215 vertices"):
        load_bfm2009(bfm_files.morphable, str(path), bfm_files.std)


def test_unknown_format_lists_the_known_ones(tmp_path):
    with pytest.raises(FaceModelError, match="known formats: " + ", ".join(FORMATS)):
        load_face_model(str(tmp_path), format="obj")
    path = tmp_path / "model.txt"
    path.write_text("")
    with pytest.raises(FaceModelError, match="mgcnet_h5"):
        detect_format(str(path))


def test_bfm2009_needs_the_expression_basis(bfm_files):
    with pytest.raises(FaceModelError, match="expression_basis"):
        load_face_model(bfm_files.morphable)


def test_saved_model_with_bad_arrays_is_rejected(tmp_path, surrey_model):
    """Inconsistent ranks: a basis whose rows are not 3N."""
    path = tmp_path / "bad.npz"
    surrey_model.save(path)
    arrays = dict(np.load(path))
    arrays["expression_basis"] = arrays["expression_basis"][:-3]
    np.savez(path, **arrays)
    with pytest.raises(FaceModelError, match="expression_basis must have shape"):
        load_face_model(str(path))


# --------------------------------------------------------------------------- ICT and Surrey

def _face_checks(model):
    """The BFM model frame, in mm, for a face with landmarks 8, 27, 30, 36, 45."""
    mean, lm = model.mean_shape, model.landmarks
    assert mean[lm[36], 0] < mean[lm[45], 0]                        # subject's right on -x
    assert mean[lm[8], 1] < mean[lm[36], 1]                         # chin below the eyes
    assert mean[:, 2].max() - mean[lm[30], 2] < 5.0                 # nose tip ~ frontmost
    assert 80 < mean[lm[45], 0] - mean[lm[36], 0] < 110             # outer eye corners, mm
    assert 90 < mean[lm[27], 1] - mean[lm[8], 1] < 150              # nasion to chin, mm


def test_ict(ict_model):
    model = ict_model
    assert model.num_vertices == 9409 and model.num_triangles == 18460
    assert (model.identity_rank, model.expression_rank, model.albedo_rank) == (100, 53, 0)
    assert np.all(model.landmarks >= 0) and len(model.contour_landmarks) == 16
    _face_checks(model)
    raw = np.load(paths.data_file("ict_facekit/ict_face_model_light_face9409.npz"))
    np.testing.assert_allclose(model.mean_shape, raw["neutral"] * 10, rtol=1e-6)
    np.testing.assert_allclose(model.identity_basis[:, 7], raw["id_basis"][7].reshape(-1) * 10,
                               rtol=1e-6)
    np.testing.assert_allclose(model.expression_basis[:, 52],
                               raw["exp_basis"][52].reshape(-1) * 10, rtol=1e-6)
    # per-vertex uvs agree with every corner's uv
    corner_uv = raw["uv"][raw["triangles_uv"].reshape(-1)]
    np.testing.assert_allclose(model.uvs[raw["triangles"].reshape(-1)], corner_uv, atol=1e-6)
    assert model.uvs.min() >= 0 and model.uvs.max() <= 1
    assert np.allclose(model.mean_albedo, model.mean_albedo[0])
    # Front region and skin: the narrow face, without ears and neck.
    narrow = int(raw["narrow_face_num_vertices"])
    np.testing.assert_array_equal(model.front_vertices, np.arange(narrow))
    assert np.all(model.front_triangles < narrow) and len(model.front_triangles) > 0.6 * len(model.triangles)
    np.testing.assert_array_equal(model.skin_mask, np.arange(model.num_vertices) < narrow)
    assert np.all(model.landmarks < narrow)  # every landmark lies on the face


def test_default_face_model_is_ict(ict_model):
    model = default_face_model()
    assert model.name == ict_model.name
    np.testing.assert_array_equal(model.mean_shape, ict_model.mean_shape)


def test_surrey(surrey_model):
    model = surrey_model
    assert model.num_vertices == 3448 and model.num_triangles == 6736
    assert (model.identity_rank, model.expression_rank, model.albedo_rank) == (63, 6, 0)
    missing = [i for i in range(68) if model.landmarks[i] < 0]
    assert missing == list(range(0, 8)) + list(range(9, 17)) + [60, 64]
    assert model.landmarks[8] == 33 and model.landmarks[30] == 114   # ibug_to_sfm.txt
    assert len(model.contour_landmarks) == 34
    _face_checks(model)
    raw = np.load(paths.data_file("surrey_face_model/sfm_shape_3448.npz"))
    for column in (0, 5, 62):
        np.testing.assert_allclose(
            model.identity_basis[:, column],
            raw["orthonormal_pca_basis"][:, column] * np.sqrt(raw["eigenvalues"][column]),
            rtol=1e-5)
    np.testing.assert_allclose(model.expression_basis[:, 3], raw["blendshapes"][3].reshape(-1))
    np.testing.assert_array_equal(model.uvs, raw["texcoords"])


# ------------------------------------------------------------ round trips, dispatcher

@pytest.mark.parametrize("model_fixture", ["ict_model", "surrey_model", "bfm2009_model",
                                           "deng_model", "h5_model"])
def test_round_trip(model_fixture, request, tmp_path):
    model = request.getfixturevalue(model_fixture)
    path = str(tmp_path / "model.npz")
    model.save(path)
    loaded = load_face_model(path)
    for field in ARRAY_FIELDS:
        expected = getattr(model, field)
        if expected is None:
            assert getattr(loaded, field) is None
        else:
            np.testing.assert_array_equal(getattr(loaded, field), expected, field)
    assert (loaded.name, loaded.source) == (model.name, model.source)


def test_dispatcher(tmp_path, h5_file, deng_file, bfm_files, ict_model, surrey_model):
    assert detect_format(h5_file) == "mgcnet_h5"
    assert detect_format(deng_file) == "deng_mat"
    assert detect_format(bfm_files.morphable) == "bfm2009"
    assert load_face_model("ict").num_vertices == ict_model.num_vertices
    surrey_path = paths.data_file("surrey_face_model/sfm_shape_3448.npz")
    assert detect_format(surrey_path) == "surrey"
    model = load_face_model(surrey_path, identity_rank=10)
    assert model.identity_rank == 10 and model.num_vertices == surrey_model.num_vertices
    tiny = write_h5(tmp_path / "tiny.h5", tiny_h5_datasets())
    assert load_face_model(tiny, identity_rank=None).identity_rank == 50
    with pytest.raises(FaceModelError, match="built-in model"):
        load_face_model("ict", format="surrey")
    with pytest.raises(FileNotFoundError):
        load_face_model(str(tmp_path / "absent.npz"))


# --------------------------------------------------------------------------- CLI

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "experiments.convert_face_model", *args],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_cli_converts_then_refuses_to_overwrite(tmp_path):
    output = tmp_path / "surrey.npz"
    result = _cli("--input=surrey", f"--output={output}")
    assert result.returncode == 0, result.stderr
    assert "3448 vertices" in result.stdout and "50/68 landmarks" in result.stdout
    before = output.read_bytes()
    result = _cli("--input=ict", f"--output={output}")
    assert result.returncode != 0
    assert "exists" in result.stderr and "--overwrite" in result.stderr
    assert output.read_bytes() == before
    assert FaceModel.load(str(output)).num_vertices == 3448


# ------------------------------------------------- unreadable files: one-line errors

def _cut(source, target, fraction=0.5):
    """A copy of `source` cut off after `fraction` of its bytes."""
    with open(source, "rb") as stream:
        data = stream.read()
    with open(target, "wb") as stream:
        stream.write(data[:int(len(data) * fraction)])
    return str(target)


def _small_deng_arrays(n=100):
    return {"meanshape": np.zeros((1, 3 * n)), "meantex": np.zeros((1, 3 * n)),
            "idBase": np.zeros((3 * n, 80)), "exBase": np.zeros((3 * n, 64)),
            "texBase": np.zeros((3 * n, 80)), "tri": np.array([[1, 2, 3]]),
            "keypoints": np.arange(1, 69)[None], "frontmask2_idx": np.arange(1, 11)[:, None],
            "tri_mask2": np.array([[1, 2, 3]]), "skinmask": np.ones((1, n))}


def _load_error(path, format=None, **options):
    """The FaceModelError of load_face_model; it must be one line naming the file."""
    with pytest.raises(FaceModelError) as caught:
        load_face_model(str(path), format, **options)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message, message
    return message


@pytest.mark.parametrize("kind", ["mgc", "ict", "surrey", "h5", "mat"])
@pytest.mark.parametrize("given", [False, True])
def test_a_cut_off_file_is_named_as_cut_off(tmp_path, kind, given, surrey_model):
    """load_face_model on a truncated file of each format, with --format given
    or detected: one FaceModelError line, not zipfile's, h5py's or scipy's."""
    if kind == "mgc":
        surrey_model.save(tmp_path / "whole.npz")
        whole = tmp_path / "whole.npz"
    elif kind in ("ict", "surrey"):
        whole = paths.data_file({"ict": "ict_facekit/ict_face_model_light_face9409.npz",
                                 "surrey": "surrey_face_model/sfm_shape_3448.npz"}[kind])
    elif kind == "h5":
        whole = write_h5(tmp_path / "whole.h5", tiny_h5_datasets())
    else:
        whole = tmp_path / "whole.mat"
        scipy.io.savemat(whole, _small_deng_arrays())
    extension = os.path.splitext(str(whole))[1]
    cut = _cut(whole, tmp_path / f"cut{extension}")
    format = {"h5": "mgcnet_h5", "mat": "deng_mat"}.get(kind, kind) if given else None
    assert "cut off" in _load_error(cut, format)


def test_a_corrupt_npz_member_is_named(tmp_path, surrey_model):
    path = tmp_path / "model.npz"
    surrey_model.save(path)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(64)  # np.savez stores members uncompressed, with CRCs
    path.write_bytes(bytes(data))
    assert "corrupt npz" in _load_error(path)


@pytest.mark.parametrize("format, expected", [
    ("ict", "not an ICT-FaceKit npz (an HDF5 file)"),
    ("surrey", "not a Surrey Face Model npz (an HDF5 file)"),
    ("mgc", "not an mgc face-model npz (an HDF5 file)"),
    ("deng_mat", "not a MATLAB file (an HDF5 file)")])
def test_an_h5_file_given_as_another_format_is_named(tmp_path, format, expected):
    path = write_h5(tmp_path / "model.h5", tiny_h5_datasets())
    assert expected in _load_error(path, format)


def test_an_npz_or_npy_given_as_another_format_is_named(tmp_path, surrey_model):
    model = tmp_path / "model.npz"
    surrey_model.save(model)
    assert "not an HDF5 file (an npz (zip) file)" in _load_error(model, "mgcnet_h5")
    assert "key 'neutral' is missing (not an ICT-FaceKit npz?)" in _load_error(model, "ict")
    array = tmp_path / "array.npy"
    np.save(array, np.zeros(3))
    assert "not an mgc face-model npz (a single NumPy array (.npy))" in _load_error(array, "mgc")
    assert "is a folder" in _load_error(tmp_path)


def test_an_npz_of_no_known_format_names_the_keys_it_lacks(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, vertices=np.zeros((3, 3)))
    message = _load_error(path)
    assert "it has keys vertices" in message
    assert "format_version (mgc); neutral, id_basis, exp_basis (ict)" in message


def test_mgc_npz_with_wrong_keys_is_named(tmp_path, surrey_model):
    surrey_model.save(tmp_path / "model.npz")
    arrays = dict(np.load(tmp_path / "model.npz"))
    np.savez(tmp_path / "version.npz", **{**arrays, "format_version": np.array([1, 1])})
    assert "not an mgc face model (format_version None" in _load_error(tmp_path / "version.npz")
    np.savez(tmp_path / "text.npz", **{**arrays, "triangles": np.array(["a", "b", "c"])})
    assert "triangles cannot be read as int32" in _load_error(tmp_path / "text.npz")
    del arrays["skin_mask"]
    np.savez(tmp_path / "missing.npz", **arrays)
    assert "missing key 'skin_mask'" in _load_error(tmp_path / "missing.npz")


def test_bfm_mean_without_its_key_names_it(tmp_path):
    """bfm_mean's npz lacking 'meanshape' (a data root with that file replaced)."""
    root = tmp_path / "data"
    (root / "bfm09_topology").mkdir(parents=True)
    os.symlink(paths.data_file(TOPOLOGY_DIR), root / TOPOLOGY_DIR)
    np.savez(root / "bfm09_topology" / "bfm09_front_mean.npz", triangles=np.zeros((1, 3)))
    with pytest.raises(FaceModelError, match=r"bfm09_front_mean.npz: key 'meanshape' is missing"):
        load_face_model("bfm_mean", data_root=str(root))


def test_surrey_with_a_broken_contour_file_names_it(tmp_path):
    path = tmp_path / "sfm_shape_3448.npz"
    path.write_bytes(open(paths.data_file("surrey_face_model/sfm_shape_3448.npz"), "rb").read())
    (tmp_path / "sfm_model_contours.json").write_text('{"model_contour": ')
    with pytest.raises(FaceModelError, match=r"sfm_model_contours.json: not a readable JSON"):
        load_face_model(str(path), "surrey")


def test_nan_in_an_h5_model_is_an_error(tmp_path):
    """HDF5 keeps no checksums: damaged numbers show up as NaN."""
    datasets = tiny_h5_datasets()
    datasets["color/model/pcaBasis"][5, 2] = np.nan
    assert "albedo_basis holds NaN" in _load_error(write_h5(tmp_path / "nan.h5", datasets))


def test_options_a_format_does_not_take_are_refused():
    with pytest.raises(FaceModelError, match="bfm_mean format takes no option identity_rank"):
        load_face_model("bfm_mean", identity_rank=5)


def _cli_error(result):
    """The one `error:` line of a failed conversion; no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize("case", ["cut_npz", "h5_as_ict", "h5_as_surrey", "missing_input",
                                  "output_exists", "output_is_a_folder"])
def test_cli_errors_are_one_line_and_exit_2(tmp_path, case):
    h5 = write_h5(tmp_path / "model.h5", tiny_h5_datasets())
    cut = _cut(paths.data_file("surrey_face_model/sfm_shape_3448.npz"), tmp_path / "cut.npz")
    output = tmp_path / "out.npz"
    args, expected = {
        "cut_npz": ([f"--input={cut}"], "cut.npz: cut off or corrupt npz"),
        "h5_as_ict": ([f"--input={h5}", "--format=ict"], "not an ICT-FaceKit npz (an HDF5 file)"),
        "h5_as_surrey": ([f"--input={h5}", "--format=surrey"],
                         "not a Surrey Face Model npz (an HDF5 file)"),
        "missing_input": ([f"--input={tmp_path / 'absent.npz'}"], "absent.npz does not exist"),
        "output_exists": (["--input=surrey"], "out.npz exists; pass --overwrite"),
        "output_is_a_folder": (["--input=surrey"], "out.npz is a folder"),
    }[case]
    if case == "output_exists":
        output.write_bytes(b"keep")
    if case == "output_is_a_folder":
        output.mkdir()
    line = _cli_error(_cli(*args, f"--output={output}"))
    assert expected in line, line
    if case == "output_exists":
        assert output.read_bytes() == b"keep"
    assert not [name for name in os.listdir(tmp_path) if "partial" in name]
