// CPU implementation of the core (see rasterize_triangles.h). The per-pixel
// math and the pixel scan live in rasterize_math.h, shared with the CUDA
// kernels.
//
// Forward. Most of a face mesh's triangles cover at most one pixel centre,
// so the work per triangle decides the speed: each vertex's pixel range is
// computed once (VertexRange), a triangle's bounds are then a few integer
// minima and maxima, and only a triangle whose bounds hold a pixel centre
// gets its 3x3 setup. Each image's rows are split into as many blocks as
// the threads need (one block when the batch has an image per thread); each
// block runs the triangles in order over its rows, so the result does not
// depend on the split. With several blocks a parallel pass first sorts the
// triangles into the blocks their bounds reach (chunks of triangles, each
// chunk's lists kept in triangle order), so a block only reads its own
// triangles and the bounds are computed once, not once per block. On CPUs
// with AVX2 the triangles of an image or block are drawn eight at a time,
// grouped by candidate-pixel count (GroupedDrawer); the depth test (Wins)
// gives the same winner in any drawing order.
//
// Backward: each unit (a whole image, or a block of rows when the batch is
// smaller than the number of threads) reads the triangle ids of its rows
// and, for covered pixels only, adds the pixel's share u lambda^T to a 3x3
// sum of its triangle (rasterize_math.h); the sums live in a small table
// keyed by triangle id (TriangleSums), so a triangle's setup and the
// scattered adds into its vertices happen about once per triangle; the ids
// ahead are read to prefetch the triangles and vertices that random reads
// would otherwise wait for. Units of
// one image write separate buffers that a parallel pass over the vertices
// adds up in a fixed order.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rasterize_math.h"
#include "rasterize_triangles.h"

// SSE2 is part of x86-64: there the setup, the coverage test and the
// gradient's per-pixel sums run on 4-float vectors (below). Elsewhere, or
// with -DMGC_RASTERIZE_SCALAR, the scalar functions of rasterize_math.h.
#if defined(__SSE2__) && !defined(MGC_RASTERIZE_SCALAR)
#define MGC_RASTERIZE_SSE2 1
#include <emmintrin.h>
// And where the compiler can target AVX2 in single functions (GCC, Clang),
// small triangles in groups of eight when the CPU has it; not with
// -DMGC_RASTERIZE_NO_AVX2 (the tests' SSE2-only build).
#if (defined(__GNUC__) || defined(__clang__)) && !defined(MGC_RASTERIZE_NO_AVX2)
#define MGC_RASTERIZE_AVX2 1
#include <immintrin.h>
#endif
#endif

namespace mgc {
namespace {

constexpr int64_t kVerticesPerChunk = 4096;
// The gradient prefetches the triangle of the pixel kPrefetchFar ahead and
// the vertices of the one kPrefetchNear ahead (whose triangle it fetched
// earlier).
constexpr int64_t kPrefetchFar = 16;
constexpr int64_t kPrefetchNear = 6;
constexpr int kComponent[3] = {kX, kY, kW};

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

const float* Corner(const float* image_vertices, const int32_t* triangle,
                    int corner) {
  return image_vertices + 4 * int64_t{triangle[corner]};
}


#if MGC_RASTERIZE_SSE2
// rasterize_math.h's SetupTriangle, CoverPixel and AddPixelVertexGradients
// on SSE2 vectors. Every lane does the scalar code's operations in the same
// order (IEEE single precision, no fused multiply-add), so the results are
// bit-identical to it (and to the CUDA kernels); only the instruction count
// changes. A row vector holds the (x, y, w) coefficients of an edge
// function in lanes 0-2 and 0 in lane 3.
struct SseTriangle {
  __m128 rows[3];  // sign(det) adj(M), rows as in TriangleSetup::edge
  float abs_det;
};

// (x, y, w, z) of a clip vertex: the lanes a cross product of (x, y, w) uses.
inline __m128 XyWOf(const float* v) {
  const __m128 xyzw = _mm_loadu_ps(v);
  return _mm_shuffle_ps(xyzw, xyzw, _MM_SHUFFLE(2, 3, 1, 0));
}

// a x b on lanes 0-2: lane i is a_{i+1} b_{i+2} - a_{i+2} b_{i+1}, the
// products and difference of SetupTriangle's adjugate entries.
inline __m128 Cross(__m128 a, __m128 b) {
  const __m128 a_yzx = _mm_shuffle_ps(a, a, _MM_SHUFFLE(3, 0, 2, 1));
  const __m128 b_zxy = _mm_shuffle_ps(b, b, _MM_SHUFFLE(3, 1, 0, 2));
  const __m128 a_zxy = _mm_shuffle_ps(a, a, _MM_SHUFFLE(3, 1, 0, 2));
  const __m128 b_yzx = _mm_shuffle_ps(b, b, _MM_SHUFFLE(3, 0, 2, 1));
  return _mm_sub_ps(_mm_mul_ps(a_yzx, b_zxy), _mm_mul_ps(a_zxy, b_yzx));
}

inline float Lane(__m128 v, int lane) {
  switch (lane) {
    case 0: return _mm_cvtss_f32(v);
    case 1: return _mm_cvtss_f32(_mm_shuffle_ps(v, v, _MM_SHUFFLE(1, 1, 1, 1)));
    case 2: return _mm_cvtss_f32(_mm_movehl_ps(v, v));
    default: return _mm_cvtss_f32(_mm_shuffle_ps(v, v, _MM_SHUFFLE(3, 3, 3, 3)));
  }
}

// SetupTriangle's rows and |det|, false where it returns false.
inline bool SseSetupTriangle(const float* v0, const float* v1, const float* v2,
                             SseTriangle* triangle) {
  const __m128 p0 = XyWOf(v0), p1 = XyWOf(v1), p2 = XyWOf(v2);
  // Lane 3 of a cross product of lanes (x, y, w, z) mixes z: cleared.
  const __m128 keep = _mm_castsi128_ps(_mm_set_epi32(0, -1, -1, -1));
  __m128 e0 = _mm_and_ps(Cross(p1, p2), keep);
  __m128 e1 = _mm_and_ps(Cross(p2, p0), keep);
  __m128 e2 = _mm_and_ps(Cross(p0, p1), keep);
  const float det = v0[kX] * _mm_cvtss_f32(e0) + v1[kX] * _mm_cvtss_f32(e1) +
                    v2[kX] * _mm_cvtss_f32(e2);
  if (det == 0.0f || !IsFinite(det)) return false;
  if (det < 0.0f) {
    const __m128 sign = _mm_set1_ps(-0.0f);
    e0 = _mm_xor_ps(e0, sign);
    e1 = _mm_xor_ps(e1, sign);
    e2 = _mm_xor_ps(e2, sign);
  }
  triangle->rows[0] = e0;
  triangle->rows[1] = e1;
  triangle->rows[2] = e2;
  triangle->abs_det = fabsf(det);
  return true;
}

// The coverage test of one triangle with its edge coefficients transposed:
// lane i of px_coefficients * px + py_coefficients * py + constants is
// edge function i, evaluated as CoverPixel does.
struct SseCoverage {
  __m128 px_coefficients, py_coefficients, constants;
  __m128 z, w;  // clip z and w of the corners

