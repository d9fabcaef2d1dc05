"""Rendering: the rasterizer op, attribute interpolation, shading.

Everything here returns bottom-up images (row 0 = image bottom), as the op
does; face-level code flips them to top-down.
"""
from mgc.render.face import FaceRender, render_attributes, render_face
from mgc.render.rasterize import interpolate
from mgc.render.rasterize import rasterize
from mgc.render.rasterize import rasterize_triangles

__all__ = ["FaceRender", "interpolate", "rasterize", "rasterize_triangles", "render_attributes",
           "render_face"]
