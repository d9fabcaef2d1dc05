// TensorFlow-free core of the RasterizeTriangles op: plain pointers in,
// plain pointers out. The op layer (rasterize_triangles_kernels.cc) and the
// parity harness (parity_harness.cu.cc) both call these functions.
//
// Layouts (row-major): clip_vertices [B, V, 4], triangles [T, 3],
// barycentrics [B, H, W, 3], triangle_ids [B, H, W], z_buffer [B, H, W],
// d_clip_vertices [B, V, 4]. Row 0 of an image is its bottom (NDC y = -1).
#ifndef MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_TRIANGLES_H_
#define MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_TRIANGLES_H_

#include <cstdint>
#include <string>

#include "rasterize_math.h"

struct CUstream_st;  // cudaStream_t without including the CUDA headers.

namespace mgc {

struct RasterShape {
  int64_t batch;
  int64_t num_vertices;
  int64_t num_triangles;
  int width;
  int height;

  MGC_HOST_DEVICE int64_t PixelsPerImage() const { return int64_t{width} * height; }
};

// The most values one output may hold (barycentrics [B, H, W, 3]): int32,
// like the vertex and triangle counts. A fixed bound makes an image too large
// fail before anything is allocated, the same on every machine, rather than
// with ResourceExhausted; the shape function, the kernels and the Python
// wrapper (MAX_OUTPUT_VALUES) all apply it.
constexpr int64_t kMaxOutputValues = INT32_MAX;

// Why barycentrics [batch, height, width, 3] would hold more than
// kMaxOutputValues values (a message naming the sizes), or "" when they fit.
// batch <= 0 (unknown or empty) checks one image.
std::string OutputSizeProblem(int64_t batch, int width, int height);

// Index into `triangles` (flat, 0 .. 3T-1) of the first vertex index outside
// [0, num_vertices), or -1 when every index is valid.
int64_t FindInvalidTriangleIndex(const int32_t* triangles,
                                 int64_t num_triangles, int64_t num_vertices);

// Forward pass on the CPU, step 1: projects the vertices of image `image`
// to pixel space, screen_vertices [B, V].
void ProjectVerticesCpu(const float* clip_vertices, const RasterShape& shape,
                        int64_t image, ScreenVertex* screen_vertices);

// Forward pass on the CPU, step 2, for rows [row_begin, row_end) of image
// `image`. Independent units: callers may run (image, row band) pairs in
// parallel once step 1 is done for the image.
void RasterizeRowsCpu(const float* clip_vertices,
                      const ScreenVertex* screen_vertices,
                      const int32_t* triangles, const RasterShape& shape,
                      int64_t image, int row_begin, int row_end,
                      float* barycentrics, int32_t* triangle_ids,
                      float* z_buffer);

// Backward pass, step 1, for rows [row_begin, row_end) of image `image`: the
// contribution of each pixel to its triangle's three vertices, written to
// pixel_gradients [B, H, W, 3 vertices, 3 components (x, y, w)].
void PixelGradientsCpu(const float* clip_vertices, const int32_t* triangles,
                       const RasterShape& shape, int64_t image, int row_begin,
                       int row_end, const float* barycentrics,
                       const int32_t* triangle_ids,
                       const float* d_barycentrics, float* pixel_gradients);

// Backward pass, step 2: sums the pixel contributions of image `image` into
// d_clip_vertices, in pixel order, so the result does not depend on how
// step 1 was split across threads.
void ScatterPixelGradientsCpu(const int32_t* triangles,
                              const RasterShape& shape, int64_t image,
                              const int32_t* triangle_ids,
                              const float* pixel_gradients,
                              float* d_clip_vertices);

// GPU versions of the whole forward and backward passes, enqueued on
// `stream`. All pointers are device memory; depth_id_keys is scratch of
// B * H * W entries. Return the CUDA error code (0 on success).
int RasterizeCuda(const float* clip_vertices, const int32_t* triangles,
                  const RasterShape& shape, uint64_t* depth_id_keys,
                  float* barycentrics, int32_t* triangle_ids, float* z_buffer,
                  CUstream_st* stream);

int RasterizeGradCuda(const float* clip_vertices, const int32_t* triangles,
                      const RasterShape& shape, const float* barycentrics,
                      const int32_t* triangle_ids,
                      const float* d_barycentrics, float* d_clip_vertices,
                      CUstream_st* stream);

}  // namespace mgc

#endif  // MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_TRIANGLES_H_