  SseCoverage(const SseTriangle& triangle, const float* v0, const float* v1, const float* v2) {
    __m128 r0 = triangle.rows[0], r1 = triangle.rows[1], r2 = triangle.rows[2];
    __m128 r3 = _mm_setzero_ps();
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    px_coefficients = r0;
    py_coefficients = r1;
    constants = r2;
    z = _mm_set_ps(0.0f, v2[kZ], v1[kZ], v0[kZ]);
    w = _mm_set_ps(0.0f, v2[kW], v1[kW], v0[kW]);
  }

  // CoverPixel at (px, py): on success the barycentrics in lanes 0-2 of
  // *barycentric and the depth in *depth.
  bool Cover(__m128 px, __m128 py_term, __m128* barycentric, float* depth) const {
    const __m128 e = _mm_add_ps(_mm_add_ps(_mm_mul_ps(px_coefficients, px), py_term), constants);
    if ((_mm_movemask_ps(_mm_cmpge_ps(e, _mm_setzero_ps())) & 7) != 7) return false;
    const float sum = _mm_cvtss_f32(e) + Lane(e, 1) + Lane(e, 2);
    if (!(sum > 0.0f)) return false;
    const __m128 b = _mm_div_ps(e, _mm_set1_ps(sum));
    const __m128 bz = _mm_mul_ps(b, z), bw = _mm_mul_ps(b, w);
    const float clip_z = _mm_cvtss_f32(bz) + Lane(bz, 1) + Lane(bz, 2);
    const float clip_w = _mm_cvtss_f32(bw) + Lane(bw, 1) + Lane(bw, 2);
    const float d = clip_z / clip_w;
    if (!(d >= -1.0f && d <= 1.0f)) return false;
    *barycentric = b;
    *depth = d;
    return true;
  }
};

// Stores lanes 0-2 (a pixel's three barycentrics; the next pixel follows).
inline void StoreThree(float* out, __m128 v) {
  _mm_storel_pi(reinterpret_cast<__m64*>(out), v);
  _mm_store_ss(out + 2, _mm_movehl_ps(v, v));
}
#endif  // MGC_RASTERIZE_SSE2

// The pixel centres in NDC, tabulated once per call (PixelCenterNdc's values).
struct PixelCenterTables {
  std::vector<float> columns;
  std::vector<float> rows;

  PixelCenterTables(int width, int height) : columns(width), rows(height) {
    for (int x = 0; x < width; ++x) columns[x] = PixelCenterNdc(x, width);
    for (int y = 0; y < height; ++y) rows[y] = PixelCenterNdc(y, height);
  }
};

struct TabulatedCenters {
  const float* columns;
  const float* rows;
  float x(int index) const { return columns[index]; }
  float y(int index) const { return rows[index]; }
};

// A triangle whose bounds hold a pixel centre, with those bounds (rows within
// the image, not yet within a block).
struct BoundedTriangle {
  int32_t id;
  int32_t x_first, x_last, y_first, y_last;
};

// What rasterizing the rows of one image reads and writes.
struct ImageTarget {
  const RasterShape& shape;
  const int32_t* triangles;
  const float* vertices;  // [V, 4] of the image
  TabulatedCenters centers;
  float* barycentrics;  // the image's [H, W, 3]
  int32_t* ids;
  float* z_buffer;
};

ImageTarget TargetOf(const RasterizeArgs& args, const PixelCenterTables& tables,
                     int64_t image) {
  const RasterShape& shape = args.shape;
  const int64_t pixels = image * shape.PixelsPerImage();
  return {shape,
          args.triangles,
          args.clip_vertices + image * shape.num_vertices * 4,
          {tables.columns.data(), tables.rows.data()},
          args.barycentrics + 3 * pixels,
          args.triangle_ids + pixels,
          args.z_buffer + pixels};
}

// Empty rows [row_begin, row_end): barycentrics 0, id -1, depth 1.
void ClearRows(const ImageTarget& target, int row_begin, int row_end) {
  const int64_t first = int64_t{row_begin} * target.shape.width;
  const int64_t count = int64_t{row_end - row_begin} * target.shape.width;
  std::fill_n(target.barycentrics + 3 * first, 3 * count, 0.0f);
  std::fill_n(target.ids + first, count, -1);
  std::fill_n(target.z_buffer + first, count, 1.0f);
}

// Whether triangle t at depth z replaces what a pixel holds: the nearer
// depth wins, and on equal depth the later triangle (-1 is the empty pixel
// at depth 1). The winner is then the same whatever order the triangles are
// drawn in (the same rule as the CUDA kernel's DepthIdKey), which lets the
// AVX2 path below draw small triangles in groups.
inline bool Wins(float z, int32_t t, float old_z, int32_t old_id) {
  return z < old_z || (z == old_z && t > old_id);
}

// Draws triangle t over the pixel rectangle (already within the image and
// the block), keeping the winner (Wins) per pixel.
void DrawTriangle(const ImageTarget& target, int32_t t, int x_first, int x_last, int y_first,
                  int y_last) {
  const int32_t* corners = target.triangles + 3 * int64_t{t};
  const float* v0 = Corner(target.vertices, corners, 0);
  const float* v1 = Corner(target.vertices, corners, 1);
  const float* v2 = Corner(target.vertices, corners, 2);
  // Locals, so that the stores below cannot be taken to change them.
  const int64_t width = target.shape.width;
  float* const barycentrics = target.barycentrics;
  int32_t* const ids = target.ids;
  float* const z_buffer = target.z_buffer;
#if MGC_RASTERIZE_SSE2
  SseTriangle triangle;
  if (!SseSetupTriangle(v0, v1, v2, &triangle)) return;
  const SseCoverage coverage(triangle, v0, v1, v2);
  for (int y = y_first; y <= y_last; ++y) {
    const __m128 py_term = _mm_mul_ps(coverage.py_coefficients, _mm_set1_ps(target.centers.y(y)));
    for (int x = x_first; x <= x_last; ++x) {
      __m128 b;
      float z;
      if (!coverage.Cover(_mm_set1_ps(target.centers.x(x)), py_term, &b, &z)) continue;
      const int64_t pixel = y * width + x;
      if (!Wins(z, t, z_buffer[pixel], ids[pixel])) continue;
      z_buffer[pixel] = z;
      ids[pixel] = t;
      StoreThree(barycentrics + 3 * pixel, b);
    }
  }
#else
  TriangleSetup setup;
  if (!SetupTriangle(v0, v1, v2, &setup)) return;
  ScanTrianglePixels(setup, v0, v1, v2, target.centers, x_first, x_last, y_first, y_last,
                     [=](int x, int y, const float* b, float z) {
                       const int64_t pixel = y * width + x;
                       if (!Wins(z, t, z_buffer[pixel], ids[pixel])) return;
                       z_buffer[pixel] = z;
                       ids[pixel] = t;
                       std::copy_n(b, 3, barycentrics + 3 * pixel);
                     });
#endif
}

#if MGC_RASTERIZE_AVX2
// Small triangles eight at a time on AVX2 (x86 CPUs that have it, chosen at
// run time). Most triangles of a face mesh have one to a few candidate
// pixels, so per-triangle overhead and mispredicted branches decide the
// speed: here the triangles of a pass are first sorted, without branches,
// into classes by candidate count (1, 2, 3-4, 5-8, 9-16; more go to
// DrawTriangle), then lane i of every vector belongs to triangle i of a
// group of eight of one class, the setup is one pass for all eight, and step
// k tests candidate pixel k of each triangle's bounds. Every lane does
// DrawTriangle's scalar operations in the same order (no fused multiply-add:
// the target is avx2 without fma), so the values are the same bits; the
// depth test is Wins, lane by lane, so the drawing order does not change the
// result.
#define MGC_AVX2 __attribute__((target("avx2")))

constexpr int kLanes = 8;
constexpr int kGroupedClasses = 5;  // up to 1, 2, 4, 8 and 16 candidate pixels
constexpr int kLargeClass = kGroupedClasses;  // more: DrawTriangle
constexpr int kEmptyClass = kGroupedClasses + 1;  // no pixel centre: dropped
// Triangles sorted before their classes are drawn.
constexpr int kTrianglesPerChunk = 512;

// The triangles of one class, by field (lanes of a group are consecutive).
struct TriangleClass {
  alignas(32) int32_t id[kTrianglesPerChunk + kLanes];
  alignas(32) int32_t pixels[kTrianglesPerChunk + kLanes];
  alignas(32) int32_t x_first[kTrianglesPerChunk + kLanes];
  alignas(32) int32_t x_last[kTrianglesPerChunk + kLanes];
  alignas(32) int32_t y_first[kTrianglesPerChunk + kLanes];
  alignas(32) int32_t y_last[kTrianglesPerChunk + kLanes];
  int size = 0;

