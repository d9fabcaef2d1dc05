// Per-triangle and per-pixel math of the rasterizer, shared by the CPU and the
// CUDA kernels. Everything here is inline and free of TensorFlow, so the CPU
// tests cover exactly the arithmetic the GPU runs (built with --fmad=false).
//
// Conventions (docs/ARCHITECTURE.md): a triangle's clip vertices v_i = (x, y,
// z, w); M is the 3x3 matrix with rows (x0 x1 x2), (y0 y1 y2), (w0 w1 w2). A
// pixel centre p = (px, py, 1) in NDC is covered when every component of
// M^-1 p is >= 0; normalising those components gives the perspective-correct
// barycentrics. We keep sign(det M) * adj(M) instead of M^-1: it has the same
// signs and the same normalised values without a division.
#ifndef MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_MATH_H_
#define MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_MATH_H_

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define MGC_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MGC_HOST_DEVICE inline
#endif

namespace mgc {

// Components of a clip-space vertex in the [.., 4] layout.
constexpr int kX = 0;
constexpr int kY = 1;
constexpr int kZ = 2;
constexpr int kW = 3;

// What rasterizing a triangle needs, computed once per triangle.
struct TriangleSetup {
  // Rows of sign(det) * adj(M): edge function i is e_i(p) = row_i . p.
  float edge[3][3];
  // |det M|, so that M^-1 = edge / abs_det.
  float abs_det;
};

// x - x is 0 for finite x and NaN for inf and NaN; works on host and device
// without depending on which isfinite overloads a toolchain provides.
MGC_HOST_DEVICE bool IsFinite(float x) { return x - x == 0.0f; }

// Fills `setup` for the triangle (v0, v1, v2), each pointing at 4 floats.
// Returns false when the triangle can cover nothing: det M == 0 (zero area
// on screen, or its plane passes through the eye) or non-finite. Every x, y
// and w enters det through a product with the others, so a non-finite one
// makes det inf or NaN; a non-finite z fails CoverPixel's depth range test.
MGC_HOST_DEVICE bool SetupTriangle(const float* v0, const float* v1,
                                   const float* v2, TriangleSetup* setup) {
  const float x0 = v0[kX], x1 = v1[kX], x2 = v2[kX];
  const float y0 = v0[kY], y1 = v1[kY], y2 = v2[kY];
  const float w0 = v0[kW], w1 = v1[kW], w2 = v2[kW];
  // Row i of adj(M) is the cross product of the two other vertices' (x, y, w).
  float (*e)[3] = setup->edge;
  e[0][0] = y1 * w2 - y2 * w1;
  e[0][1] = x2 * w1 - x1 * w2;
  e[0][2] = x1 * y2 - x2 * y1;
  e[1][0] = y2 * w0 - y0 * w2;
  e[1][1] = x0 * w2 - x2 * w0;
  e[1][2] = x2 * y0 - x0 * y2;
  e[2][0] = y0 * w1 - y1 * w0;
  e[2][1] = x1 * w0 - x0 * w1;
  e[2][2] = x0 * y1 - x1 * y0;
  const float det = x0 * e[0][0] + x1 * e[1][0] + x2 * e[2][0];
  if (det == 0.0f || !IsFinite(det)) return false;
  if (det < 0.0f) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) e[i][j] = -e[i][j];
    }
  }
  setup->abs_det = fabsf(det);
  return true;
}

// NDC coordinate of the centre of pixel `index` along an axis of `size`
// pixels: index 0 is at NDC -1 (left, or bottom for rows).
MGC_HOST_DEVICE float PixelCenterNdc(int index, int size) {
  return 2.0f * (static_cast<float>(index) + 0.5f) / static_cast<float>(size) -
         1.0f;
}

// Coverage test and shading values of one pixel centre (px, py) in NDC.
// On success writes the perspective-correct barycentrics and the NDC depth.
// Points exactly on an edge (e_i == 0) are inside, whatever the winding.
MGC_HOST_DEVICE bool CoverPixel(const TriangleSetup& setup, const float* v0,
                                const float* v1, const float* v2, float px,
                                float py, float* barycentric, float* depth) {
  float e[3];
  for (int i = 0; i < 3; ++i) {
    e[i] = setup.edge[i][0] * px + setup.edge[i][1] * py + setup.edge[i][2];
    if (!(e[i] >= 0.0f)) return false;
  }
  // All e_i >= 0 and p_w = 1 imply a positive sum: the point is in front.
  const float sum = e[0] + e[1] + e[2];
  if (!(sum > 0.0f)) return false;
  const float b0 = e[0] / sum, b1 = e[1] / sum, b2 = e[2] / sum;
  const float clip_z = b0 * v0[kZ] + b1 * v1[kZ] + b2 * v2[kZ];
  const float clip_w = b0 * v0[kW] + b1 * v1[kW] + b2 * v2[kW];
  const float z = clip_z / clip_w;
  if (!(z >= -1.0f && z <= 1.0f)) return false;
  barycentric[0] = b0;
  barycentric[1] = b1;
  barycentric[2] = b2;
  *depth = z;
  return true;
}

