"""The files of one reconstructed picture: meshes, coefficients, MGCNet's text
files, landmarks in the photo's pixels and the pictures people open.

Layout of one picture's folder `<output>/<stem>/` (stem = the picture's file
name without extension, made unique by the caller). Face k of the picture
(largest first) uses the prefix P = `<stem>` for k = 0, as MGCNet names its
files, and P = `<stem>_face<k>` for k >= 1:

    P.obj              mesh, model frame (mm, not posed), vertex colour = albedo;
    P.mtl, P.png       with a UV texture (the albedo baked) when the model has UVs
    P.ply              MGCNet's PLY: model frame, vertex colour = lit colour
    P_coeffs.npz       coefficients and everything needed to use them (see below)
    P_cam.txt          MGCNet camera: crop size, K, absolute pose
    P_lm2d.txt         MGCNet: 68 model landmarks projected into the 224 crop
    P_lm3d.txt         MGCNet: 68 model landmarks, model frame (mm)
    P_lm68.txt         68 landmarks in the original photo's pixels, one `x y`
                       per line in iBUG order: the fitted model's fixed points
                       in the BFM09 keypoints' convention, the 3-D jaw line
                       that AFLW2000-3D marks, also where it is hidden
                       (FitResult.keypoints_2d); `nan nan` where the model
                       has no such point
    P_depth.png        the crop's depth map: 16-bit PNG, camera z in whole mm,
                       0 on background (read_depth_png)
    P_depth.jpg        the same as a coloured preview (near = warm)
    P_overlay.jpg      lit face over the crop; P_overlayGeo.jpg gray geometry
    P_mulPoses.jpg     crop, overlays and three poses in one row (MGCNet's)

and once per picture:

    <stem>_input.jpg             the input, at most INPUT_PREVIEW_SIDE pixels
    <stem>_overlayOrigin.jpg     every face's lit overlay pasted into the photo
    <stem>_overlayGeoOrigin.jpg  the same with the gray geometry
                                 (unlike MGCNet's, the face stops at the crop's
                                 edge instead of smearing its edge pixels outwards)

P_coeffs.npz holds: coefficients [K] and layout_sizes [5] (identity, albedo,
expression, pose, lighting), pose [6] (absolute [rz, ry, rx, tx, ty, tz]),
intrinsic_matrix [3, 3] (crop camera), crop_matrix [3, 3] (photo -> crop
pixels), landmarks_crop / landmarks_image [68, 2] (fitted, as P_lm68.txt),
silhouette_landmarks_crop / silhouette_landmarks_image [68, 2] (fitted, jaw
points on the face's outline, where 2-D annotations such as 300-W's put them),
target_landmarks_crop / target_landmarks_image [P, 2] (detected or read, 68
or 5 points), vertex_albedo [N, 3], landmark_error (crop pixels), face_model.

Writers refuse to replace an existing file unless overwrite=True.
"""
import dataclasses
import os
from typing import Dict

import cv2
import numpy as np

from mgc import geometry
from mgc.export.mesh_io import TextureBaker, write_obj, write_ply
from mgc.export.mgcnet_text import write_camera, write_landmarks
from mgc.export.overlays import paste_back_all, result_pictures, save_image
from mgc.preprocess import invert, transform_points

INPUT_PREVIEW_SIDE = 1024
TEXTURE_SIZE = 512


def face_prefix(stem, face_index):
    """File prefix of face `face_index` of a picture (see the module docstring)."""
    return stem if face_index == 0 else f"{stem}_face{face_index}"


