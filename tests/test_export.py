"""mgc.export: faithfulness to the released MGCNet's own output files, mesh
and text round trips, and the overlay pictures' arithmetic and orientation."""
import os
import re

import cv2
import numpy as np
import pytest
import scipy.io
import tensorflow as tf
import trimesh

from mgc import export, geometry, paths
from mgc.facemodel import MGCNET_LANDMARKS_BFM
from mgc.render import FaceRender

OFFICIAL = "mgcnet_reference/output_test_one"
STEM = "image00008"


def official(suffix):
    return paths.data_file(os.path.join(OFFICIAL, STEM + suffix))


def lines(path):
    with open(path) as stream:
        return stream.read().splitlines()


# --- Faithfulness: the official output of the released MGCNet ---------------

def test_official_landmarks_and_camera_are_reproduced(tmp_path):
    vertices, _, _ = export.read_ply(official(".ply"))
    camera = export.read_camera(official("_cam.txt"))
    landmarks_3d = vertices[np.asarray(MGCNET_LANDMARKS_BFM)]
    camera_points = geometry.transform_points(landmarks_3d[np.newaxis].astype(np.float32),
                                              camera.pose[np.newaxis].astype(np.float32))
    landmarks_2d = geometry.project_to_image(camera_points, geometry.MGCNET_INTRINSICS)[0]

    export.write_landmarks(tmp_path / "lm3d.txt", landmarks_3d)
    export.write_landmarks(tmp_path / "lm2d.txt", landmarks_2d)
    export.write_camera(tmp_path / "cam.txt", camera.pose, geometry.MGCNET_INTRINSICS)

    # The PLY's float32 vertices printed with %f: the official lm3d values up
    # to %f's rounding (Appendix E: 1.4e-6).
    np.testing.assert_allclose(export.read_landmarks(tmp_path / "lm3d.txt"),
                               export.read_landmarks(official("_lm3d.txt")), atol=1e-4, rtol=0)
    # Float32 projection at f = 4700 and z ~ 5000 mm: a few 1e-5 px.
    np.testing.assert_allclose(export.read_landmarks(tmp_path / "lm2d.txt"),
                               export.read_landmarks(official("_lm2d.txt")), atol=1e-3, rtol=0)
    ours, theirs = export.read_camera(tmp_path / "cam.txt"), camera
    assert (ours.width, ours.height) == (theirs.width, theirs.height) == (224, 224)
    np.testing.assert_array_equal(ours.intrinsic_matrix, theirs.intrinsic_matrix)
    np.testing.assert_array_equal(ours.pose, theirs.pose)
    # Text: the camera is byte for byte the same; landmark lines have the same
    # layout and are identical wherever the numbers print the same.
    assert (tmp_path / "cam.txt").read_bytes() == open(official("_cam.txt"), "rb").read()
    for name, dims in (("lm3d", 3), ("lm2d", 2)):
        mine, theirs_lines = lines(tmp_path / f"{name}.txt"), lines(official(f"_{name}.txt"))
        assert len(mine) == len(theirs_lines) == 69 and mine[0] == theirs_lines[0] == "68"
        pattern = re.compile(",".join([r"-?\d+\.\d{6}"] * dims) + "$")
        for line_mine, line_theirs in zip(mine[1:], theirs_lines[1:]):
            assert pattern.match(line_mine) and pattern.match(line_theirs)
            if np.array_equal(np.float64(line_mine.split(",")),
                              np.float64(line_theirs.split(","))):
                assert line_mine == line_theirs
    assert (tmp_path / "lm3d.txt").read_bytes() == open(official("_lm3d.txt"), "rb").read()


def test_official_ply_topology_is_deng_tri_minus_one():
    vertices, triangles, colors = export.read_ply(official(".ply"))
    info = scipy.io.loadmat(paths.data_file(
        "bfm09_topology/deep3dfacerecon_BFM/facemodel_info.mat"))
    assert vertices.shape == (35709, 3) and colors is None  # the committed file is xyz only
    np.testing.assert_array_equal(triangles, info["tri"].astype(np.int64) - 1)