// Pixel bounds. A triangle can only cover the pixel centres between the
// smallest and largest projected coordinate of its corners, widened by a
// small margin so that the coverage test, not rounding here, decides edge
// pixels. Rounding and clamping are monotone, so the triangle's range is the
// union of its corners' ranges: VertexPixelRange is computed once per vertex
// (the CPU kernel shares it between the triangles of a vertex) and a
// triangle's bounds are integer minima and maxima of three of them.

// Pixel-centre indices within the margin of one vertex along x and y, in
// [-1, size] (so that a triangle's minimum and maximum clamp to the image);
// kBehindEye in the firsts marks a vertex with clip w <= 0.
struct VertexPixelRange {
  int x_first;
  int x_last;
  int y_first;
  int y_last;
};

constexpr int kBehindEye = -2;

// ceil(v - margin) and floor(v + margin), clamped to [-1, size]: NaN goes to
// the bound (-1 for the first, size for the last) so the conversion is exact.
// Plain comparisons and integer rounding instead of fminf/ceilf: those are
// library calls on baseline x86-64, and this runs once per vertex.
constexpr float kPixelMargin = 1e-3f;

MGC_HOST_DEVICE int FirstPixelAtOrAbove(float v, int size) {
  v = v - kPixelMargin > -1.0f ? v - kPixelMargin : -1.0f;
  v = v < static_cast<float>(size) ? v : static_cast<float>(size);
  const int f = static_cast<int>(v);  // Truncation, then ceil(v).
  return static_cast<float>(f) < v ? f + 1 : f;
}

MGC_HOST_DEVICE int LastPixelAtOrBelow(float v, int size) {
  v = v + kPixelMargin < static_cast<float>(size) ? v + kPixelMargin
                                                  : static_cast<float>(size);
  v = v > -1.0f ? v : -1.0f;
  const int l = static_cast<int>(v);  // Truncation, then floor(v).
  return static_cast<float>(l) > v ? l - 1 : l;
}

// The vertex in pixel-index space (the pixel whose centre is at (x, y) has
// index (x, y)) and its range. A vertex behind the eye (w <= 0) can put a
// triangle's coverage anywhere on screen: its range is the whole image.
// Written without branches so that the CPU kernel's loop over the vertices
// vectorises (the values are the same either way).
MGC_HOST_DEVICE VertexPixelRange VertexRange(const float* v, int width,
                                             int height) {
  const bool in_front = v[kW] > 0.0f;
  // Viewport coordinate (ndc + 1) * size / 2, minus the half-pixel offset.
  const float x = (v[kX] / v[kW] + 1.0f) * (0.5f * static_cast<float>(width)) - 0.5f;
  const float y = (v[kY] / v[kW] + 1.0f) * (0.5f * static_cast<float>(height)) - 0.5f;
  const int x_first = FirstPixelAtOrAbove(x, width);
  const int x_last = LastPixelAtOrBelow(x, width);
  const int y_first = FirstPixelAtOrAbove(y, height);
  const int y_last = LastPixelAtOrBelow(y, height);
  return {in_front ? x_first : kBehindEye, in_front ? x_last : width,
          in_front ? y_first : kBehindEye, in_front ? y_last : height};
}

MGC_HOST_DEVICE int Min3(int a, int b, int c) {
  const int ab = a < b ? a : b;
  return ab < c ? ab : c;
}

MGC_HOST_DEVICE int Max3(int a, int b, int c) {
  const int ab = a > b ? a : b;
  return ab > c ? ab : c;
}

// Pixel rectangle, within rows [row_begin, row_end) and the image's columns,
// that can contain the coverage of the triangle with corner ranges a, b, c.
// One with every corner behind the eye covers nothing. Returns false when
// empty.
MGC_HOST_DEVICE bool TriangleBounds(const VertexPixelRange& a,
                                    const VertexPixelRange& b,
                                    const VertexPixelRange& c, int width,
                                    int row_begin, int row_end, int* x_first,
                                    int* x_last, int* y_first, int* y_last) {
  const int lowest_row = Min3(a.y_first, b.y_first, c.y_first);
  if (lowest_row == kBehindEye &&
      Max3(a.y_first, b.y_first, c.y_first) == kBehindEye) {
    return false;
  }
  const int highest_row = Max3(a.y_last, b.y_last, c.y_last);
  *y_first = lowest_row > row_begin ? lowest_row : row_begin;
  *y_last = highest_row < row_end - 1 ? highest_row : row_end - 1;
  if (*y_first > *y_last) return false;
  const int lowest_column = Min3(a.x_first, b.x_first, c.x_first);
  const int highest_column = Max3(a.x_last, b.x_last, c.x_last);
  *x_first = lowest_column > 0 ? lowest_column : 0;
  *x_last = highest_column < width - 1 ? highest_column : width - 1;
  return *x_first <= *x_last;
}