  void Copy(int from, int to) {
    id[to] = id[from];
    pixels[to] = pixels[from];
    x_first[to] = x_first[from];
    x_last[to] = x_last[from];
    y_first[to] = y_first[from];
    y_last[to] = y_last[from];
  }
};

constexpr int kMaxGroupedPixels = 1 << (kGroupedClasses - 1);

// Class of a triangle with `pixels` (>= 1) candidates: ceil(log2(pixels)) up
// to kLargeClass, or kEmptyClass.
inline int ClassOf(int pixels, bool any) {
  const int log2_ceil = 31 - __builtin_clz(2u * static_cast<unsigned>(pixels) - 1u);
  const int grouped = log2_ceil < kLargeClass ? log2_ceil : kLargeClass;
  return any ? grouped : kEmptyClass;
}

MGC_AVX2 inline __m256 Mul(__m256 a, __m256 b) { return _mm256_mul_ps(a, b); }
MGC_AVX2 inline __m256 Add(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
MGC_AVX2 inline __m256 Sub(__m256 a, __m256 b) { return _mm256_sub_ps(a, b); }

MGC_AVX2 inline __m256i LoadLanes(const int32_t* values) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(values));
}

// (x, y, z, w) of vertex `corner` of each lane's triangle, one vector each:
// two 4x4 transposes of the 128-bit loads.
MGC_AVX2 inline void LoadCorner(const ImageTarget& target, const int32_t* ids, int corner,
                                __m256* x, __m256* y, __m256* z, __m256* w) {
  __m256 rows[4];
  for (int lane = 0; lane < 4; ++lane) {
    const int32_t* low = target.triangles + 3 * int64_t{ids[lane]};
    const int32_t* high = target.triangles + 3 * int64_t{ids[lane + 4]};
    rows[lane] = _mm256_insertf128_ps(
        _mm256_castps128_ps256(_mm_loadu_ps(Corner(target.vertices, low, corner))),
        _mm_loadu_ps(Corner(target.vertices, high, corner)), 1);
  }
  const __m256 xy01 = _mm256_unpacklo_ps(rows[0], rows[1]);  // x0 x1 y0 y1 (and lanes 4, 5)
  const __m256 zw01 = _mm256_unpackhi_ps(rows[0], rows[1]);
  const __m256 xy23 = _mm256_unpacklo_ps(rows[2], rows[3]);
  const __m256 zw23 = _mm256_unpackhi_ps(rows[2], rows[3]);
  *x = _mm256_shuffle_ps(xy01, xy23, _MM_SHUFFLE(1, 0, 1, 0));
  *y = _mm256_shuffle_ps(xy01, xy23, _MM_SHUFFLE(3, 2, 3, 2));
  *z = _mm256_shuffle_ps(zw01, zw23, _MM_SHUFFLE(1, 0, 1, 0));
  *w = _mm256_shuffle_ps(zw01, zw23, _MM_SHUFFLE(3, 2, 3, 2));
}

// SetupTriangle, CoverPixel and the depth test for the eight triangles of
// `triangles` from index `first`.
MGC_AVX2 void DrawGroup(const ImageTarget& target, const TriangleClass& triangles, int first) {
  const int32_t* ids = triangles.id + first;
  __m256 x[3], y[3], z[3], w[3];
  for (int c = 0; c < 3; ++c) LoadCorner(target, ids, c, &x[c], &y[c], &z[c], &w[c]);
  // SetupTriangle: rows of sign(det) adj(M).
  __m256 e[3][3];
  for (int i = 0; i < 3; ++i) {
    const int j = (i + 1) % 3, k = (i + 2) % 3;
    e[i][0] = Sub(Mul(y[j], w[k]), Mul(y[k], w[j]));
    e[i][1] = Sub(Mul(x[k], w[j]), Mul(x[j], w[k]));
    e[i][2] = Sub(Mul(x[j], y[k]), Mul(x[k], y[j]));
  }
  const __m256 det = Add(Add(Mul(x[0], e[0][0]), Mul(x[1], e[1][0])), Mul(x[2], e[2][0]));
  const __m256 zero = _mm256_setzero_ps();
  const __m256 drawable = _mm256_and_ps(_mm256_cmp_ps(det, zero, _CMP_NEQ_OQ),
                                        _mm256_cmp_ps(Sub(det, det), zero, _CMP_EQ_OQ));
  // det < 0 exactly where its sign bit is set (0 and NaN are not drawable).
  const __m256 sign = _mm256_and_ps(det, _mm256_set1_ps(-0.0f));
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) e[i][j] = _mm256_xor_ps(e[i][j], sign);
  }
  const __m256i x_first = LoadLanes(triangles.x_first + first);
  const __m256i x_last = LoadLanes(triangles.x_last + first);
  const __m256i y_last = LoadLanes(triangles.y_last + first);
  const __m256i pixels = LoadLanes(triangles.pixels + first);
  const __m256i width = _mm256_set1_epi32(target.shape.width);
  __m128i most = _mm_max_epi32(_mm256_castsi256_si128(pixels), _mm256_extracti128_si256(pixels, 1));
  most = _mm_max_epi32(most, _mm_shuffle_epi32(most, _MM_SHUFFLE(1, 0, 3, 2)));
  most = _mm_max_epi32(most, _mm_shuffle_epi32(most, _MM_SHUFFLE(2, 3, 0, 1)));
  const int steps = _mm_cvtsi128_si32(most);
  __m256i px = x_first, py = LoadLanes(triangles.y_first + first);
  alignas(32) float b[3][kLanes];
  alignas(32) float depth[kLanes];
  alignas(32) int32_t pixel[kLanes];
  for (int step = 0; step < steps; ++step) {
    // Lanes whose triangle has fewer candidates have run past their last row.
    const __m256 in_bounds =
        _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(py, y_last)), drawable);
    const __m256 cx = _mm256_i32gather_ps(target.centers.columns, px, 4);
    const __m256 cy = _mm256_i32gather_ps(target.centers.rows, _mm256_min_epi32(py, y_last), 4);
    __m256 edge[3];
    __m256 inside = in_bounds;
    for (int i = 0; i < 3; ++i) {
      edge[i] = Add(Add(Mul(e[i][0], cx), Mul(e[i][1], cy)), e[i][2]);
      inside = _mm256_and_ps(inside, _mm256_cmp_ps(edge[i], zero, _CMP_GE_OQ));
    }
    const __m256 sum = Add(Add(edge[0], edge[1]), edge[2]);
    inside = _mm256_and_ps(inside, _mm256_cmp_ps(sum, zero, _CMP_GT_OQ));
    __m256 bary[3];
    for (int i = 0; i < 3; ++i) bary[i] = _mm256_div_ps(edge[i], sum);
    const __m256 clip_z = Add(Add(Mul(bary[0], z[0]), Mul(bary[1], z[1])), Mul(bary[2], z[2]));
    const __m256 clip_w = Add(Add(Mul(bary[0], w[0]), Mul(bary[1], w[1])), Mul(bary[2], w[2]));
    const __m256 d = _mm256_div_ps(clip_z, clip_w);
    inside = _mm256_and_ps(inside,
                           _mm256_and_ps(_mm256_cmp_ps(d, _mm256_set1_ps(-1.0f), _CMP_GE_OQ),
                                         _mm256_cmp_ps(d, _mm256_set1_ps(1.0f), _CMP_LE_OQ)));
    unsigned lanes = static_cast<unsigned>(_mm256_movemask_ps(inside));
    for (int i = 0; i < 3; ++i) _mm256_store_ps(b[i], bary[i]);
    _mm256_store_ps(depth, d);
    _mm256_store_si256(reinterpret_cast<__m256i*>(pixel),
                       _mm256_add_epi32(_mm256_mullo_epi32(py, width), px));
    for (; lanes != 0; lanes &= lanes - 1) {
      const int lane = __builtin_ctz(lanes);
      const int64_t p = pixel[lane];
      const int32_t t = ids[lane];
      if (!Wins(depth[lane], t, target.z_buffer[p], target.ids[p])) continue;
      target.z_buffer[p] = depth[lane];
      target.ids[p] = t;
      for (int i = 0; i < 3; ++i) target.barycentrics[3 * p + i] = b[i][lane];
    }
    // Next candidate: along the row, then the start of the next row.
    px = _mm256_add_epi32(px, _mm256_set1_epi32(1));
    const __m256i wrap = _mm256_cmpgt_epi32(px, x_last);
    px = _mm256_blendv_epi8(px, x_first, wrap);
    py = _mm256_sub_epi32(py, wrap);
  }
}