def face_file_names(stem, face_index, with_texture):
    """Names (relative to the picture's folder) of one face's files, by kind."""
    prefix = face_prefix(stem, face_index)
    names = dict(obj=f"{prefix}.obj", ply=f"{prefix}.ply", npz=f"{prefix}_coeffs.npz",
                 cam=f"{prefix}_cam.txt", lm2d=f"{prefix}_lm2d.txt", lm3d=f"{prefix}_lm3d.txt",
                 lm68=f"{prefix}_lm68.txt", depth=f"{prefix}_depth.png",
                 depth_preview=f"{prefix}_depth.jpg", overlay=f"{prefix}_overlay.jpg",
                 overlay_geo=f"{prefix}_overlayGeo.jpg", multi_pose=f"{prefix}_mulPoses.jpg")
    if with_texture:
        names.update(mtl=f"{prefix}.mtl", texture=f"{prefix}.png")
    return names


def image_file_names(stem):
    """Names of the per-picture files, by kind."""
    return dict(input=f"{stem}_input.jpg", overlay_origin=f"{stem}_overlayOrigin.jpg",
                overlay_geo_origin=f"{stem}_overlayGeoOrigin.jpg")


@dataclasses.dataclass
class FaceOutputs:
    """What write_face_results wrote and what the picture-level files need.

    Attributes:
      files: kind -> file name relative to the picture's folder.
      landmark_error: mean landmark distance of the fit (crop pixels).
      landmarks_image: [68, 2] fitted landmarks in the photo's pixels.
      overlay, overlay_geo, mask: uint8 [224, 224, 3] crop-space pictures
        for the paste-back.
      crop_matrix: [3, 3] photo -> crop.
    """
    files: Dict[str, str]
    landmark_error: float
    landmarks_image: np.ndarray
    overlay: np.ndarray
    overlay_geo: np.ndarray
    mask: np.ndarray
    crop_matrix: np.ndarray


def check_writable(paths, overwrite):
    """Raises FileExistsError naming the first existing path, unless overwrite."""
    if overwrite:
        return
    for path in paths:
        if os.path.exists(path):
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")


def fit_target_landmarks(prepared_face):
    """Landmarks the fit uses, crop pixels: the 68 when known, else the 5 points."""
    if prepared_face.crop_landmarks68 is not None:
        return np.asarray(prepared_face.crop_landmarks68, np.float32)
    return transform_points(prepared_face.points5, prepared_face.crop_matrix).astype(np.float32)


def _silhouette_landmarks(fit_result, b):
    # Fits made before the fitter returned silhouette landmarks only have the fixed ones.
    landmarks = getattr(fit_result, "silhouette_landmarks_2d", None)
    return np.asarray(fit_result.landmarks_2d[b] if landmarks is None else landmarks[b], np.float64)


def _keypoint_landmarks(fit_result, b):
    # The fixed 3-D jaw in BFM09's convention; results without it (a network's,
    # older fits) have the model's fixed landmarks.
    landmarks = getattr(fit_result, "keypoints_2d", None)
    return np.asarray(fit_result.landmarks_2d[b] if landmarks is None else landmarks[b], np.float64)


def _numpy(value):
    return np.asarray(value.numpy() if hasattr(value, "numpy") else value)


def write_lm68(path, landmarks):
    """Writes [68, 2] points as one `x y` line each (%.3f; `nan nan` if unknown)."""
    points = np.asarray(landmarks, np.float64)
    if points.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks [68, 2], got {points.shape}")
    with open(path, "w", newline="\n") as stream:
        stream.write("".join("%.3f %.3f\n" % tuple(point) for point in points))


def read_lm68(path):
    """Reads a file written by write_lm68: float64 [68, 2]."""
    points = np.loadtxt(path, dtype=np.float64, ndmin=2)
    if points.shape != (68, 2):
        raise ValueError(f"{path}: expected 68 lines 'x y', got shape {points.shape}")
    return points


