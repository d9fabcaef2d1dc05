// CUDA implementation of the core (see rasterize_triangles.h). No TensorFlow
// here: the op layer, the C interface and the sanitizer driver call these
// launchers.
//
// Forward: one thread per (image, triangle) runs the shared pixel scan
// (ScanTrianglePixels) over its bounds and keeps the winner per pixel with a
// 64-bit atomicMin on (depth, id), the same order as the CPU kernel's
// in-order "<=" test; a resolve pass then recomputes the winner's
// barycentrics and depth with the shared math, so both devices write
// identical values. Backward: one thread per pixel, the shared per-pixel
// gradient, atomicAdd into the vertices; ids outside [0, T) are skipped.
#include <cuda_runtime.h>

#include "rasterize_math.h"
#include "rasterize_triangles.h"

namespace mgc {
namespace {

constexpr int kThreads = 256;
constexpr unsigned long long kEmptyKey = ~0ull;

int Blocks(int64_t n) { return static_cast<int>((n + kThreads - 1) / kThreads); }

__device__ const float* Corner(const float* vertices, const int32_t* triangle,
                               int corner) {
  return vertices + 4 * int64_t{triangle[corner]};
}

__global__ void FillKeys(int64_t n, unsigned long long* keys) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i < n) keys[i] = kEmptyKey;
}

__global__ void RasterizeTrianglesToKeys(const float* clip_vertices,
                                         const int32_t* triangles,
                                         RasterShape shape,
                                         unsigned long long* keys) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i >= shape.batch * shape.num_triangles) return;
  const int64_t image = i / shape.num_triangles;
  const int64_t t = i % shape.num_triangles;
  const float* vertices = clip_vertices + image * shape.num_vertices * 4;
  const int32_t* triangle = triangles + 3 * t;
  const float* v0 = Corner(vertices, triangle, 0);
  const float* v1 = Corner(vertices, triangle, 1);
  const float* v2 = Corner(vertices, triangle, 2);
  int x_first, x_last, y_first, y_last;
  if (!TriangleBounds(VertexRange(v0, shape.width, shape.height),
                      VertexRange(v1, shape.width, shape.height),
                      VertexRange(v2, shape.width, shape.height), shape.width,
                      0, shape.height, &x_first, &x_last, &y_first, &y_last)) {
    return;
  }
  TriangleSetup setup;
  if (!SetupTriangle(v0, v1, v2, &setup)) return;
  unsigned long long* image_keys = keys + image * shape.PixelsPerImage();
  ScanTrianglePixels(setup, v0, v1, v2,
                     PixelCentersNdc{shape.width, shape.height}, x_first,
                     x_last, y_first, y_last,
                     [&](int x, int y, const float*, float z) {
                       atomicMin(image_keys + int64_t{y} * shape.width + x,
                                 static_cast<unsigned long long>(
                                     DepthIdKey(z, static_cast<int>(t))));
                     });
}

__global__ void ResolveKeys(const float* clip_vertices,
                            const int32_t* triangles, RasterShape shape,
                            const unsigned long long* keys,
                            float* barycentrics, int32_t* triangle_ids,
                            float* z_buffer) {
  const int64_t pixel = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (pixel >= shape.batch * shape.PixelsPerImage()) return;
  const int64_t image = pixel / shape.PixelsPerImage();
  const int64_t in_image = pixel % shape.PixelsPerImage();
  float b[3] = {0.0f, 0.0f, 0.0f};
  float z = 1.0f;
  int32_t id = -1;
  if (keys[pixel] != kEmptyKey) {
    id = TriangleIdFromKey(keys[pixel]);
    const float* vertices = clip_vertices + image * shape.num_vertices * 4;
    const int32_t* triangle = triangles + 3 * int64_t{id};
    const float* v0 = Corner(vertices, triangle, 0);
    const float* v1 = Corner(vertices, triangle, 1);
    const float* v2 = Corner(vertices, triangle, 2);
    TriangleSetup setup;
    // The same calls succeeded when the key was written (identical code and
    // rounding with --fmad=false); should they not, leave the pixel empty
    // rather than half-written.
    const bool covered =
        SetupTriangle(v0, v1, v2, &setup) &&
        CoverPixel(setup, v0, v1, v2,
                   PixelCenterNdc(static_cast<int>(in_image % shape.width),
                                  shape.width),
                   PixelCenterNdc(static_cast<int>(in_image / shape.width),
                                  shape.height),
                   b, &z);
    if (!covered) {
      id = -1;
      z = 1.0f;
      b[0] = b[1] = b[2] = 0.0f;
    }
  }
  for (int j = 0; j < 3; ++j) barycentrics[3 * pixel + j] = b[j];
  triangle_ids[pixel] = id;
  z_buffer[pixel] = z;
}