def test_camera_file_round_trip_is_byte_for_byte(tmp_path):
    camera = export.read_camera(official("_cam.txt"))
    export.write_camera(tmp_path / "cam.txt", camera.pose, export.intrinsics_from_camera(camera))
    assert (tmp_path / "cam.txt").read_bytes() == open(official("_cam.txt"), "rb").read()


# --- Text files ---------------------------------------------------------------

@pytest.mark.parametrize("dims", [2, 3])
def test_landmark_text_round_trip(tmp_path, dims):
    points = np.random.default_rng(dims).normal(scale=100.0, size=(68, dims))
    export.write_landmarks(tmp_path / "deep" / "lm.txt", tf.constant(points, tf.float32))
    np.testing.assert_allclose(export.read_landmarks(tmp_path / "deep" / "lm.txt"),
                               points.astype(np.float32), atol=5.1e-7, rtol=0)  # %f rounding
    assert lines(tmp_path / "deep" / "lm.txt")[0] == "68"


def test_missing_landmarks_round_trip_as_nan(tmp_path):
    points = np.array([[1.0, 2.0], [np.nan, np.nan]])
    export.write_landmarks(tmp_path / "lm.txt", points)
    assert lines(tmp_path / "lm.txt") == ["2", "1.000000,2.000000", "nan,nan"]
    np.testing.assert_array_equal(export.read_landmarks(tmp_path / "lm.txt"), points)


@pytest.mark.parametrize("text, line, fragment", [
    ("3\n1.0,2.0\n1.0,oops\n5.0,6.0\n", 3, "not a number"),
    ("3\n1.0,2.0\n3.0,4.0\n", 4, "header says 3"),
    ("three\n1.0,2.0\n", 1, "number of points"),
    ("2\n1.0,2.0\n3.0,4.0,5.0\n", 3, "expected 2"),
    ("2\n1.0,2.0\n3.0,inf\n", 3, "non-finite"),
])
def test_malformed_landmarks_name_file_and_line(tmp_path, text, line, fragment):
    path = tmp_path / "bad_lm2d.txt"
    path.write_text(text)
    with pytest.raises(export.MgcnetTextError, match=re.escape(f"{path}:{line}:") + ".*" +
                       fragment):
        export.read_landmarks(path)


@pytest.mark.parametrize("broken_line, replacement, fragment", [
    (1, "224", "width height"),
    (4, "extrinsic", "'external'"),
    (5, "0.1,0.2,0.3,1,2", "6 comma-separated"),
    (3, "4700,0,112,0,4700,112,0,0,nan", "non-finite"),
])
def test_malformed_camera_names_file_and_line(tmp_path, broken_line, replacement, fragment):
    text = lines(official("_cam.txt"))
    text[broken_line - 1] = replacement
    path = tmp_path / "bad_cam.txt"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(export.MgcnetTextError, match=re.escape(f"{path}:{broken_line}:") +
                       ".*" + fragment):
        export.read_camera(path)


# --- Meshes -------------------------------------------------------------------

def small_mesh(seed=0):
    """A random closed-ish mesh: an octahedron with random colours."""
    vertices = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                        np.float64) * 50.0 + 0.123456
    triangles = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                          [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]], np.int32)
    colors = np.random.default_rng(seed).uniform(size=(6, 3))
    return vertices, triangles, colors


def test_obj_round_trip_with_vertex_colours(tmp_path):
    vertices, triangles, colors = small_mesh()
    export.write_obj(tmp_path / "sub" / "mesh.obj", vertices, triangles, colors)
    read = export.read_obj(tmp_path / "sub" / "mesh.obj")
    np.testing.assert_allclose(read[0], vertices, atol=1e-6)
    np.testing.assert_array_equal(read[1], triangles)
    np.testing.assert_allclose(read[2], colors, atol=1e-6)
    assert read[3] is None
    # A third-party reader sees the same mesh and colours, in order.
    mesh = trimesh.load(tmp_path / "sub" / "mesh.obj", process=False, maintain_order=True)
    np.testing.assert_allclose(mesh.vertices, vertices, atol=1e-6)
    np.testing.assert_array_equal(mesh.faces, triangles)
    np.testing.assert_allclose(mesh.visual.vertex_colors[:, :3] / 255.0, colors, atol=1 / 255)