def write_depth_png(path, depth_mm):
    """Writes a depth map [H, W] (or [H, W, 1]) in mm as a 16-bit PNG of
    whole millimetres (0 = background; clipped to 65535)."""
    depth = np.squeeze(np.asarray(depth_mm, np.float64), axis=-1) if np.ndim(depth_mm) == 3 \
        else np.asarray(depth_mm, np.float64)
    values = np.clip(np.round(np.nan_to_num(depth)), 0, np.iinfo(np.uint16).max)
    if not cv2.imwrite(path, values.astype(np.uint16)):
        raise OSError(f"cannot write {path}")


def read_depth_png(path):
    """A depth map written by write_depth_png: float64 [H, W] in mm, 0 = background."""
    depth = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if depth is None or depth.dtype != np.uint16 or depth.ndim != 2:
        raise ValueError(f"{path}: not a 16-bit single-channel depth PNG")
    return depth.astype(np.float64)


def depth_preview(depth_mm):
    """uint8 RGB [H, W, 3]: the face's depth range coloured (near = warm),
    black background."""
    depth = np.squeeze(np.asarray(depth_mm, np.float64))
    face = depth > 0
    if not face.any():
        return np.zeros(depth.shape + (3,), np.uint8)
    near, far = depth[face].min(), depth[face].max()
    nearness = np.where(face, (far - depth) / max(far - near, 1e-6), 0.0)
    colours = cv2.applyColorMap(np.round(nearness * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    return np.where(face[..., None], colours[..., ::-1], 0).astype(np.uint8)


def write_face_results(output_dir, stem, face_index, prepared_face, fit_result, b, model,
                       face_model_name="", overwrite=False):
    """Writes every file of one fitted face (see the module docstring).

    Args:
      output_dir: the picture's folder (created if missing).
      stem: the picture's stem; face_index: its face number (0 = largest).
      prepared_face: the mgc.preprocess.PreparedFace that was fitted.
      fit_result: the mgc.fitting.FitResult holding the face.
      b: the face's index in fit_result's batch.
      model: the FaceModel that was fitted.
      face_model_name: recorded in the npz.
      overwrite: replace existing files; otherwise FileExistsError before
        anything is written.

    Returns:
      FaceOutputs.
    """
    render = fit_result.render
    with_texture = model.uvs is not None
    names = face_file_names(stem, face_index, with_texture)
    path = {kind: os.path.join(output_dir, name) for kind, name in names.items()}
    check_writable(path.values(), overwrite)
    os.makedirs(output_dir, exist_ok=True)

    vertices = _numpy(render.vertices[b])
    albedo = np.asarray(fit_result.vertex_albedo[b])
    _write_meshes(path, vertices, model, albedo, _numpy(render.colors[b]), with_texture)

    pose = _numpy(render.pose[b])
    write_camera(path["cam"], pose)
    write_landmarks(path["lm2d"], fit_result.landmarks_2d[b])
    write_landmarks(path["lm3d"], _numpy(render.landmarks_3d[b]))
    crop_to_image = invert(prepared_face.crop_matrix)
    landmarks_crop = _keypoint_landmarks(fit_result, b)
    landmarks_image = transform_points(landmarks_crop, crop_to_image)
    write_lm68(path["lm68"], landmarks_image)
    silhouette_crop = _silhouette_landmarks(fit_result, b)

    depth = _numpy(render.depth[b])
    write_depth_png(path["depth"], depth)
    save_image(path["depth_preview"], depth_preview(depth), overwrite=True)

    targets = fit_target_landmarks(prepared_face)
    error = float(fit_result.landmark_error[b])
    np.savez(path["npz"], coefficients=np.asarray(fit_result.coefficients[b], np.float32),
             layout_sizes=np.asarray(fit_result.layout.sizes, np.int32),
             pose=pose.astype(np.float32),
             intrinsic_matrix=np.asarray(geometry.MGCNET_INTRINSICS.matrix(), np.float64),
             crop_matrix=np.asarray(prepared_face.crop_matrix, np.float64),
             landmarks_crop=landmarks_crop, landmarks_image=landmarks_image,
             silhouette_landmarks_crop=silhouette_crop,
             silhouette_landmarks_image=transform_points(silhouette_crop, crop_to_image),
             target_landmarks_crop=targets,
             target_landmarks_image=transform_points(targets, crop_to_image),
             vertex_albedo=albedo.astype(np.float32), landmark_error=np.float32(error),
             face_model=np.asarray(face_model_name))

    pictures = result_pictures(render, picture_triangles(model), prepared_face.crop, index=b)
    save_image(path["overlay"], pictures["overlay"], overwrite=True)
    save_image(path["overlay_geo"], pictures["overlayGeo"], overwrite=True)
    save_image(path["multi_pose"], pictures["mulPoses"], overwrite=True)
    return FaceOutputs(files=names, landmark_error=error, landmarks_image=landmarks_image,
                       overlay=pictures["overlay"], overlay_geo=pictures["overlayGeo"],
                       mask=pictures["mask"], crop_matrix=np.asarray(prepared_face.crop_matrix))


def picture_triangles(model):
    """The triangles the pictures show: the model's front region (the face
    without ears and neck, like MGCNet's training renders), where the fit
    saw the skin."""
    return model.front_vertices[model.front_triangles]


def _write_meshes(path, vertices, model, albedo, lit_colors, with_texture):
    """OBJ (albedo colours, baked UV texture when the model has UVs) and
    MGCNet's PLY (lit colours)."""
    if with_texture:
        texture = _texture_baker(model)(albedo)
        write_obj(path["obj"], vertices, model.triangles, colors=albedo, uvs=model.uvs,
                  texture=texture)
    else:
        write_obj(path["obj"], vertices, model.triangles, colors=albedo)
    write_ply(path["ply"], vertices, model.triangles, colors=lit_colors)


_BAKERS = {}  # id(model) -> (model, its TextureBaker); the model is kept so its id stays its own


def _texture_baker(model):
    """The model's UV layout rasterized once (a run writes many faces of one model)."""
    if id(model) not in _BAKERS:
        if len(_BAKERS) >= 2:
            _BAKERS.pop(next(iter(_BAKERS)))
        _BAKERS[id(model)] = (model, TextureBaker(model.uvs, model.triangles, size=TEXTURE_SIZE,
                                                  num_vertices=model.num_vertices))
    return _BAKERS[id(model)][1]


def write_image_results(output_dir, stem, image, faces, overwrite=False):
    """Writes the per-picture files: a preview of the input and every face's
    overlays pasted into the photo.

    Args:
      output_dir: the picture's folder.
      stem: the picture's stem.
      image: uint8 [H, W, 3] the photo.
      faces: list of FaceOutputs of its faces (pasted in order).
      overwrite: as write_face_results.

    Returns:
      dict kind -> file name relative to output_dir.
    """
    names = image_file_names(stem)
    path = {kind: os.path.join(output_dir, name) for kind, name in names.items()}
    check_writable(path.values(), overwrite)
    save_image(path["input"], _preview(image), overwrite=True)
    lit, gray = image, image
    for face in faces:
        lit, gray = paste_back_all([face.overlay, face.overlay_geo], _clear_border(face.mask),
                                   [lit, gray], face.crop_matrix)
    save_image(path["overlay_origin"], lit, overwrite=True)
    save_image(path["overlay_geo_origin"], gray, overwrite=True)
    return names


def _clear_border(mask):
    """The mask with its outermost pixels cleared. paste_back warps with
    BORDER_REPLICATE (as MGCNet); a face reaching the crop's edge (the neck)
    would otherwise be smeared across the photo beyond the crop."""
    mask = np.array(mask, copy=True)
    mask[[0, -1]] = 0
    mask[:, [0, -1]] = 0
    return mask


def _preview(image):
    """The photo shrunk to at most INPUT_PREVIEW_SIDE pixels on its long side."""
    height, width = image.shape[:2]
    scale = INPUT_PREVIEW_SIDE / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
