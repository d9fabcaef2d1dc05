"""A straightforward NumPy rasterizer: the reference the op is tested against.

Same rule and the same float32 arithmetic as ops/rasterize_triangles/
rasterize_math.h, written per pixel and per triangle with no bounding boxes,
so it shares none of the kernel's shortcuts. Slow: use small images.
"""
import numpy as np

F = np.float32


def pixel_centers(size):
    """NDC coordinates of the pixel centres along an axis (index 0 at -1)."""
    return F(2.0) * (np.arange(size, dtype=F) + F(0.5)) / F(size) - F(1.0)


def edge_rows(v0, v1, v2):
    """sign(det M) * adj(M) for the triangle's clip vertices, or None."""
    vertices = np.stack([v0, v1, v2]).astype(F)
    if not np.all(np.isfinite(vertices)):
        return None
    x, y, w = vertices[:, 0], vertices[:, 1], vertices[:, 3]
    e = np.empty((3, 3), F)
    for i, (j, k) in enumerate(((1, 2), (2, 0), (0, 1))):
        e[i] = (y[j] * w[k] - y[k] * w[j], x[k] * w[j] - x[j] * w[k], x[j] * y[k] - x[k] * y[j])
    det = x[0] * e[0, 0] + x[1] * e[1, 0] + x[2] * e[2, 0]
    if det == 0 or not np.isfinite(det):
        return None
    return -e if det < 0 else e


def rasterize(clip_vertices, triangles, width, height):
    """Rasterizes one image: clip_vertices [V, 4], triangles [T, 3].

    Returns (barycentrics [H, W, 3], triangle_ids [H, W], z [H, W]), bottom-up.
    """
    clip_vertices = np.asarray(clip_vertices, F)
    px = pixel_centers(width)[np.newaxis, :]
    py = pixel_centers(height)[:, np.newaxis]
    barycentrics = np.zeros((height, width, 3), F)
    ids = np.full((height, width), -1, np.int32)
    z_buffer = np.ones((height, width), F)
    for t, triangle in enumerate(np.asarray(triangles)):
        v = clip_vertices[triangle]
        e = edge_rows(*v)
        if e is None:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            values = [e[i, 0] * px + e[i, 1] * py + e[i, 2] for i in range(3)]
            total = values[0] + values[1] + values[2]
            b = [value / total for value in values]
            z = (b[0] * v[0, 2] + b[1] * v[1, 2] + b[2] * v[2, 2]) / (
                b[0] * v[0, 3] + b[1] * v[1, 3] + b[2] * v[2, 3])
            inside = (values[0] >= 0) & (values[1] >= 0) & (values[2] >= 0) & (total > 0)
            draw = inside & (z >= -1) & (z <= 1) & (z <= z_buffer)
        ids[draw] = t
        z_buffer[draw] = z[draw]
        barycentrics[draw] = np.stack(b, axis=-1)[draw]
    return barycentrics, ids, z_buffer


def barycentric_gradient(clip_vertices, triangles, barycentrics, ids, d_barycentrics):
    """d loss / d clip_vertices [V, 4] at fixed visibility, in float64.

    Uses M^-1 directly (a linear solve per pixel, not the kernels' adjugate):
    dL/dM[r, c] = -(M^-T k)_r * lambda_c with k = g - (g . lambda), summed
    over the covered pixels.
    """
    clip64 = np.asarray(clip_vertices, np.float64)
    gradient = np.zeros(clip64.shape, np.float64)
    lam = np.asarray(barycentrics, np.float64).reshape(-1, 3)
    g = np.asarray(d_barycentrics, np.float64).reshape(-1, 3)
    flat_ids = np.asarray(ids).reshape(-1)
    used = (flat_ids >= 0) & np.any(g != 0, axis=1)
    if not np.any(used):
        return gradient
    corners = np.asarray(triangles)[flat_ids[used]]  # [N, 3]
    lam, g = lam[used], g[used]
    m = np.transpose(clip64[corners][..., [0, 1, 3]], (0, 2, 1))  # rows x, y, w
    k = g - np.sum(g * lam, axis=1, keepdims=True)
    u = np.linalg.solve(np.transpose(m, (0, 2, 1)), k[..., np.newaxis])[..., 0]  # [N, 3]
    for c in range(3):
        np.add.at(gradient, (corners[:, c, np.newaxis], np.array([0, 1, 3])),
                  -u * lam[:, c:c + 1])
    return gradient