// Sorts the triangles of a pass into classes (Add, no branch on the class)
// and draws them a chunk at a time; the groups not yet full wait for the
// next chunk, and Finish draws them.
class GroupedDrawer {
 public:
  explicit GroupedDrawer(const ImageTarget& target)
      : target_(target), classes_(new TriangleClass[kEmptyClass + 1]) {}

  // Triangle t with bounds [x_first, x_last] x [y_first, y_last]; `any`:
  // whether the bounds hold a pixel centre (if not, nothing is drawn).
  void Add(int32_t t, int x_first, int x_last, int y_first, int y_last, bool any) {
    // In 64 bits and clamped: the bounds of an empty triangle can be anything.
    const int64_t area = (int64_t{x_last} - x_first + 1) * (int64_t{y_last} - y_first + 1);
    const int pixels = static_cast<int>(
        std::min<int64_t>(std::max<int64_t>(area, 1), kMaxGroupedPixels + 1));
    TriangleClass& to = classes_[ClassOf(pixels, any)];
    const int slot = to.size;
    to.id[slot] = t;
    to.pixels[slot] = pixels;
    to.x_first[slot] = x_first;
    to.x_last[slot] = x_last;
    to.y_first[slot] = y_first;
    to.y_last[slot] = y_last;
    to.size = slot + 1;
    classes_[kEmptyClass].size = 0;
    if (++added_ == kTrianglesPerChunk) DrawChunk();
  }

  // Draws what is left, the empty lanes of the last groups repeating lane 0
  // (drawing a triangle twice changes nothing: it does not win against
  // itself).
  void Finish() {
    DrawChunk();
    for (int c = 0; c < kGroupedClasses; ++c) {
      TriangleClass& triangles = classes_[c];
      if (triangles.size == 0) continue;
      for (int lane = triangles.size; lane < kLanes; ++lane) triangles.Copy(0, lane);
      DrawGroup(target_, triangles, 0);
      triangles.size = 0;
    }
  }

 private:
  void DrawChunk() {
    added_ = 0;
    for (int c = 0; c < kGroupedClasses; ++c) {
      TriangleClass& triangles = classes_[c];
      const int full = triangles.size / kLanes * kLanes;
      for (int first = 0; first < full; first += kLanes) DrawGroup(target_, triangles, first);
      for (int i = full; i < triangles.size; ++i) triangles.Copy(i, i - full);
      triangles.size -= full;
    }
    TriangleClass& large = classes_[kLargeClass];
    for (int i = 0; i < large.size; ++i) {
      DrawTriangle(target_, large.id[i], large.x_first[i], large.x_last[i], large.y_first[i],
                   large.y_last[i]);
    }
    large.size = 0;
  }

  const ImageTarget& target_;
  std::unique_ptr<TriangleClass[]> classes_;  // about 100 KB
  int added_ = 0;
};

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif  // MGC_RASTERIZE_AVX2

