"""Rendering: the rasterizer op, attribute interpolation, shading.

Everything here returns bottom-up images (row 0 = image bottom), as the op
does; face-level code flips them to top-down.
"""
from mgc.render.rasterize import interpolate
from mgc.render.rasterize import rasterize
from mgc.render.rasterize import rasterize_triangles

__all__ = ["interpolate", "rasterize", "rasterize_triangles"]