def test_float_rows_are_the_characters_percent_f_writes():
    """The vectorised formatter of OBJ numbers against Python's '%.6f':
    exact ties (k + 0.5) * 1e-6 round half to even, negative zero and
    numbers that round to zero keep the sign, widths vary per column."""
    from mgc.export.mesh_io import format_float_rows
    rng = np.random.default_rng(3)
    exact = rng.integers(-10 ** 9, 10 ** 9, size=(5000, 3)) / 2.0 ** rng.integers(0, 30, (5000, 3))
    ties = [[0.5e-6, 1.5e-6, -2.5e-6], [-0.0, 0.0, -1e-9], [123456.5, -999.9999995, 1e6],
            [9.9999995, 0.0000005, -1e-7]]
    rows = np.concatenate([exact, ties]).astype(np.float32).astype(np.float64)
    expected = "".join("v %.6f %.6f %.6f\n" % tuple(row) for row in rows)
    assert format_float_rows("v", rows) == expected
    # Values float32 cannot hold exactly, or too large: Python's formatting.
    other = np.array([[0.1, 1e12], [1 / 3, -2.0 ** 40]])
    assert format_float_rows("vt", other) == "".join("vt %.6f %.6f\n" % tuple(r) for r in other)
    assert format_float_rows("v", np.zeros((0, 3))) == ""


def test_obj_with_uvs_writes_material_and_texture(tmp_path):
    vertices, triangles, colors = small_mesh()
    uvs = np.random.default_rng(1).uniform(size=(6, 2))
    texture = export.bake_texture(uvs, triangles, colors, size=32)
    export.write_obj(tmp_path / "face.obj", vertices, triangles, uvs=uvs, texture=texture)
    assert "map_Kd face.png" in (tmp_path / "face.mtl").read_text()
    assert (tmp_path / "face.png").exists()
    text = (tmp_path / "face.obj").read_text()
    assert "mtllib face.mtl" in text and "f 1/1 3/3 5/5" in text
    read = export.read_obj(tmp_path / "face.obj")
    np.testing.assert_allclose(read[3], uvs, atol=1e-6)
    np.testing.assert_array_equal(read[4], triangles)
    mesh = trimesh.load(tmp_path / "face.obj", process=False)
    assert mesh.visual.kind == "texture"
    assert np.asarray(mesh.visual.material.image).shape[:2] == (32, 32)


def test_obj_with_seamed_uvs(tmp_path):
    vertices, triangles, _ = small_mesh()
    uvs = np.random.default_rng(2).uniform(size=(24, 2))  # one UV per corner
    uv_triangles = np.arange(24).reshape(8, 3)
    export.write_obj(tmp_path / "seams.obj", vertices, triangles, uvs=uvs,
                     uv_triangles=uv_triangles)
    read = export.read_obj(tmp_path / "seams.obj")
    np.testing.assert_array_equal(read[1], triangles)
    np.testing.assert_array_equal(read[4], uv_triangles)
    with pytest.raises(ValueError, match="per-vertex uvs"):
        export.write_obj(tmp_path / "bad.obj", vertices, triangles, uvs=uvs)


def test_ply_round_trip_keeps_order_and_colours(tmp_path):
    vertices, triangles, colors = small_mesh(3)
    export.write_ply(tmp_path / "mesh.ply", vertices, triangles, colors)
    header = (tmp_path / "mesh.ply").read_bytes().split(b"end_header")[0]
    assert b"binary_little_endian" in header
    assert b"property uchar red" in header and b"property uchar alpha" in header
    read_vertices, read_triangles, read_colors = export.read_ply(tmp_path / "mesh.ply")
    np.testing.assert_allclose(read_vertices, vertices, rtol=1e-6)  # float32 in the file
    np.testing.assert_array_equal(read_triangles, triangles)
    np.testing.assert_allclose(read_colors, colors, atol=0.5 / 255 + 1e-6)
    export.write_ply(tmp_path / "plain.ply", vertices, triangles)
    assert export.read_ply(tmp_path / "plain.ply")[2] is None