// Bounds of triangle t within rows [row_begin, row_end), from the image's
// vertex ranges; false when they hold no pixel centre.
bool BoundsOf(const ImageTarget& target, const VertexPixelRange* ranges, int64_t t,
              int row_begin, int row_end, BoundedTriangle* bounded) {
  const int32_t* corners = target.triangles + 3 * t;
  bounded->id = static_cast<int32_t>(t);
  return TriangleBounds(ranges[corners[0]], ranges[corners[1]], ranges[corners[2]],
                        target.shape.width, row_begin, row_end, &bounded->x_first,
                        &bounded->x_last, &bounded->y_first, &bounded->y_last);
}

VertexPixelRange Stored(const VertexPixelRange& range, VertexPixelRange*) { return range; }

#if MGC_RASTERIZE_SSE2
// A VertexPixelRange in 16-bit lanes (x_first, y_first, -x_last, -y_last),
// for images up to kMaxPackedSize pixels a side: TriangleBounds is then two
// vector minima of the three corners and one maximum with the clamps.
struct PackedPixelRange {
  int16_t lanes[4];
};

constexpr int kMaxPackedSize = 32000;

PackedPixelRange Stored(const VertexPixelRange& range, PackedPixelRange*) {
  return {{static_cast<int16_t>(range.x_first), static_cast<int16_t>(range.y_first),
           static_cast<int16_t>(-range.x_last), static_cast<int16_t>(-range.y_last)}};
}

inline __m128i LoadPacked(const PackedPixelRange* ranges, int32_t vertex) {
  return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(ranges + vertex));
}

// TriangleBounds on packed ranges (the same minima, maxima and clamps),
// without a branch: *bounded is always written, and the result says whether
// it holds a pixel centre.
inline bool BoundsOf(const ImageTarget& target, const PackedPixelRange* ranges, int64_t t,
                     int row_begin, int row_end, BoundedTriangle* bounded) {
  const int32_t* corners = target.triangles + 3 * t;
  const __m128i a = LoadPacked(ranges, corners[0]), b = LoadPacked(ranges, corners[1]),
                c = LoadPacked(ranges, corners[2]);
  __m128i m = _mm_min_epi16(_mm_min_epi16(a, b), c);
  // kBehindEye is below every other first row: the largest is kBehindEye
  // exactly when every corner is behind the eye.
  const __m128i highest = _mm_max_epi16(_mm_max_epi16(a, b), c);
  const bool behind = static_cast<int16_t>(_mm_extract_epi16(highest, 1)) == kBehindEye;
  const __m128i lower = _mm_setr_epi16(0, static_cast<int16_t>(row_begin),
                                       static_cast<int16_t>(1 - target.shape.width),
                                       static_cast<int16_t>(1 - row_end), 0, 0, 0, 0);
  m = _mm_max_epi16(m, lower);
  // first - last in lanes 0 (x) and 1 (y): positive when empty.
  const __m128i span = _mm_add_epi16(m, _mm_shufflelo_epi16(m, _MM_SHUFFLE(1, 0, 3, 2)));
  const bool empty = (_mm_movemask_epi8(_mm_cmpgt_epi16(span, _mm_setzero_si128())) & 0xF) != 0;
  bounded->id = static_cast<int32_t>(t);
  bounded->x_first = static_cast<int16_t>(_mm_extract_epi16(m, 0));
  bounded->y_first = static_cast<int16_t>(_mm_extract_epi16(m, 1));
  bounded->x_last = -static_cast<int16_t>(_mm_extract_epi16(m, 2));
  bounded->y_last = -static_cast<int16_t>(_mm_extract_epi16(m, 3));
  return !(behind | empty);
}
#endif  // MGC_RASTERIZE_SSE2

template <typename Range>
void ComputeVertexRanges(const RasterShape& shape, const float* vertices, int64_t count,
                         Range* ranges) {
  for (int64_t i = 0; i < count; ++i) {
    ranges[i] = Stored(VertexRange(vertices + 4 * i, shape.width, shape.height), ranges);
  }
}

// A whole image on one thread: ranges, then every triangle in order.
template <typename Range>
void RasterizeImage(const ImageTarget& target, std::vector<Range>* ranges) {
  const RasterShape& shape = target.shape;
  ranges->resize(shape.num_vertices);
  ComputeVertexRanges(shape, target.vertices, shape.num_vertices, ranges->data());
  ClearRows(target, 0, shape.height);
  BoundedTriangle b{};
#if MGC_RASTERIZE_AVX2
  if (HasAvx2()) {
    GroupedDrawer drawer(target);
    for (int64_t t = 0; t < shape.num_triangles; ++t) {
      const bool any = BoundsOf(target, ranges->data(), t, 0, shape.height, &b);
      drawer.Add(static_cast<int32_t>(t), b.x_first, b.x_last, b.y_first, b.y_last, any);
    }
    drawer.Finish();
    return;
  }
#endif
  for (int64_t t = 0; t < shape.num_triangles; ++t) {
    if (BoundsOf(target, ranges->data(), t, 0, shape.height, &b)) {
      DrawTriangle(target, b.id, b.x_first, b.x_last, b.y_first, b.y_last);
    }
  }
}

// Block b of `blocks` holds rows [b * H / blocks, (b + 1) * H / blocks).
int BlockRowBegin(int64_t block, int64_t blocks, int height) {
  return static_cast<int>(block * height / blocks);
}

int BlockOfRow(int row, int64_t blocks, int height) {
  return static_cast<int>(((row + 1) * blocks - 1) / height);
}

// Appends the triangles [begin, end) whose bounds hold a pixel centre to
// the lists of the blocks their rows reach (lists[block]).
template <typename Range>
void SortIntoBlocks(const ImageTarget& target, const Range* ranges, int64_t begin,
                    int64_t end, int64_t blocks, std::vector<BoundedTriangle>* lists) {
  const int height = target.shape.height;
  // Room for twice an even share (a face crowds the middle blocks), so few
  // lists grow again.
  for (int64_t block = 0; block < blocks; ++block) {
    lists[block].reserve(2 * (end - begin) / blocks + 16);
  }
  BoundedTriangle b;
  for (int64_t t = begin; t < end; ++t) {
    if (!BoundsOf(target, ranges, t, 0, height, &b)) continue;
    const int last = BlockOfRow(b.y_last, blocks, height);
    for (int block = BlockOfRow(b.y_first, blocks, height); block <= last; ++block) {
      lists[block].push_back(b);
    }
  }
}

