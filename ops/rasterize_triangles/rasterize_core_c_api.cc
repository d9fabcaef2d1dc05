// The C interface of rasterize_core_c_api.h. Checks the call like the op
// does (sizes, vertex indices), then runs the CPU core on one thread or,
// built with -DMGC_CORE_CUDA=1 by nvcc, the CUDA core on device 0.
#include "rasterize_core_c_api.h"

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <string>
#include <vector>

#include "rasterize_triangles.h"

#ifndef MGC_CORE_CUDA
#define MGC_CORE_CUDA 0
#endif
#if MGC_CORE_CUDA
#include <cuda_runtime.h>
#endif

namespace mgc {
namespace {

thread_local std::string last_error;

int Fail(const std::string& message) {
  last_error = message;
  return 1;
}

// Checks what the op checks before running; "" when the call is valid.
std::string CallProblem(const RasterShape& shape, const int32_t* triangles) {
  if (shape.batch < 0 || shape.num_vertices < 0 || shape.num_triangles < 0) {
    return "batch, num_vertices and num_triangles must be >= 0";
  }
  if (shape.width <= 0 || shape.height <= 0) {
    return "width and height must be positive, got " + std::to_string(shape.width) + " x " +
           std::to_string(shape.height);
  }
  const std::string size = OutputSizeProblem(shape.batch, shape.width, shape.height);
  if (!size.empty()) return size;
  const int64_t bad =
      FindInvalidTriangleIndex(triangles, shape.num_triangles, shape.num_vertices);
  if (bad >= 0) {
    return "triangles[" + std::to_string(bad / 3) + ", " + std::to_string(bad % 3) +
           "] = " + std::to_string(triangles[bad]) + " is not a vertex index in [0, " +
           std::to_string(shape.num_vertices) + ")";
  }
  return "";
}

int64_t Pixels(const RasterShape& shape) { return shape.batch * shape.PixelsPerImage(); }

#if MGC_CORE_CUDA

// A device copy of a host array (or device scratch), freed on scope exit.
class DeviceArray {
 public:
  DeviceArray(const void* host, size_t bytes) : bytes_(bytes) {
    if (bytes_ == 0) return;
    status_ = cudaMalloc(&data_, bytes_);
    if (status_ == cudaSuccess && host != nullptr) {
      status_ = cudaMemcpy(data_, host, bytes_, cudaMemcpyHostToDevice);
    }
  }
  ~DeviceArray() { cudaFree(data_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  template <typename T>
  T* get() const { return static_cast<T*>(data_); }
  cudaError_t status() const { return status_; }
  cudaError_t CopyTo(void* host) const {
    return bytes_ == 0 ? cudaSuccess : cudaMemcpy(host, data_, bytes_, cudaMemcpyDeviceToHost);
  }

 private:
  void* data_ = nullptr;
  size_t bytes_;
  cudaError_t status_ = cudaSuccess;
};

int CudaFail(const char* what, cudaError_t status) {
  return Fail(std::string(what) + ": " + cudaGetErrorName(status) + " (" +
              cudaGetErrorString(status) + ")");
}

// First failure among the statuses, else the result of the finished work.
int CheckAll(std::initializer_list<const DeviceArray*> arrays) {
  for (const DeviceArray* array : arrays) {
    if (array->status() != cudaSuccess) return CudaFail("cudaMalloc/cudaMemcpy", array->status());
  }
  return 0;
}

int Rasterize(RasterizeArgs args) {
  const RasterShape& s = args.shape;
  const DeviceArray clip(args.clip_vertices, sizeof(float) * 4 * s.batch * s.num_vertices);
  const DeviceArray triangles(args.triangles, sizeof(int32_t) * 3 * s.num_triangles);
  const DeviceArray barycentrics(nullptr, sizeof(float) * 3 * Pixels(s));
  const DeviceArray ids(nullptr, sizeof(int32_t) * Pixels(s));
  const DeviceArray z(nullptr, sizeof(float) * Pixels(s));
  const DeviceArray keys(nullptr, sizeof(uint64_t) * Pixels(s));
  if (CheckAll({&clip, &triangles, &barycentrics, &ids, &z, &keys})) return 1;
  float* host_barycentrics = args.barycentrics;
  int32_t* host_ids = args.triangle_ids;
  float* host_z = args.z_buffer;
  args = {s, clip.get<float>(), triangles.get<int32_t>(), barycentrics.get<float>(),
          ids.get<int32_t>(), z.get<float>(), keys.get<uint64_t>()};
  cudaError_t status = static_cast<cudaError_t>(RasterizeCuda(args, nullptr));
  if (status == cudaSuccess) status = cudaDeviceSynchronize();
  if (status != cudaSuccess) return CudaFail("RasterizeCuda", status);
  for (cudaError_t copy : {barycentrics.CopyTo(host_barycentrics), ids.CopyTo(host_ids),
                           z.CopyTo(host_z)}) {
    if (copy != cudaSuccess) return CudaFail("cudaMemcpy", copy);
  }
  return 0;
}

int RasterizeGrad(RasterizeGradArgs args) {
  const RasterShape& s = args.shape;
  const size_t vertex_bytes = sizeof(float) * 4 * s.batch * s.num_vertices;
  const DeviceArray clip(args.clip_vertices, vertex_bytes);
  const DeviceArray triangles(args.triangles, sizeof(int32_t) * 3 * s.num_triangles);
  const DeviceArray barycentrics(args.barycentrics, sizeof(float) * 3 * Pixels(s));
  const DeviceArray ids(args.triangle_ids, sizeof(int32_t) * Pixels(s));
  const DeviceArray d_barycentrics(args.d_barycentrics, sizeof(float) * 3 * Pixels(s));
  const DeviceArray d_clip(nullptr, vertex_bytes);
  if (CheckAll({&clip, &triangles, &barycentrics, &ids, &d_barycentrics, &d_clip})) return 1;
  float* host_d_clip = args.d_clip_vertices;
  args = {s, clip.get<float>(), triangles.get<int32_t>(), barycentrics.get<float>(),
          ids.get<int32_t>(), d_barycentrics.get<float>(), d_clip.get<float>()};
  cudaError_t status = static_cast<cudaError_t>(RasterizeGradCuda(args, nullptr));
  if (status == cudaSuccess) status = cudaDeviceSynchronize();
  if (status != cudaSuccess) return CudaFail("RasterizeGradCuda", status);
  status = d_clip.CopyTo(host_d_clip);
  return status == cudaSuccess ? 0 : CudaFail("cudaMemcpy", status);
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Median ms of `repeats` calls of run() on the stream, after one untimed call.
template <typename Run>
int TimeOnDevice(int repeats, const Run& run, double* median_ms) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> ms;
  cudaError_t status = static_cast<cudaError_t>(run());
  for (int r = 0; r < repeats && status == cudaSuccess; ++r) {
    cudaEventRecord(start);
    status = static_cast<cudaError_t>(run());
    cudaEventRecord(stop);
    if (status == cudaSuccess) status = cudaEventSynchronize(stop);
    float elapsed = 0.0f;
    cudaEventElapsedTime(&elapsed, start, stop);
    ms.push_back(elapsed);
  }
  if (status == cudaSuccess) status = cudaDeviceSynchronize();
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (status != cudaSuccess) return CudaFail("benchmark", status);
  *median_ms = Median(ms);
  return 0;
}

int Benchmark(const RasterShape& s, const float* clip_vertices, const int32_t* triangles,
              const float* d_barycentrics, int repeats, double* forward_ms,
              double* backward_ms) {
  const DeviceArray clip(clip_vertices, sizeof(float) * 4 * s.batch * s.num_vertices);
  const DeviceArray tris(triangles, sizeof(int32_t) * 3 * s.num_triangles);
  const DeviceArray barycentrics(nullptr, sizeof(float) * 3 * Pixels(s));
  const DeviceArray ids(nullptr, sizeof(int32_t) * Pixels(s));
  const DeviceArray z(nullptr, sizeof(float) * Pixels(s));
  const DeviceArray keys(nullptr, sizeof(uint64_t) * Pixels(s));
  const DeviceArray upstream(d_barycentrics, sizeof(float) * 3 * Pixels(s));
  const DeviceArray d_clip(nullptr, sizeof(float) * 4 * s.batch * s.num_vertices);
  if (CheckAll({&clip, &tris, &barycentrics, &ids, &z, &keys, &upstream, &d_clip})) return 1;
  const RasterizeArgs args{s, clip.get<float>(), tris.get<int32_t>(), barycentrics.get<float>(),
                           ids.get<int32_t>(), z.get<float>(), keys.get<uint64_t>()};
  const RasterizeGradArgs grad{s, clip.get<float>(), tris.get<int32_t>(),
                               barycentrics.get<float>(), ids.get<int32_t>(),
                               upstream.get<float>(), d_clip.get<float>()};
  if (TimeOnDevice(repeats, [&] { return RasterizeCuda(args, nullptr); }, forward_ms)) return 1;
  return TimeOnDevice(repeats, [&] { return RasterizeGradCuda(grad, nullptr); }, backward_ms);
}

#else  // CPU

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

template <typename Run>
double TimeOnHost(int repeats, const Run& run) {
  run();
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                           start).count());
  }
  return Median(ms);
}

int Benchmark(const RasterShape& s, const float* clip_vertices, const int32_t* triangles,
              const float* d_barycentrics, int repeats, double* forward_ms,
              double* backward_ms) {
  std::vector<float> barycentrics(3 * Pixels(s)), z(Pixels(s));
  std::vector<int32_t> ids(Pixels(s));
  std::vector<float> d_clip(4 * s.batch * s.num_vertices);
  const RasterizeArgs args{s, clip_vertices, triangles, barycentrics.data(), ids.data(),
                           z.data(), nullptr};
  const RasterizeGradArgs grad{s, clip_vertices, triangles, barycentrics.data(), ids.data(),
                               d_barycentrics, d_clip.data()};
  *forward_ms = TimeOnHost(repeats, [&] { RasterizeCpu(args, SerialFor, 1); });
  *backward_ms = TimeOnHost(repeats, [&] { RasterizeGradCpu(grad, SerialFor, 1); });
  return 0;
}

int Rasterize(const RasterizeArgs& args) {
  RasterizeCpu(args, SerialFor, 1);
  return 0;
}

int RasterizeGrad(const RasterizeGradArgs& args) {
  const int64_t bad = RasterizeGradCpu(args, SerialFor, 1);
  if (bad < 0) return 0;
  return Fail("triangle_ids holds " + std::to_string(args.triangle_ids[bad]) +
              " at flat index " + std::to_string(bad) + ", not in [-1, " +
              std::to_string(args.shape.num_triangles) + ")");
}

#endif  // MGC_CORE_CUDA

}  // namespace
}  // namespace mgc