def test_ply_records_are_those_trimesh_writes(tmp_path):
    # MGCNet writes its PLY through trimesh: the same vertex and face records
    # (byte for byte), colours rounded as trimesh rounds them, NaN as 0.
    vertices, triangles, colors = small_mesh(5)
    colors[0] = [np.nan, 1.2, -0.1]
    for name, shade in (("lit", colors), ("plain", None)):
        export.write_ply(tmp_path / f"{name}.ply", vertices, triangles, shade)
        theirs = trimesh.Trimesh(vertices.astype(np.float32), triangles, process=False,
                                 vertex_colors=None if shade is None else np.clip(shade, 0, 1))
        ours_header, ours = (tmp_path / f"{name}.ply").read_bytes().split(b"end_header\n")
        their_header, their_records = theirs.export(file_type="ply",
                                                    encoding="binary").split(b"end_header\n")
        assert ours == their_records
        drop_comments = lambda text: [line for line in text.split(b"\n")  # noqa: E731
                                      if not line.startswith(b"comment")]
        assert drop_comments(ours_header) == drop_comments(their_header)


def test_bake_texture_is_top_down_and_interpolates():
    # Two triangles covering the whole UV square; red at v = 1 (top), blue at v = 0.
    uvs = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float64)
    triangles = np.array([[0, 1, 2], [0, 2, 3]], np.int32)
    colors = np.array([[0, 0, 1], [0, 0, 1], [1, 0, 0], [1, 0, 0]], np.float64)
    texture = export.bake_texture(uvs, triangles, colors, size=(8, 4))
    assert texture.shape == (8, 4, 3)
    # Texel row r (top-down) has centre v = 1 - (r + 0.5) / 8.
    expected_red = 1.0 - (np.arange(8) + 0.5) / 8.0
    np.testing.assert_allclose(texture[:, 2, 0], expected_red, atol=1e-5)
    np.testing.assert_allclose(texture[..., 0] + texture[..., 2], 1.0, atol=1e-5)


def test_bake_texture_pads_uncovered_texels():
    uvs = np.array([[0.1, 0.1], [0.4, 0.1], [0.1, 0.4]])
    colors = np.full((3, 3), 0.25)
    texture = export.bake_texture(uvs, [[0, 1, 2]], colors, size=16)
    np.testing.assert_allclose(texture, 0.25, atol=1e-6)
    unpadded = export.bake_texture(uvs, [[0, 1, 2]], colors, size=16, padding=False)
    assert unpadded[0, -1].sum() == 0 and unpadded[-3, 2, 0] == pytest.approx(0.25)