// Rows of one block: its lists from every chunk of triangles.
void RasterizeBlock(const ImageTarget& target, const std::vector<BoundedTriangle>* lists,
                    int64_t chunks, int64_t blocks, int64_t block) {
  const int row_begin = BlockRowBegin(block, blocks, target.shape.height);
  const int row_end = BlockRowBegin(block + 1, blocks, target.shape.height);
  ClearRows(target, row_begin, row_end);
#if MGC_RASTERIZE_AVX2
  if (HasAvx2()) {
    GroupedDrawer drawer(target);
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
      for (const BoundedTriangle& b : lists[chunk * blocks + block]) {
        drawer.Add(b.id, b.x_first, b.x_last, std::max(b.y_first, row_begin),
                   std::min(b.y_last, row_end - 1), true);
      }
    }
    drawer.Finish();
    return;
  }
#endif
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    for (const BoundedTriangle& b : lists[chunk * blocks + block]) {
      DrawTriangle(target, b.id, b.x_first, b.x_last, std::max(b.y_first, row_begin),
                   std::min(b.y_last, row_end - 1));
    }
  }
}

// Blocks of rows per image so that a batch smaller than the thread count
// still keeps every thread busy: blocks_per_thread blocks per thread, so
// that a thread the machine delays leaves its blocks to the others.
int64_t BlocksPerImage(const RasterShape& shape, int num_threads, int blocks_per_thread = 1) {
  if (shape.batch >= num_threads) return 1;
  return std::min<int64_t>(shape.height, CeilDiv(int64_t{num_threads} * blocks_per_thread,
                                                 std::max<int64_t>(1, shape.batch)));
}

// Forward blocks per thread when an image is split: an extra block costs
// its part of the triangles that cross block boundaries.
constexpr int kForwardBlocksPerThread = 4;

// The gradient's per-triangle sums (AddPixelVertexGradients) while the
// pixels are read in order, in a small direct-mapped table keyed by triangle
// id. A triangle's pixels in the next rows usually find its entry still
// there, so its setup and the scattered adds of its 9 values into the
// vertices happen about once per triangle rather than once per run of
// pixels. Entries leave in an order fixed by the pixels, so results repeat.
class TriangleSums {
 public:
  TriangleSums(const float* vertices, const int32_t* triangles, float* d_vertices)
      : vertices_(vertices), triangles_(triangles), d_vertices_(d_vertices) {
    for (Entry& entry : entries_) entry.id = -1;
  }

  // Adds one covered pixel of triangle `id` (in [0, T)).
  void AddPixel(int32_t id, const float* barycentric, const float* d_barycentric) {
    if (id != last_id_) {
      last_ = &entries_[Slot(id)];
      last_id_ = id;
      if (last_->id != id) {
        Flush(*last_);
        Start(*last_, id);
      }
    }
    if (last_->drawable) Add(*last_, barycentric, d_barycentric);
  }

  void FlushAll() {
    for (Entry& entry : entries_) Flush(entry);
  }

 private:
  static constexpr int kLogEntries = 10;
  static constexpr int kEntries = 1 << kLogEntries;

  // Multiplicative hashing: neighbouring triangles of a mesh often have ids
  // a fixed stride apart, which low bits alone would map to one slot.
  static uint32_t Slot(int32_t id) {
    return (static_cast<uint32_t>(id) * 2654435761u) >> (32 - kLogEntries);
  }

#if MGC_RASTERIZE_SSE2
  struct Entry {
    SseTriangle triangle;
    __m128 sum[3];  // sum[c]: vertex c's (x, y, w) in lanes 0-2
    int32_t corners[3];
    int32_t id;     // -1: empty
    bool drawable;
  };

  bool Setup(const int32_t* corners, Entry& entry) {
    std::fill_n(entry.sum, 3, _mm_setzero_ps());
    return SseSetupTriangle(Corner(vertices_, corners, 0), Corner(vertices_, corners, 1),
                            Corner(vertices_, corners, 2), &entry.triangle);
  }

  // AddPixelVertexGradients, lane j holding component j.
  static void Add(Entry& entry, const float* barycentric, const float* d_barycentric) {
    const float g_dot_b = d_barycentric[0] * barycentric[0] + d_barycentric[1] * barycentric[1] +
                          d_barycentric[2] * barycentric[2];
    const __m128* rows = entry.triangle.rows;
    const __m128 u = _mm_add_ps(
        _mm_add_ps(_mm_mul_ps(rows[0], _mm_set1_ps(d_barycentric[0] - g_dot_b)),
                   _mm_mul_ps(rows[1], _mm_set1_ps(d_barycentric[1] - g_dot_b))),
        _mm_mul_ps(rows[2], _mm_set1_ps(d_barycentric[2] - g_dot_b)));
    for (int c = 0; c < 3; ++c) {
      entry.sum[c] = _mm_add_ps(entry.sum[c], _mm_mul_ps(u, _mm_set1_ps(barycentric[c])));
    }
  }

  void Scatter(const int32_t* corners, const Entry& entry) {
    const __m128 scale = _mm_set1_ps(-1.0f / entry.triangle.abs_det);  // VertexGradientScale
    const __m128 keep = _mm_castsi128_ps(_mm_set_epi32(0, -1, -1, -1));
    for (int c = 0; c < 3; ++c) {
      // (x, y, w, 0) -> (x, y, 0, w), the layout of a vertex; z gets exactly 0.
      const __m128 xyw = _mm_and_ps(_mm_mul_ps(entry.sum[c], scale), keep);
      float* d = d_vertices_ + 4 * int64_t{corners[c]};
      _mm_storeu_ps(d, _mm_add_ps(_mm_loadu_ps(d),
                                  _mm_shuffle_ps(xyw, xyw, _MM_SHUFFLE(2, 3, 1, 0))));
    }
  }
#else
  struct Entry {
    TriangleSetup setup;
    float sum[3][3];
    int32_t corners[3];
    int32_t id;  // -1: empty
    bool drawable;
  };

  bool Setup(const int32_t* corners, Entry& entry) {
    std::fill_n(&entry.sum[0][0], 9, 0.0f);
    return SetupTriangle(Corner(vertices_, corners, 0), Corner(vertices_, corners, 1),
                         Corner(vertices_, corners, 2), &entry.setup);
  }

  static void Add(Entry& entry, const float* barycentric, const float* d_barycentric) {
    AddPixelVertexGradients(entry.setup, barycentric, d_barycentric, entry.sum);
  }

  void Scatter(const int32_t* corners, const Entry& entry) {
    const float scale = VertexGradientScale(entry.setup);
    for (int c = 0; c < 3; ++c) {
      float* d = d_vertices_ + 4 * int64_t{corners[c]};
      for (int j = 0; j < 3; ++j) d[kComponent[j]] += entry.sum[c][j] * scale;
    }
  }
#endif

  // The corners are kept: the flush, often long after, would otherwise
  // wait for the triangle to be read again.
  void Start(Entry& entry, int32_t id) {
    entry.id = id;
    std::copy_n(triangles_ + 3 * int64_t{id}, 3, entry.corners);
    // Fails only for ids the forward pass would not have written (no pixel
    // of a zero-area triangle is covered): such pixels add nothing.
    entry.drawable = Setup(entry.corners, entry);
  }

