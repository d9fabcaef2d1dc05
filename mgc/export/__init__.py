"""Exports: meshes (OBJ, PLY, baked UV textures), MGCNet's text files
(camera, 2D/3D landmarks) and the pictures people open (overlays, multi-pose
strips, turntables, paste-back into the photo). Top of the import ladder:
may import geometry, facemodel and render; nothing in mgc imports export.
"""
from mgc.export.mesh_io import TextureBaker
from mgc.export.mesh_io import bake_texture
from mgc.export.mesh_io import read_obj
from mgc.export.mesh_io import read_ply
from mgc.export.mesh_io import write_obj
from mgc.export.mesh_io import write_ply
from mgc.export.mgcnet_text import CameraFile
from mgc.export.mgcnet_text import MgcnetTextError
from mgc.export.mgcnet_text import intrinsics_from_camera
from mgc.export.mgcnet_text import read_camera
from mgc.export.mgcnet_text import read_landmarks
from mgc.export.mgcnet_text import write_camera
from mgc.export.mgcnet_text import write_landmarks
from mgc.export.overlays import composite
from mgc.export.overlays import multi_pose_strip
from mgc.export.overlays import overlay_set
from mgc.export.overlays import paste_back
from mgc.export.overlays import paste_back_all
from mgc.export.overlays import result_pictures
from mgc.export.overlays import save_image
from mgc.export.overlays import to_uint8
from mgc.export.overlays import turntable
from mgc.export.overlays import turntable_poses

__all__ = [
    "CameraFile", "MgcnetTextError", "TextureBaker", "bake_texture", "composite",
    "intrinsics_from_camera", "multi_pose_strip", "overlay_set", "paste_back", "paste_back_all",
    "read_camera", "read_landmarks", "read_obj", "read_ply", "result_pictures", "save_image",
    "to_uint8", "turntable", "turntable_poses", "write_camera", "write_landmarks", "write_obj",
    "write_ply",
]
