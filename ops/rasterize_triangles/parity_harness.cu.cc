// The CUDA core's sanitizer driver: what the backend test base
// (tests/test_rasterize_backends.py, which compares the CUDA core with the
// CPU core and the NumPy reference through the C interface) does not cover.
// It runs the forward and backward kernels on a scene with every edge case
// (triangles crossing the eye plane, degenerate ones, exact copies that tie
// in depth, pixels outside the depth range, invalid triangle ids in the
// gradient's input) in a plain CUDA program, so that
//   compute-sanitizer --tool memcheck build/parity_harness
//   compute-sanitizer --tool racecheck build/parity_harness
// check every access, and it checks that the forward pass repeats bit for
// bit (the atomicMin resolve must not depend on thread order). Timings are
// in experiments/bench_rasterizer_cores.py.
//
// Built by `make parity-harness` with ops/build_config.bzl's flags. Exit
// code 0 when the checks pass or there is no CUDA device (then it says so
// and checks nothing), 1 otherwise.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "rasterize_triangles.h"

namespace mgc {
namespace {

bool Check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return true;
  std::fprintf(stderr, "FAIL %s: %s\n", what, cudaGetErrorString(status));
  return false;
}

template <typename T>
struct Device {
  T* data = nullptr;
  size_t count;
  explicit Device(size_t n, const T* host = nullptr) : count(n) {
    Check(cudaMalloc(&data, sizeof(T) * (n ? n : 1)), "cudaMalloc");
    if (host != nullptr && n > 0) {
      Check(cudaMemcpy(data, host, sizeof(T) * n, cudaMemcpyHostToDevice), "upload");
    }
  }
  ~Device() { cudaFree(data); }
  std::vector<T> Download() const {
    std::vector<T> host(count);
    Check(cudaMemcpy(host.data(), data, sizeof(T) * count, cudaMemcpyDeviceToHost), "download");
    return host;
  }
};

int Main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("no CUDA device: parity harness built, nothing run\n");
    return 0;
  }
  // 3 images of 97 x 61, 200 vertices, 300 triangles.
  const RasterShape shape{3, 200, 300, 97, 61};
  std::mt19937 engine(1);
  auto uniform = [&](float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(engine() >> 8) * 0x1p-24f;
  };
  std::vector<float> clip;
  for (int64_t i = 0; i < shape.batch * shape.num_vertices; ++i) {
    const float w = i % 20 == 0 ? uniform(-1.0f, -0.1f) : uniform(0.5f, 2.0f);
    const float a = std::fabs(w);
    clip.insert(clip.end(), {uniform(-1.2f, 1.2f) * a, uniform(-1.2f, 1.2f) * a,
                             uniform(-1.05f, 1.05f) * a, w});
  }
  std::vector<int32_t> triangles;
  for (int i = 0; i < 3 * shape.num_triangles; ++i) {
    triangles.push_back(static_cast<int32_t>(engine() % shape.num_vertices));
  }
  for (int t = 3; t < shape.num_triangles; t += 25) triangles[3 * t + 2] = triangles[3 * t + 1];
  for (int t = 0; t < 20; ++t) {  // exact later copies: depth ties
    std::memcpy(&triangles[3 * (shape.num_triangles - 1 - t)], &triangles[3 * t], 12);
  }
  const int64_t pixels = shape.batch * shape.PixelsPerImage();
  Device<float> d_clip(clip.size(), clip.data()), barycentrics(3 * pixels), z(pixels);
  Device<int32_t> d_triangles(triangles.size(), triangles.data()), ids(pixels);
  Device<uint64_t> keys(pixels);
  const RasterizeArgs args{shape, d_clip.data, d_triangles.data, barycentrics.data,
                           ids.data, z.data, keys.data};
  bool pass = Check(static_cast<cudaError_t>(RasterizeCuda(args, nullptr)), "RasterizeCuda") &&
              Check(cudaDeviceSynchronize(), "forward");
  const std::vector<int32_t> first_ids = ids.Download();
  const std::vector<float> first_z = z.Download();
  for (int repeat = 0; repeat < 5 && pass; ++repeat) {
    pass = Check(static_cast<cudaError_t>(RasterizeCuda(args, nullptr)), "RasterizeCuda") &&
           Check(cudaDeviceSynchronize(), "forward");
    pass = pass && ids.Download() == first_ids &&
           std::memcmp(z.Download().data(), first_z.data(), 4 * pixels) == 0;
  }
  std::printf("%s forward repeats bit for bit\n", pass ? "PASS" : "FAIL");

  std::vector<int32_t> bad_ids = first_ids;  // must be skipped, not read past
  bad_ids[7] = static_cast<int32_t>(shape.num_triangles);
  bad_ids[pixels - 1] = -5;
  std::vector<float> upstream(3 * pixels);
  for (float& value : upstream) value = uniform(-1.0f, 1.0f);
  Device<int32_t> grad_ids(pixels, bad_ids.data());
  Device<float> d_upstream(upstream.size(), upstream.data()), d_vertices(clip.size());
  const RasterizeGradArgs grad_args{shape, d_clip.data, d_triangles.data, barycentrics.data,
                                    grad_ids.data, d_upstream.data, d_vertices.data};
  bool grad_pass =
      Check(static_cast<cudaError_t>(RasterizeGradCuda(grad_args, nullptr)), "RasterizeGradCuda") &&
      Check(cudaDeviceSynchronize(), "backward");
  double largest = 0.0;
  for (float value : d_vertices.Download()) {
    grad_pass = grad_pass && std::isfinite(value);
    largest = std::fmax(largest, std::fabs(value));
  }
  grad_pass = grad_pass && largest > 0.0;
  std::printf("%s gradient finite and nonzero with invalid ids skipped (largest %.3g)\n",
              grad_pass ? "PASS" : "FAIL", largest);
  return pass && grad_pass ? 0 : 1;
}

}  // namespace
}  // namespace mgc

int main() { return mgc::Main(); }