  void Flush(Entry& entry) {
    if (entry.id < 0) return;
    if (entry.drawable) Scatter(entry.corners, entry);
    entry.id = -1;
  }

  const float* vertices_;
  const int32_t* triangles_;
  float* d_vertices_;
  Entry entries_[kEntries];
  Entry* last_ = nullptr;
  int32_t last_id_ = -1;
};

// Gradient of pixels [begin, end) of `image` into d_vertices [V, 4] (zeroed
// here). Returns -1 or the flat index of the first invalid triangle id.
int64_t GradientOfPixels(const RasterizeGradArgs& args, int64_t image, int64_t begin,
                         int64_t end, float* d_vertices) {
  const RasterShape& shape = args.shape;
  std::fill_n(d_vertices, 4 * shape.num_vertices, 0.0f);
  // The image's vertices are read in triangle order below, scattered: one
  // sequential pass first brings them into the cache at streaming speed.
  const float* vertices = args.clip_vertices + image * shape.num_vertices * 4;
  float touched = 0.0f;
  for (int64_t i = 0; i < 4 * shape.num_vertices; i += 16) touched += vertices[i];
  volatile float sink = touched;
  (void)sink;
  // On the heap: about 130 KB.
  auto sums = std::make_unique<TriangleSums>(args.clip_vertices + image * shape.num_vertices * 4,
                                             args.triangles, d_vertices);
  // Pixels in chunks: each chunk's ids are checked branch-free first (it
  // vectorises; as unsigned, id + 1 is in [0, T] exactly for ids in
  // [-1, T)), then read again while still in the cache.
  constexpr int64_t kPixelsPerChunk = 4096;
  const int64_t image_end = (image + 1) * shape.PixelsPerImage();
  const uint32_t limit = static_cast<uint32_t>(shape.num_triangles);
  for (int64_t first = begin; first < end; first += kPixelsPerChunk) {
    const int64_t last = std::min(end, first + kPixelsPerChunk);
    uint32_t any_invalid = 0;
    for (int64_t pixel = first; pixel < last; ++pixel) {
      any_invalid |= static_cast<uint32_t>(args.triangle_ids[pixel]) + 1u > limit;
    }
    if (any_invalid) {
      for (int64_t pixel = first; pixel < last; ++pixel) {
        const int32_t id = args.triangle_ids[pixel];
        if (id < -1 || id >= shape.num_triangles) return pixel;
      }
    }
    for (int64_t pixel = first; pixel < last; ++pixel) {
      const int32_t id = args.triangle_ids[pixel];
      if (id >= 0) {
#if MGC_RASTERIZE_SSE2
        // The triangles and vertices of pixels ahead, read at random: their
        // cache lines fetched early (ids past `end` are in the image, but
        // not yet checked: the near one is bounded before it is read).
        const int32_t far = args.triangle_ids[std::min(pixel + kPrefetchFar, image_end - 1)];
        if (far >= 0) {
          _mm_prefetch(reinterpret_cast<const char*>(args.triangles + 3 * int64_t{far}),
                       _MM_HINT_T0);
        }
        const int32_t near = args.triangle_ids[std::min(pixel + kPrefetchNear, image_end - 1)];
        if (static_cast<uint32_t>(near) < limit) {
          const int32_t* corners = args.triangles + 3 * int64_t{near};
          for (int c = 0; c < 3; ++c) {
            const int64_t corner = corners[c];
            _mm_prefetch(reinterpret_cast<const char*>(vertices + 4 * corner), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(d_vertices + 4 * corner), _MM_HINT_T0);
          }
        }
#endif
        sums->AddPixel(id, args.barycentrics + 3 * pixel, args.d_barycentrics + 3 * pixel);
      }
    }
  }
  sums->FlushAll();
  return -1;
}

}  // namespace

std::string OutputSizeProblem(int64_t batch, int width, int height) {
  // Exact in uint64: width and height are below 2^31.
  const uint64_t per_image = static_cast<uint64_t>(width) * static_cast<uint64_t>(height) * 3;
  uint64_t values = per_image;
  const bool overflow = batch > 0 && __builtin_mul_overflow(
                                         static_cast<uint64_t>(batch), per_image, &values);
  if (!overflow && values <= static_cast<uint64_t>(kMaxOutputValues)) return "";
  std::string size = "image of " + std::to_string(width) + " x " + std::to_string(height) +
                     " pixels";
  if (batch > 0) size += " x batch " + std::to_string(batch);
  return size + " has " + (overflow ? "at least 2^64" : std::to_string(values)) +
         " barycentric values, more than the op supports (" +
         std::to_string(kMaxOutputValues) + ")";
}

int64_t FindInvalidTriangleIndex(const int32_t* triangles,
                                 int64_t num_triangles, int64_t num_vertices) {
  // Every op call checks all 3T indices: first a branch-free pass (it
  // vectorises), then the search for the first bad one only when needed.
  // As unsigned, a negative index is 2^31 or more: above any allowed one.
  const uint32_t limit = static_cast<uint32_t>(std::min<int64_t>(num_vertices, int64_t{1} << 31));
  uint32_t any_bad = 0;
  for (int64_t i = 0; i < 3 * num_triangles; ++i) {
    any_bad |= static_cast<uint32_t>(triangles[i]) >= limit;
  }
  if (!any_bad) return -1;
  for (int64_t i = 0; i < 3 * num_triangles; ++i) {
    if (triangles[i] < 0 || triangles[i] >= num_vertices) return i;
  }
  return -1;
}

void SerialFor(int64_t count, int64_t, const std::function<void(int64_t, int64_t)>& body) {
  if (count > 0) body(0, count);
}

namespace {

// What SharedCounterFor's threads share. Helpers hold it by shared_ptr, so
// one that starts after the call has returned still finds it; `body` is
// only called for a chunk taken while the caller waits.
struct SharedChunks {
  SharedChunks(int64_t count, int64_t chunk, const std::function<void(int64_t, int64_t)>* body)
      : count(count), chunk(chunk), body(body) {}

  // Takes and runs chunks until none are left.
  void Work() {
    for (;;) {
      const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= count) return;
      const int64_t end = std::min(count, begin + chunk);
      (*body)(begin, end);
      if (done.fetch_add(end - begin, std::memory_order_acq_rel) + (end - begin) == count) {
        std::lock_guard<std::mutex> lock(mutex);
        finished.notify_all();
      }
    }
  }

  void WaitUntilDone() {
    std::unique_lock<std::mutex> lock(mutex);
    finished.wait(lock, [this] { return done.load(std::memory_order_acquire) == count; });
  }

  const int64_t count, chunk;
  const std::function<void(int64_t, int64_t)>* const body;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mutex;
  std::condition_variable finished;
};