// NDC centres of the pixels, computed on the spot (GPU); the CPU kernel
// passes tables of the same values.
struct PixelCentersNdc {
  int width;
  int height;
  MGC_HOST_DEVICE float x(int index) const { return PixelCenterNdc(index, width); }
  MGC_HOST_DEVICE float y(int index) const { return PixelCenterNdc(index, height); }
};

// The one pixel scan of a triangle, shared by the CPU and CUDA kernels:
// calls visit(x, y, barycentric, depth) for every pixel of rows [y_first,
// y_last] and columns [x_first, x_last] whose centre the triangle covers,
// row by row, left to right. `centers` gives the pixel centres in NDC
// (centers.x(i), centers.y(j)).
template <typename Centers, typename Visit>
MGC_HOST_DEVICE void ScanTrianglePixels(const TriangleSetup& setup,
                                        const float* v0, const float* v1,
                                        const float* v2, const Centers& centers,
                                        int x_first, int x_last, int y_first,
                                        int y_last, Visit&& visit) {
  for (int y = y_first; y <= y_last; ++y) {
    const float py = centers.y(y);
    for (int x = x_first; x <= x_last; ++x) {
      float b[3], z;
      if (CoverPixel(setup, v0, v1, v2, centers.x(x), py, b, &z)) {
        visit(x, y, b, z);
      }
    }
  }
}

// Backward pass at fixed visibility. With b = M^-1 p and lambda = b / sum(b),
// a loss L with g = dL/dlambda at a pixel gives
//   dL/dM[r][c] = -(M^-T k)_r * lambda_c,  k = g - (g . lambda) 1.
// With M^-T = edge^T / |det| (edge = sign(det) adj(M), TriangleSetup), the
// pixel's share of vertex c's (x, y, w) gradient is u lambda_c with
// u = edge^T k, times -1 / |det|. A kernel sums u lambda^T over a
// triangle's pixels (one 3x3 sum, 33 multiply-adds a pixel) and scales it
// once per triangle: the pixel needs the triangle's setup, nothing more.

// Adds one pixel's u lambda^T to `sum` (sum[c][j]: vertex c, component j
// in (x, y, w)); the caller scales the sum by VertexGradientScale.
MGC_HOST_DEVICE void AddPixelVertexGradients(const TriangleSetup& setup,
                                             const float* barycentric,
                                             const float* d_barycentric,
                                             float sum[3][3]) {
  const float g_dot_b = d_barycentric[0] * barycentric[0] +
                        d_barycentric[1] * barycentric[1] +
                        d_barycentric[2] * barycentric[2];
  const float k0 = d_barycentric[0] - g_dot_b;
  const float k1 = d_barycentric[1] - g_dot_b;
  const float k2 = d_barycentric[2] - g_dot_b;
  for (int j = 0; j < 3; ++j) {
    const float u = setup.edge[0][j] * k0 + setup.edge[1][j] * k1 +
                    setup.edge[2][j] * k2;
    for (int c = 0; c < 3; ++c) sum[c][j] += u * barycentric[c];
  }
}

// The factor -1 / |det M| that turns summed u lambda^T into dL/d(x, y, w).
MGC_HOST_DEVICE float VertexGradientScale(const TriangleSetup& setup) {
  return -1.0f / setup.abs_det;
}

// Depth and triangle id packed so that the smaller key is the winner: nearer
// depth first, and on equal depth the larger triangle id (the later triangle,
// as in the CPU kernel's in-order "<=" test). Used by the GPU atomicMin pass.
MGC_HOST_DEVICE uint64_t DepthIdKey(float depth, int triangle_id) {
  depth += 0.0f;  // -0 becomes +0, so equal depths give equal keys.
  uint32_t bits;
  memcpy(&bits, &depth, sizeof(bits));
  // Monotone map of IEEE floats to unsigned integers.
  bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
  const uint32_t id_bits = 0xFFFFFFFFu - static_cast<uint32_t>(triangle_id);
  return (static_cast<uint64_t>(bits) << 32) | id_bits;
}

MGC_HOST_DEVICE int TriangleIdFromKey(uint64_t key) {
  return static_cast<int>(0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFFu));
}

}  // namespace mgc

#endif  // MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_MATH_H_
