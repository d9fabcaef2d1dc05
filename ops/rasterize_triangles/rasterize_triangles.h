// TensorFlow-free core of the RasterizeTriangles op: plain pointers in,
// plain pointers out, one signature per pass for every backend. The op layer
// (rasterize_triangles_kernels.cc), the C interface for ctypes
// (rasterize_core_c_api.h) and the sanitizer driver (parity_harness.cu.cc)
// call these functions.
//
// Layouts (row-major): clip_vertices [B, V, 4], triangles [T, 3],
// barycentrics [B, H, W, 3], triangle_ids [B, H, W], z_buffer [B, H, W],
// d_clip_vertices [B, V, 4]. Row 0 of an image is its bottom (NDC y = -1).
#ifndef MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_TRIANGLES_H_
#define MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_TRIANGLES_H_

#include <cstdint>
#include <functional>
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

// Inputs and outputs of the forward pass. On the GPU every pointer is device
// memory; depth_id_keys is the GPU's scratch of B * H * W entries (unused on
// the CPU).
struct RasterizeArgs {
  RasterShape shape;
  const float* clip_vertices;
  const int32_t* triangles;
  float* barycentrics;
  int32_t* triangle_ids;
  float* z_buffer;
  uint64_t* depth_id_keys;
};

// Inputs and output of the backward pass: d_barycentrics is dL/dbarycentrics,
// d_clip_vertices receives dL/dclip_vertices (its z column 0).
struct RasterizeGradArgs {
  RasterShape shape;
  const float* clip_vertices;
  const int32_t* triangles;
  const float* barycentrics;
  const int32_t* triangle_ids;
  const float* d_barycentrics;
  float* d_clip_vertices;
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

// Runs body(begin, end) over disjoint ranges covering [0, count), possibly
// at once on several threads; cost_per_unit is a hint in cycles.
using ParallelFor = std::function<void(
    int64_t count, int64_t cost_per_unit,
    const std::function<void(int64_t begin, int64_t end)>& body)>;

// A ParallelFor that runs everything on the calling thread.
void SerialFor(int64_t count, int64_t cost_per_unit,
               const std::function<void(int64_t, int64_t)>& body);

// Starts a task on some other thread (a thread pool's Schedule).
using Schedule = std::function<void(std::function<void()> task)>;

// A ParallelFor over the calling thread and up to num_threads - 1 helper
// tasks started with `schedule`: chunks of units are handed out one at a
// time from a shared counter, so the calling thread starts at once and
// takes chunks until none are left. It returns when every chunk taken is
// done; a helper that starts later finds none left and returns without
// touching `body`. A pass then never waits for a worker that is slow to
// wake, as a sleeping thread of a virtual machine can be for a millisecond.
void SharedCounterFor(const Schedule& schedule, int num_threads, int64_t count,
                      int64_t cost_per_unit,
                      const std::function<void(int64_t, int64_t)>& body);

// CPU forward pass: blocks of rows (whole images, or ceil(num_threads /
// batch) blocks of each) rasterized on their own, triangles in order, so the
// result does not depend on how the work was split.
void RasterizeCpu(const RasterizeArgs& args, const ParallelFor& parallel_for,
                  int num_threads);

// CPU backward pass over the covered pixels only. Returns -1, or the flat
// index of the first pixel whose triangle id is outside [-1, T) (then
// d_clip_vertices is unspecified). An image is split into
// ceil(num_threads / batch) blocks of rows summed in a fixed order, so
// results repeat exactly for a given batch size and thread count.
int64_t RasterizeGradCpu(const RasterizeGradArgs& args,
                         const ParallelFor& parallel_for, int num_threads);

// GPU versions, enqueued on `stream`. Return the CUDA error code (0 on
// success). The gradient skips pixels whose id is outside [0, T).
int RasterizeCuda(const RasterizeArgs& args, CUstream_st* stream);
int RasterizeGradCuda(const RasterizeGradArgs& args, CUstream_st* stream);

}  // namespace mgc

#endif  // MGC_OPS_RASTERIZE_TRIANGLES_RASTERIZE_TRIANGLES_H_