// Units per chunk: enough work (about 2e4 cycles) that taking one is cheap
// next to running it, and at least four chunks per thread so that the
// threads finish close together.
int64_t ChunkSize(int64_t count, int64_t cost_per_unit, int num_threads) {
  const int64_t for_cost = CeilDiv(20000, std::max<int64_t>(1, cost_per_unit));
  const int64_t for_balance = std::max<int64_t>(1, count / (4 * int64_t{num_threads}));
  return std::min(for_cost, for_balance);
}

}  // namespace

void SharedCounterFor(const Schedule& schedule, int num_threads, int64_t count,
                      int64_t cost_per_unit,
                      const std::function<void(int64_t, int64_t)>& body) {
  if (count <= 0) return;
  const int64_t chunk = ChunkSize(count, cost_per_unit, std::max(1, num_threads));
  const int64_t chunks = CeilDiv(count, chunk);
  if (num_threads <= 1 || chunks == 1) {
    body(0, count);
    return;
  }
  auto shared = std::make_shared<SharedChunks>(count, chunk, &body);
  const int64_t helpers = std::min<int64_t>(num_threads - 1, chunks - 1);
  for (int64_t i = 0; i < helpers; ++i) schedule([shared] { shared->Work(); });
  shared->Work();
  shared->WaitUntilDone();
}

template <typename Range>
void RasterizeWith(const RasterizeArgs& args, const ParallelFor& parallel_for, int num_threads) {
  const RasterShape& shape = args.shape;
  const PixelCenterTables tables(shape.width, shape.height);
  const int64_t T = shape.num_triangles, V = shape.num_vertices;
  const int64_t blocks = BlocksPerImage(shape, num_threads, kForwardBlocksPerThread);
  // Cost hints in cycles: about 20 per vertex, 30 per triangle, 60 per pixel.
  if (blocks == 1) {
    parallel_for(shape.batch, 20 * V + 30 * T + 60 * shape.PixelsPerImage(),
                 [&](int64_t begin, int64_t end) {
                   std::vector<Range> ranges;
                   for (int64_t image = begin; image < end; ++image) {
                     RasterizeImage(TargetOf(args, tables, image), &ranges);
                   }
                 });
    return;
  }
  // Several blocks per image: vertex ranges, triangles sorted into blocks by
  // chunks, then the blocks, each pass spread over the threads.
  std::vector<Range> ranges(shape.batch * V);
  const int64_t vertex_chunks = std::max<int64_t>(1, CeilDiv(V, kVerticesPerChunk));
  parallel_for(shape.batch * vertex_chunks, 20 * kVerticesPerChunk,
               [&](int64_t begin, int64_t end) {
                 for (int64_t unit = begin; unit < end; ++unit) {
                   const int64_t image = unit / vertex_chunks;
                   const int64_t first = (unit % vertex_chunks) * kVerticesPerChunk;
                   const int64_t count = std::min(kVerticesPerChunk, V - first);
                   ComputeVertexRanges(shape, args.clip_vertices + 4 * (image * V + first),
                                       std::max<int64_t>(0, count),
                                       ranges.data() + image * V + first);
                 }
               });
  const int64_t chunks = blocks;  // chunks of triangles per image
  std::vector<std::vector<BoundedTriangle>> lists(shape.batch * chunks * blocks);
  parallel_for(shape.batch * chunks, 30 * CeilDiv(T, chunks), [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t image = unit / chunks, chunk = unit % chunks;
      SortIntoBlocks(TargetOf(args, tables, image), ranges.data() + image * V,
                     chunk * T / chunks, (chunk + 1) * T / chunks, blocks,
                     lists.data() + unit * blocks);
    }
  });
  parallel_for(shape.batch * blocks, 60 * CeilDiv(shape.PixelsPerImage(), blocks),
               [&](int64_t begin, int64_t end) {
                 for (int64_t unit = begin; unit < end; ++unit) {
                   const int64_t image = unit / blocks;
                   RasterizeBlock(TargetOf(args, tables, image),
                                  lists.data() + image * chunks * blocks, chunks, blocks,
                                  unit % blocks);
                 }
               });
}

void RasterizeCpu(const RasterizeArgs& args, const ParallelFor& parallel_for,
                  int num_threads) {
  const RasterShape& shape = args.shape;
  if (shape.batch * shape.PixelsPerImage() == 0) return;
#if MGC_RASTERIZE_SSE2
  if (shape.width <= kMaxPackedSize && shape.height <= kMaxPackedSize) {
    RasterizeWith<PackedPixelRange>(args, parallel_for, num_threads);
    return;
  }
#endif
  RasterizeWith<VertexPixelRange>(args, parallel_for, num_threads);
}

int64_t RasterizeGradCpu(const RasterizeGradArgs& args, const ParallelFor& parallel_for,
                         int num_threads) {
  const RasterShape& shape = args.shape;
  const int64_t pixels = shape.PixelsPerImage();
  const int64_t values = 4 * shape.num_vertices;
  if (shape.batch == 0 || values == 0) return -1;
  // Each extra unit costs a zeroed [V, 4] buffer and its sum: only as many
  // as the threads need.
  const int64_t units = BlocksPerImage(shape, num_threads);
  // Unit 0 of each image writes d_clip_vertices, the others their own buffer.
  std::vector<float> partial((units - 1) * shape.batch * values);
  std::vector<int64_t> invalid(shape.batch * units, -1);
  parallel_for(shape.batch * units, 30 * pixels / units, [&](int64_t begin, int64_t end) {
    for (int64_t unit = begin; unit < end; ++unit) {
      const int64_t image = unit / units, part = unit % units;
      const int64_t rows_begin = part * shape.height / units;
      const int64_t rows_end = (part + 1) * shape.height / units;
      float* out = part == 0 ? args.d_clip_vertices + image * values
                             : partial.data() + ((part - 1) * shape.batch + image) * values;
      invalid[unit] = GradientOfPixels(args, image, image * pixels + rows_begin * shape.width,
                                       image * pixels + rows_end * shape.width, out);
    }
  });
  for (int64_t index : invalid) {
    if (index >= 0) return index;  // Units are in pixel order.
  }
  if (units == 1) return -1;
  const int64_t chunks = CeilDiv(values, 4 * kVerticesPerChunk);
  parallel_for(shape.batch * chunks, 4 * units * kVerticesPerChunk,
               [&](int64_t begin, int64_t end) {
                 for (int64_t unit = begin; unit < end; ++unit) {
                   const int64_t image = unit / chunks;
                   const int64_t first = (unit % chunks) * 4 * kVerticesPerChunk;
                   const int64_t last = std::min(values, first + 4 * kVerticesPerChunk);
                   float* out = args.d_clip_vertices + image * values;
                   for (int64_t part = 1; part < units; ++part) {
                     const float* in = partial.data() + ((part - 1) * shape.batch + image) * values;
                     for (int64_t i = first; i < last; ++i) out[i] += in[i];
                   }
                 }
               });
  return -1;
}

}  // namespace mgc