__global__ void ScatterBarycentricGradients(RasterizeGradArgs args) {
  const RasterShape& shape = args.shape;
  const int64_t pixel = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (pixel >= shape.batch * shape.PixelsPerImage()) return;
  const int32_t id = args.triangle_ids[pixel];
  // Bounded as on the CPU (which refuses such ids on the host first).
  if (id < 0 || id >= shape.num_triangles) return;
  const int64_t image = pixel / shape.PixelsPerImage();
  const float* vertices = args.clip_vertices + image * shape.num_vertices * 4;
  const int32_t* triangle = args.triangles + 3 * int64_t{id};
  TriangleSetup setup;
  if (!SetupTriangle(Corner(vertices, triangle, 0),
                     Corner(vertices, triangle, 1),
                     Corner(vertices, triangle, 2), &setup)) {
    return;
  }
  float d_vertex[3][3] = {};
  AddPixelVertexGradients(setup, args.barycentrics + 3 * pixel,
                          args.d_barycentrics + 3 * pixel, d_vertex);
  const float scale = VertexGradientScale(setup);
  const int kComponent[3] = {kX, kY, kW};
  float* d_vertices = args.d_clip_vertices + image * shape.num_vertices * 4;
  for (int corner = 0; corner < 3; ++corner) {
    float* d = d_vertices + 4 * int64_t{triangle[corner]};
    for (int j = 0; j < 3; ++j) atomicAdd(d + kComponent[j], d_vertex[corner][j] * scale);
  }
}

}  // namespace

int RasterizeCuda(const RasterizeArgs& args, CUstream_st* stream) {
  const RasterShape& shape = args.shape;
  const int64_t num_pixels = shape.batch * shape.PixelsPerImage();
  if (num_pixels == 0) return cudaSuccess;
  auto* keys = reinterpret_cast<unsigned long long*>(args.depth_id_keys);
  FillKeys<<<Blocks(num_pixels), kThreads, 0, stream>>>(num_pixels, keys);
  const int64_t num_jobs = shape.batch * shape.num_triangles;
  if (num_jobs > 0) {
    RasterizeTrianglesToKeys<<<Blocks(num_jobs), kThreads, 0, stream>>>(
        args.clip_vertices, args.triangles, shape, keys);
  }
  ResolveKeys<<<Blocks(num_pixels), kThreads, 0, stream>>>(
      args.clip_vertices, args.triangles, shape, keys, args.barycentrics,
      args.triangle_ids, args.z_buffer);
  return cudaGetLastError();
}

int RasterizeGradCuda(const RasterizeGradArgs& args, CUstream_st* stream) {
  const RasterShape& shape = args.shape;
  const size_t gradient_bytes =
      sizeof(float) * 4 * shape.batch * shape.num_vertices;
  if (gradient_bytes > 0) {
    const cudaError_t status =
        cudaMemsetAsync(args.d_clip_vertices, 0, gradient_bytes, stream);
    if (status != cudaSuccess) return status;
  }
  const int64_t num_pixels = shape.batch * shape.PixelsPerImage();
  if (num_pixels > 0 && gradient_bytes > 0) {
    ScatterBarycentricGradients<<<Blocks(num_pixels), kThreads, 0, stream>>>(
        args);
  }
  return cudaGetLastError();
}

}  // namespace mgc