def test_texture_baker_is_the_per_texel_sum_and_checks_colours():
    vertices, triangles, _ = small_mesh()
    rng = np.random.default_rng(4)
    uvs = rng.uniform(0.05, 0.95, size=(len(vertices), 2))
    baker = export.TextureBaker(uvs, triangles, size=(12, 20))
    from mgc.export import mesh_io
    barycentrics, corners = mesh_io._uv_raster(uvs, np.asarray(triangles, np.int64),
                                               np.asarray(triangles, np.int64), 20, 12, True)
    for _ in range(2):  # one raster, several colourings
        colors = rng.uniform(size=(len(vertices), 3)).astype(np.float32)
        expected = sum(barycentrics[..., k, None] * colors[corners[..., k]] for k in range(3))
        np.testing.assert_allclose(baker(colors), expected[::-1], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(export.bake_texture(uvs, triangles, colors, size=(12, 20)),
                                  baker(colors))
    with pytest.raises(ValueError, match=r"colors must have shape \[6, 3\]"):
        baker(colors[:5])


# --- Overlays -----------------------------------------------------------------

def test_to_uint8_is_convert_image_dtype():
    values = np.array([[[-0.5, 0.0, 0.5], [0.999, 1.0, 7.0]]], np.float32)
    np.testing.assert_array_equal(export.to_uint8(values), [[[0, 0, 127], [255, 255, 255]]])
    expected = tf.image.convert_image_dtype(np.clip(values, 0, 1), tf.uint8).numpy()
    np.testing.assert_array_equal(export.to_uint8(values), expected)


def test_composite_math_on_a_tiny_example():
    render = np.array([[[0.5, 0.5, 0.5], [2.0, 0.0, 0.0]]], np.float32)
    mask = np.array([[[1.0], [1.0]]], np.float32)
    image = np.array([[[10, 20, 30], [40, 50, 60]]], np.uint8)
    np.testing.assert_array_equal(export.composite(render, mask, image),
                                  [[[127, 127, 127], [255, 0, 0]]])
    # Off the face the crop comes back unchanged (uint8 -> /255 -> x255.5 trunc).
    every_value = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=-1)
    out = export.composite(np.zeros((16, 16, 3)), np.zeros((16, 16, 1)), every_value)
    np.testing.assert_array_equal(out, every_value)
    half = export.composite(np.ones((1, 1, 3)), np.full((1, 1, 1), 0.5), np.zeros((1, 1, 3)))
    np.testing.assert_array_equal(half, [[[127, 127, 127]]])


def test_paste_back_with_a_translation_puts_the_render_in_place():
    original = np.full((12, 16, 3), 40, np.uint8)
    overlay = np.full((4, 4, 3), 40, np.uint8)
    overlay[1:3, 1:3] = [200, 100, 0]
    mask = np.zeros((4, 4, 1), np.float32)
    mask[1:3, 1:3] = 1.0
    # The crop was warpAffine(original, M): crop (x, y) = original (x - 5, y - 3).
    crop_matrix = np.array([[1, 0, -5], [0, 1, -3], [0, 0, 1]], np.float64)
    out = export.paste_back(overlay, mask, original, crop_matrix)
    assert out.shape == (12, 16, 3) and out.dtype == np.uint8
    expected = original.copy()
    expected[4:6, 6:8] = [200, 100, 0]
    np.testing.assert_array_equal(out, expected)


def full_frame_paste(overlay, mask, original, crop_matrix):
    """The original's paste-back over the whole photo (§7), for reference."""
    inverse = np.linalg.inv(crop_matrix)[:2]
    size = (original.shape[1], original.shape[0])
    warp = lambda image: cv2.warpAffine(image, inverse, size, flags=cv2.INTER_LINEAR,  # noqa: E731
                                        borderMode=cv2.BORDER_REPLICATE)
    warped_mask = warp(np.repeat(mask, 3, axis=-1))
    return ((warp(overlay) * warped_mask).astype(np.uint8)
            + ((1.0 - warped_mask) * original).astype(np.uint8))


def test_paste_back_all_warps_only_the_crops_footprint():
    rng = np.random.default_rng(7)
    lit, gray = (rng.integers(0, 256, size=(300, 420, 3), dtype=np.uint8) for _ in range(2))
    overlays = [rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8) for _ in range(2)]
    mask = np.zeros((224, 224, 1), np.float32)
    mask[1:-1, 1:-1] = rng.uniform(size=(222, 222, 1))  # cleared border, as results writes
    angle, scale = 0.3, 1.7  # photo -> crop: turned, enlarged, the face near a corner
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    for offset in ([-150.0, 40.0], [-560.0, -300.0]):  # inside the photo; partly outside
        crop_matrix = np.vstack([np.column_stack([rotation, offset]), [0, 0, 1]])
        pasted = export.paste_back_all(overlays, mask, [lit, gray], crop_matrix)
        for overlay, photo, ours in zip(overlays, (lit, gray), pasted):
            expected = full_frame_paste(overlay, mask, photo, crop_matrix)
            difference = np.abs(ours.astype(int) - expected)
            assert difference.max() <= 1 and (difference > 0).mean() < 0.01
            assert not np.array_equal(ours, photo)  # the face is in it
        assert np.array_equal(export.paste_back(overlays[0], mask, lit, crop_matrix), pasted[0])


