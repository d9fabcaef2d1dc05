"""Rendering: the rasterizer op, attribute interpolation, shading, and the
MGCNet forward model.

The op-level functions (rasterize_triangles, rasterize, interpolate) return
bottom-up images (row 0 = image bottom), as the op does; the face-level ones
(render_face, render_attributes) return top-down images.
"""
from mgc.render.face import FaceRender, render_attributes, render_face, render_gray
from mgc.render.rasterize import interpolate
from mgc.render.rasterize import rasterize
from mgc.render.rasterize import rasterize_triangles
from mgc.render.shading import phong_shader
from mgc.render.shading import render_mesh
from mgc.render.shading import tone_mapper

__all__ = ["FaceRender", "interpolate", "phong_shader", "rasterize", "rasterize_triangles",
           "render_attributes", "render_face", "render_gray", "render_mesh", "tone_mapper"]