extern "C" {

const char* mgc_core_backend(void) { return MGC_CORE_CUDA ? "cuda" : "cpu"; }

int mgc_core_device_count(void) {
#if MGC_CORE_CUDA
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    mgc::CudaFail("cudaGetDeviceCount", status);
    return 0;
  }
  if (count == 0) mgc::Fail("no CUDA device");
  return count;
#else
  return 1;
#endif
}

const char* mgc_core_last_error(void) { return mgc::last_error.c_str(); }

int mgc_core_rasterize(const float* clip_vertices, const int32_t* triangles, int64_t batch,
                       int64_t num_vertices, int64_t num_triangles, int32_t width,
                       int32_t height, float* barycentrics, int32_t* triangle_ids,
                       float* z_buffer) {
  const mgc::RasterShape shape{batch, num_vertices, num_triangles, width, height};
  const std::string problem = mgc::CallProblem(shape, triangles);
  if (!problem.empty()) return mgc::Fail(problem);
  if (mgc::Pixels(shape) == 0) return 0;
  return mgc::Rasterize(
      {shape, clip_vertices, triangles, barycentrics, triangle_ids, z_buffer, nullptr});
}

int mgc_core_rasterize_grad(const float* clip_vertices, const int32_t* triangles,
                            int64_t batch, int64_t num_vertices, int64_t num_triangles,
                            int32_t width, int32_t height, const float* barycentrics,
                            const int32_t* triangle_ids, const float* d_barycentrics,
                            float* d_clip_vertices) {
  const mgc::RasterShape shape{batch, num_vertices, num_triangles, width, height};
  const std::string problem = mgc::CallProblem(shape, triangles);
  if (!problem.empty()) return mgc::Fail(problem);
  if (batch * num_vertices == 0) return 0;
  return mgc::RasterizeGrad({shape, clip_vertices, triangles, barycentrics, triangle_ids,
                             d_barycentrics, d_clip_vertices});
}

int mgc_core_benchmark(const float* clip_vertices, const int32_t* triangles, int64_t batch,
                       int64_t num_vertices, int64_t num_triangles, int32_t width,
                       int32_t height, const float* d_barycentrics, int32_t repeats,
                       double* forward_ms, double* backward_ms) {
  const mgc::RasterShape shape{batch, num_vertices, num_triangles, width, height};
  const std::string problem = mgc::CallProblem(shape, triangles);
  if (!problem.empty()) return mgc::Fail(problem);
  if (repeats < 1 || mgc::Pixels(shape) == 0 || batch * num_vertices == 0) {
    return mgc::Fail("benchmark needs repeats >= 1, pixels and vertices");
  }
  return mgc::Benchmark(shape, clip_vertices, triangles, d_barycentrics, repeats, forward_ms,
                        backward_ms);
}

}  // extern "C"