def test_save_image_refuses_to_overwrite(tmp_path):
    picture = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = tmp_path / "new" / "picture.png"
    export.save_image(path, picture)
    from PIL import Image
    np.testing.assert_array_equal(np.asarray(Image.open(path)), picture)
    with pytest.raises(FileExistsError, match="overwrite=False"):
        export.save_image(path, picture, overwrite=False)
    export.save_image(path, picture[::-1])  # overwrite=True is the default
    export.save_image(tmp_path / "gray.jpg", np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="extension"):
        export.save_image(tmp_path / "picture.bmp", picture)


# --- Overlay sets on the BFM mean face -----------------------------------------

@pytest.fixture(scope="module")
def mean_face():
    """FaceRender-like fields of the BFM mean face (mm), constant albedo,
    ambient SH light, turned by 10 degrees of yaw; and its triangles."""
    data = np.load(paths.data_file("bfm09_topology/bfm09_front_mean.npz"))
    vertices = tf.constant(data["meanshape"][np.newaxis] * 100.0, tf.float32)
    triangles = data["triangles"].astype(np.int32)
    normals = geometry.vertex_normals(vertices, triangles)
    albedo = tf.fill(tf.shape(vertices), 0.7)
    shading = geometry.sh_shading(normals, tf.zeros([1, 27]))
    pose = tf.constant([geometry.DEFAULT_POSE], tf.float32) + [[0, 0.17, 0, 0, 0, 0]]
    face = FaceRender(vertices, normals, albedo, shading, albedo * shading, pose,
                      *[None] * 6)
    return face, triangles


def test_overlay_set_pictures(mean_face):
    face, triangles = mean_face
    crop = np.random.default_rng(0).integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    pictures = export.overlay_set(face, triangles, crop)
    assert set(pictures) == {"overlay", "overlayTex", "overlayLight", "overlayGeo", "overlayMain",
                             "overlayTexMain", "overlayLightMain", "overlayGeoMain", "mask"}
    for picture in pictures.values():
        assert picture.shape == (224, 224, 3) and picture.dtype == np.uint8
    face_pixels = pictures["mask"][..., 0] == 255
    assert 0.2 < face_pixels.mean() < 0.6
    for name in ("overlay", "overlayTex", "overlayLight", "overlayGeo"):
        np.testing.assert_array_equal(pictures[name][~face_pixels], crop[~face_pixels])
    # Albedo 0.7 everywhere on the face: trunc(0.7 * 255.5) = 178.
    assert np.all(pictures["overlayTex"][face_pixels] == 178)
    assert np.all(pictures["overlayTexMain"][pictures["overlayTexMain"].sum(-1) > 0] == 178)
    # Main renders are frontal: symmetric silhouette, on black.
    main_mask = pictures["overlayTexMain"][..., 0] > 0
    assert abs(int(main_mask[:, :112].sum()) - int(main_mask[:, 112:].sum())) < 0.02 * \
        main_mask.sum()
    assert pictures["overlayMain"][0, 0].tolist() == [0, 0, 0]
    # Upright: the forehead (top rows) is wider-drawn than the chin (bottom rows).
    rows = np.nonzero(main_mask.any(axis=1))[0]
    top, bottom = rows.min(), rows.max()
    assert main_mask[top + 10].sum() > main_mask[bottom - 5].sum()


def test_multi_pose_strip_and_turntable(mean_face):
    face, triangles = mean_face
    crop = np.full((224, 224, 3), 90, np.uint8)
    strip = export.multi_pose_strip(face, triangles, crop)
    assert strip.shape == (224, 6 * 224, 3)
    pictures = export.overlay_set(face, triangles, crop)
    panels = np.split(strip, 6, axis=1)
    np.testing.assert_array_equal(panels[0], crop)
    np.testing.assert_array_equal(panels[1], pictures["overlay"])
    np.testing.assert_array_equal(panels[2], pictures["overlayGeo"])
    np.testing.assert_array_equal(panels[4], pictures["overlayMain"])
    assert not np.array_equal(panels[3], panels[5])
    # What a reconstruction writes comes from fewer renders, and is the same.
    written = export.result_pictures(face, triangles, crop)
    for name in ("overlay", "overlayGeo", "mask"):
        np.testing.assert_array_equal(written[name], pictures[name])
    np.testing.assert_array_equal(written["mulPoses"], strip)

    table = export.turntable(face, triangles, yaw_degrees=(-45, 0, 45))
    assert table.shape == (224, 3 * 224, 3)
    views = np.split(table, 3, axis=1)
    # Yaw 0 is exactly the default pose.
    np.testing.assert_array_equal(views[1], pictures["overlayMain"])
    # +45 deg shows the face turned the other way from -45 deg: mirror images
    # of nearly the same silhouette (the mean face is nearly symmetric).
    left, right = views[0][..., 0] > 0, views[2][..., 0] > 0
    assert (left != right[:, ::-1]).mean() < 0.02
    assert (left != right).mean() > 0.05
    gray = export.turntable(face, triangles, yaw_degrees=(0,), appearance="gray")
    np.testing.assert_array_equal(gray, pictures["overlayGeoMain"])


# --- <stem>_lm68.txt: the fixed 3-D jaw in AFLW2000-3D's convention -------------

def test_lm68_holds_the_keypoints_and_the_npz_the_silhouette_points(tmp_path):
    """lm68.txt and the npz's landmarks_* are the fit's keypoints_2d (fixed
    3-D jaw as deep as BFM09's, which AFLW2000-3D marks) mapped to the photo;
    the outline jaw points stay in the npz as silhouette_landmarks_*."""
    from mgc.export import results
    from mgc.facemodel import load_face_model
    from mgc.fitting import FitSettings, fit_faces
    from mgc.fitting.keypoints import keypoint_vertices
    from mgc.preprocess import PreparedFace, transform_points

    model = load_face_model("ict")
    crop = np.full((224, 224, 3), 128, np.uint8)
    targets = np.full((1, 68, 2), np.nan, np.float32)
    targets[0, :, 0], targets[0, :, 1] = np.linspace(60, 160, 68), np.linspace(70, 170, 68)
    fit = fit_faces(crop[None], targets, model, FitSettings().with_total_steps(0))
    crop_matrix = np.array([[0.5, 0.0, -20.0], [0.0, 0.5, 10.0], [0.0, 0.0, 1.0]])
    face = PreparedFace(box=None, landmarks68=None, points5=np.zeros((5, 2)),
                        landmark_source="file", crop=crop, crop_matrix=crop_matrix,
                        crop_landmarks68=targets[0])
    outputs = results.write_face_results(str(tmp_path), "face", 0, face, fit, 0, model, "ict")
    lm68 = results.read_lm68(tmp_path / outputs.files["lm68"])
    to_photo = np.linalg.inv(crop_matrix)
    np.testing.assert_allclose(lm68, transform_points(fit.keypoints_2d[0], to_photo), atol=1e-3)
    saved = np.load(tmp_path / outputs.files["npz"])
    np.testing.assert_allclose(saved["landmarks_image"], lm68, atol=1e-3)
    np.testing.assert_allclose(saved["silhouette_landmarks_image"],
                               transform_points(fit.silhouette_landmarks_2d[0], to_photo),
                               atol=1e-3)
    # ICT's keypoint jaw is not its own jaw landmarks (they lie ~19 mm apart,
    # the chin, an anchor of the alignment, aside): lm68's jaw lies well
    # away from the fixed model landmarks', the inner points near them.
    sides = np.r_[0:8, 9:17]
    assert np.all(keypoint_vertices(model)[sides] != model.landmarks[sides])
    own = transform_points(fit.landmarks_2d[0], to_photo)
    jaw_shift = np.linalg.norm(lm68[sides] - own[sides], axis=1).mean()
    inner_shift = np.linalg.norm(lm68[17:] - own[17:], axis=1).mean()
    assert jaw_shift > 3 * inner_shift
