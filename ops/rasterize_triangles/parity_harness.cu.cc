// Parity harness: shows without TensorFlow that the CUDA rasterizer kernels
// give the same results as the CPU kernels on the same inputs, and times both.
//
// Scenes, fixed seeds: "soup", 3 images of 97x61, V=200, T=300 random
// triangles, some crossing the eye plane (a vertex with w < 0), some
// degenerate (repeated index), front triangles repeated exactly (equal depth:
// the later copy must win) and with rotated corners; "grid", 4 images of
// 224x224, a perturbed 120x120 vertex grid (28322 triangles), varying w.
//
// Checks, one PASS/FAIL line each:
//   CPU sanity: pixels covered, ids in [-1, T), barycentrics sum to 1 within
//     1e-5, no pixel won by a triangle that has a later exact copy, finite
//     gradients. The only checks without a CUDA device.
//   Forward: ids equal, z_buffer bit-identical, barycentrics within 1e-6.
//     Both devices run the same inline functions of rasterize_math.h with no
//     FMA contraction (--fmad=false, -ffp-contract=off) and IEEE division, so
//     ids and z are identical; the GPU resolve pass recomputes the winner's
//     barycentrics with the same function, so 1e-6 is only a margin.
//   Backward (random dense d_barycentrics): over all of d_clip_vertices,
//     |gpu - cpu| <= 1e-5 * max(1, max |cpu|). Per-pixel terms are identical;
//     only the summation order differs (pixel order vs atomicAdd order).
//   Repeatability: GPU forward outputs after the timing runs equal the first.
// Timings: median of --repeats runs after a warm-up, ms per image; CPU on one
// thread; GPU by cudaEvents around the launches, no host<->device copies.
//
// Build from the repository root. nvcc's -x applies to every input file, so
// the .cu.cc files and the plain C++ file (host C++, as in the op library)
// are compiled separately:
//   F="-std=c++17 -O3 --fmad=false -Xcompiler -ffp-contract=off"
//   F="$F -gencode=arch=compute_80,code=sm_80"
//   F="$F -gencode=arch=compute_90,code=sm_90"
//   D=ops/rasterize_triangles; mkdir -p build
//   nvcc $F -c $D/rasterize_triangles_cpu.cc -o build/parity_cpu.o
//   nvcc $F -x cu -c $D/rasterize_triangles_cuda.cu.cc -o build/parity_cuda.o
//   nvcc $F -x cu -c $D/parity_harness.cu.cc -o build/parity_harness.o
//   nvcc $F build/parity_{harness,cuda,cpu}.o -o build/parity_harness
// Run: build/parity_harness [--repeats=20]. Exit code 0 when every check
// passes, else 1.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "rasterize_triangles.h"

// Every CUDA call goes through this: a failure prints the call and exits 1.
#define CUDA_CHECK(call) \
  mgc::CheckCuda(static_cast<cudaError_t>(call), #call, __FILE__, __LINE__)

namespace mgc {

void CheckCuda(cudaError_t error, const char* call, const char* file,
               int line) {
  if (error == cudaSuccess) return;
  std::fprintf(stderr, "FAIL %s returned %s (%s) at %s:%d\n", call,
               cudaGetErrorName(error), cudaGetErrorString(error), file, line);
  std::exit(1);
}

namespace {

using LongLong = long long;  // For printf's %lld.

std::string Format(const char* format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  va_end(args);
  return buffer;
}

// std::mt19937's sequence is fixed by the standard; the <random>
// distributions are not, so the mapping to floats is done here.
class Random {
 public:
  explicit Random(uint32_t seed) : engine_(seed) {}
  float Uniform(float lo, float hi) {  // In [lo, hi].
    return lo + (hi - lo) * static_cast<float>(engine_() >> 8) * 0x1p-24f;
  }
  int32_t Index(int64_t n) { return static_cast<int32_t>(engine_() % n); }

 private:
  std::mt19937 engine_;
};

struct Scene {
  std::string name;
  RasterShape shape;
  std::vector<float> clip_vertices;  // [B, V, 4]
  std::vector<int32_t> triangles;    // [T, 3]
  // Triangles with a later exact copy (they never win a pixel); the copies.
  std::vector<int32_t> shadowed_ids, copy_ids;

  int64_t Pixels() const { return shape.batch * shape.PixelsPerImage(); }
};

// Appends the clip vertex with NDC (x, y, z) and the given w.
void AddVertex(float x, float y, float z, float w, std::vector<float>* clip) {
  const float a = std::fabs(w);  // For w < 0 the NDC point is mirrored.
  clip->insert(clip->end(), {x * a, y * a, z * a, w});
}

Scene MakeTriangleSoup() {
  constexpr int kFront = 4;  // Front triangles, each drawn 3 times.
  const int32_t v = 200, t = 300;
  Scene s{"soup", {3, v, t, 97, 61}, {}, {}, {}, {}};
  const int32_t first_front = v - 3 * kFront;  // Their own vertices.
  Random random(1);
  for (int64_t i = 0; i < s.shape.batch * v; ++i) {
    const bool front = i % v >= first_front;
    const bool behind = !front && random.Index(20) == 0;
    const float w =
        behind ? random.Uniform(-1.0f, -0.1f) : random.Uniform(0.5f, 2.0f);
    const float extent = front ? 0.8f : 1.2f;
    // |z| up to 1.05: some pixels fail the depth range test.
    const float z = front ? -0.9f : random.Uniform(-1.05f, 1.05f);
    AddVertex(random.Uniform(-extent, extent), random.Uniform(-extent, extent),
              z, w, &s.clip_vertices);
  }
  for (int i = 0; i < 3 * t; ++i) {
    s.triangles.push_back(random.Index(first_front));
  }
  for (int i = 3; i < t; i += 25) {  // Degenerate: repeated index.
    s.triangles[3 * i + 2] = s.triangles[3 * i + 1];
  }
  auto set = [&s](int32_t triangle, std::initializer_list<int32_t> corners) {
    std::copy(corners.begin(), corners.end(), &s.triangles[3 * triangle]);
  };
  for (int k = 0; k < kFront; ++k) {
    const int32_t a = first_front + 3 * k, b = a + 1, c = a + 2;
    // An early original, a late exact copy (same z bits: the copy must win),
    // a late copy with rotated corners (z may differ in the last bit).
    const int32_t original = 20 * k + 5, copy = t - 1 - 2 * k;
    set(original, {a, b, c});
    set(copy, {a, b, c});
    set(copy - 1, {b, c, a});
    s.shadowed_ids.push_back(original);
    s.copy_ids.push_back(copy);
  }
  return s;
}

Scene MakeGrid() {
  constexpr int kSide = 120;
  constexpr float kStep = 1.9f / (kSide - 1);
  Scene s{"grid", {4, kSide * kSide, 2 * (kSide - 1) * (kSide - 1), 224, 224},
          {}, {}, {}, {}};
  Random random(2);
  for (int image = 0; image < s.shape.batch; ++image) {
    for (int row = 0; row < kSide; ++row) {
      for (int col = 0; col < kSide; ++col) {
        const float x = -0.95f + kStep * (col + random.Uniform(-0.25f, 0.25f));
        const float y = -0.95f + kStep * (row + random.Uniform(-0.25f, 0.25f));
        const float z = 0.5f * std::sin(3.0f * x + image) *
                            std::cos(2.0f * y) +
                        random.Uniform(-0.01f, 0.01f);
        AddVertex(x, y, z, 1.0f + 0.25f * image + 0.2f * x, &s.clip_vertices);
      }
    }
  }
  for (int row = 0; row + 1 < kSide; ++row) {
    for (int col = 0; col + 1 < kSide; ++col) {
      const int32_t v00 = row * kSide + col, v01 = v00 + 1;
      const int32_t v10 = v00 + kSide, v11 = v10 + 1;
      s.triangles.insert(s.triangles.end(), {v00, v01, v11, v00, v11, v10});
    }
  }
  return s;
}

// --repeats=N, the only flag.
int ParseRepeats(int argc, char** argv) {
  int repeats = 20;
  for (int i = 1; i < argc; ++i) {
    char* end = nullptr;
    if (std::strncmp(argv[i], "--repeats=", 10) == 0) {
      repeats = static_cast<int>(std::strtol(argv[i] + 10, &end, 10));
    }
    if (end == nullptr || *end != '\0' || repeats < 1) {
      std::fprintf(stderr, "usage: %s [--repeats=N >= 1]\n", argv[0]);
      std::exit(1);
    }
  }
  return repeats;
}

struct RasterOutputs {
  std::vector<float> barycentrics;  // [B, H, W, 3]
  std::vector<int32_t> triangle_ids;
  std::vector<float> z_buffer;
};

// Single-threaded CPU passes over whole images. Buffers are allocated up
// front so that the timings measure the kernels only.
class CpuRasterizer {
 public:
  explicit CpuRasterizer(const Scene& scene)
      : scene_(scene),
        screen_(scene.shape.batch * scene.shape.num_vertices),
        out_{std::vector<float>(3 * scene.Pixels()),
             std::vector<int32_t>(scene.Pixels()),
             std::vector<float>(scene.Pixels())},
        pixel_gradients_(9 * scene.Pixels()),
        d_clip_vertices_(scene.clip_vertices.size()) {}

  void Forward() {
    const RasterShape& shape = scene_.shape;
    for (int64_t image = 0; image < shape.batch; ++image) {
      ProjectVerticesCpu(scene_.clip_vertices.data(), shape, image,
                         screen_.data());
      RasterizeRowsCpu(scene_.clip_vertices.data(), screen_.data(),
                       scene_.triangles.data(), shape, image, 0, shape.height,
                       out_.barycentrics.data(), out_.triangle_ids.data(),
                       out_.z_buffer.data());
    }
  }

  void Backward(const std::vector<float>& d_barycentrics) {
    const RasterShape& shape = scene_.shape;
    for (int64_t image = 0; image < shape.batch; ++image) {
      PixelGradientsCpu(scene_.clip_vertices.data(), scene_.triangles.data(),
                        shape, image, 0, shape.height,
                        out_.barycentrics.data(), out_.triangle_ids.data(),
                        d_barycentrics.data(), pixel_gradients_.data());
      ScatterPixelGradientsCpu(scene_.triangles.data(), shape, image,
                               out_.triangle_ids.data(),
                               pixel_gradients_.data(),
                               d_clip_vertices_.data());
    }
  }

  const RasterOutputs& outputs() const { return out_; }
  const std::vector<float>& d_clip_vertices() const {
    return d_clip_vertices_;
  }

 private:
  const Scene& scene_;
  std::vector<ScreenVertex> screen_;
  RasterOutputs out_;
  std::vector<float> pixel_gradients_;  // [B, H, W, 9]
  std::vector<float> d_clip_vertices_;
};

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    CUDA_CHECK(cudaMalloc(&data_, count_ * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host)
      : DeviceBuffer(host.size()) {
    CUDA_CHECK(cudaMemcpy(data_, host.data(), count_ * sizeof(T),
                          cudaMemcpyHostToDevice));
  }
  ~DeviceBuffer() { CUDA_CHECK(cudaFree(data_)); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return data_; }
  std::vector<T> Download() const {
    std::vector<T> host(count_);
    CUDA_CHECK(cudaMemcpy(host.data(), data_, count_ * sizeof(T),
                          cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* data_ = nullptr;
  size_t count_;
};

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

template <typename Fn>
double MedianCpuMs(int repeats, Fn run) {
  run();  // Warm-up: caches, page faults.
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const auto elapsed = std::chrono::steady_clock::now() - start;
    ms.push_back(std::chrono::duration<double, std::milli>(elapsed).count());
  }
  return Median(ms);
}

template <typename Fn>
double MedianGpuMs(int repeats, cudaStream_t stream, Fn run) {
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  run();  // Warm-up: module loading, first-launch costs.
  CUDA_CHECK(cudaStreamSynchronize(stream));
  std::vector<double> ms;
  for (int r = 0; r < repeats; ++r) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    run();
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float elapsed = 0.0f;
    CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, stop));
    ms.push_back(elapsed);
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  return Median(ms);
}

void Check(bool pass, const std::string& line, bool* all_pass) {
  std::printf("%s %s\n", pass ? "PASS" : "FAIL", line.c_str());
  *all_pass = *all_pass && pass;
}

// Largest |a - b| (b empty: largest |a|); NaN wins, so that checks fail.
template <typename T>
double MaxAbsDiff(const std::vector<T>& a, const std::vector<T>& b = {}) {
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(double(a[i]) - (b.empty() ? 0.0 : b[i]));
    if (!(d <= worst)) worst = d;
    if (std::isnan(d)) break;
  }
  return worst;
}

template <typename T>
LongLong CountBitDifferences(const std::vector<T>& a,
                             const std::vector<T>& b) {
  LongLong count = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    count += std::memcmp(&a[i], &b[i], sizeof(T)) != 0;
  }
  return count;
}

LongLong CountPixelsWonBy(const std::vector<int32_t>& ids,
                          const std::vector<int32_t>& winners) {
  return std::count_if(ids.begin(), ids.end(), [&](int32_t id) {
    return std::find(winners.begin(), winners.end(), id) != winners.end();
  });
}

void CheckCpuSanity(const Scene& s, const CpuRasterizer& cpu, bool* pass) {
  const RasterOutputs& out = cpu.outputs();
  LongLong covered = 0, bad_ids = 0;
  double worst_sum_error = 0.0;
  for (int64_t p = 0; p < s.Pixels(); ++p) {
    const int32_t id = out.triangle_ids[p];
    bad_ids += id < -1 || id >= s.shape.num_triangles;
    if (id < 0) continue;
    ++covered;
    const float* b = &out.barycentrics[3 * p];
    const double error = std::fabs(double(b[0]) + b[1] + b[2] - 1.0);
    if (!(error <= worst_sum_error)) worst_sum_error = error;
  }
  const char* name = s.name.c_str();
  Check(covered > 0 && bad_ids == 0 && worst_sum_error <= 1e-5,
        Format("%s: CPU forward sane: %lld of %lld pixels covered, %lld ids "
               "outside [-1, T), max |sum(b) - 1| = %.3g <= 1e-5", name,
               covered, LongLong{s.Pixels()}, bad_ids, worst_sum_error),
        pass);
  if (!s.copy_ids.empty()) {
    const LongLong copies = CountPixelsWonBy(out.triangle_ids, s.copy_ids);
    const LongLong shadowed =
        CountPixelsWonBy(out.triangle_ids, s.shadowed_ids);
    Check(copies > 0 && shadowed == 0,
          Format("%s: equal depth, later triangle wins: exact copies win %lld "
                 "pixels, their earlier originals %lld", name, copies,
                 shadowed),
          pass);
  }
  const double max_gradient = MaxAbsDiff(cpu.d_clip_vertices());
  Check(std::isfinite(max_gradient),
        Format("%s: CPU gradients finite: max |d_clip_vertices| = %.3g", name,
               max_gradient),
        pass);
}

void CheckForwardParity(const Scene& s, const RasterOutputs& expected,
                        const RasterOutputs& actual, const char* what,
                        bool* pass) {
  const char* name = s.name.c_str();
  const LongLong ids =
      CountBitDifferences(expected.triangle_ids, actual.triangle_ids);
  Check(ids == 0,
        Format("%s: %s triangle_ids equal: %lld of %lld pixels differ", name,
               what, ids, LongLong{s.Pixels()}),
        pass);
  const LongLong z = CountBitDifferences(expected.z_buffer, actual.z_buffer);
  Check(z == 0,
        Format("%s: %s z_buffer bit-identical: %lld differ, max |diff| = %.3g",
               name, what, z, MaxAbsDiff(expected.z_buffer, actual.z_buffer)),
        pass);
  const double b = MaxAbsDiff(expected.barycentrics, actual.barycentrics);
  Check(b <= 1e-6,
        Format("%s: %s barycentrics: max |diff| = %.3g <= 1e-6, %lld values "
               "not bit-identical", name, what, b,
               CountBitDifferences(expected.barycentrics,
                                   actual.barycentrics)),
        pass);
}

// Tolerance relative to the largest CPU gradient: summation order changes
// rounding by a few ulps of the partial sums, which scale with it.
void CheckGradientParity(const Scene& s, const std::vector<float>& cpu,
                         const std::vector<float>& gpu, bool* pass) {
  const double scale = std::max(1.0, MaxAbsDiff(cpu));
  const double diff = MaxAbsDiff(cpu, gpu);
  Check(diff <= 1e-5 * scale,
        Format("%s: GPU vs CPU d_clip_vertices: max |diff| = %.3g <= 1e-5 * "
               "max(1, max |cpu|) = %.3g", s.name.c_str(), diff, 1e-5 * scale),
        pass);
}

struct Timings {  // Milliseconds for the whole batch; NaN when not run.
  double cpu_forward = NAN, cpu_both = NAN, gpu_forward = NAN, gpu_both = NAN;
};

// GPU passes on the scene's inputs, uploaded once: parity checks against the
// CPU results, then timings, then a repeatability check.
void RunGpu(const Scene& s, const std::vector<float>& d_barycentrics,
            const CpuRasterizer& cpu, int repeats, Timings* t, bool* pass) {
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreate(&stream));
  {
    const DeviceBuffer<float> clip(s.clip_vertices), d_bary(d_barycentrics);
    const DeviceBuffer<float> bary(3 * s.Pixels()), z(s.Pixels());
    const DeviceBuffer<float> d_clip(s.clip_vertices.size());
    const DeviceBuffer<int32_t> triangles(s.triangles), ids(s.Pixels());
    const DeviceBuffer<uint64_t> keys(s.Pixels());
    auto forward = [&] {
      CUDA_CHECK(RasterizeCuda(clip.get(), triangles.get(), s.shape,
                               keys.get(), bary.get(), ids.get(), z.get(),
                               stream));
    };
    auto backward = [&] {
      CUDA_CHECK(RasterizeGradCuda(clip.get(), triangles.get(), s.shape,
                                   bary.get(), ids.get(), d_bary.get(),
                                   d_clip.get(), stream));
    };
    auto outputs = [&] {
      CUDA_CHECK(cudaStreamSynchronize(stream));  // Kernel errors show here.
      return RasterOutputs{bary.Download(), ids.Download(), z.Download()};
    };
    forward();
    backward();
    const RasterOutputs first = outputs();
    CheckForwardParity(s, cpu.outputs(), first, "GPU vs CPU", pass);
    CheckGradientParity(s, cpu.d_clip_vertices(), d_clip.Download(), pass);
    t->gpu_forward = MedianGpuMs(repeats, stream, forward);
    t->gpu_both = MedianGpuMs(repeats, stream, [&] {
      forward();
      backward();
    });
    CheckForwardParity(s, first, outputs(), "GPU last run vs first", pass);
  }
  CUDA_CHECK(cudaStreamDestroy(stream));
}

Timings RunScene(const Scene& s, bool has_gpu, int repeats, bool* pass) {
  Random random(3);
  std::vector<float> d_barycentrics(3 * s.Pixels());
  for (float& g : d_barycentrics) g = random.Uniform(-1.0f, 1.0f);
  CpuRasterizer cpu(s);
  cpu.Forward();
  cpu.Backward(d_barycentrics);
  CheckCpuSanity(s, cpu, pass);
  Timings t;
  t.cpu_forward = MedianCpuMs(repeats, [&] { cpu.Forward(); });
  t.cpu_both = MedianCpuMs(repeats, [&] {
    cpu.Forward();
    cpu.Backward(d_barycentrics);
  });
  if (has_gpu) RunGpu(s, d_barycentrics, cpu, repeats, &t, pass);
  return t;
}

std::string Cell(double value, const char* format) {
  return std::isnan(value) ? "n/a" : Format(format, value);
}

void PrintTable(const std::vector<Scene>& scenes,
                const std::vector<Timings>& timings) {
  std::printf("\n| scene | B x H x W | T | CPU fwd | CPU fwd+bwd | GPU fwd | "
              "GPU fwd+bwd | fwd+bwd speed-up |\n"
              "|---|---|---|---|---|---|---|---|\n");
  for (size_t i = 0; i < scenes.size(); ++i) {
    const RasterShape& shape = scenes[i].shape;
    const double b = double(shape.batch);  // Per-image figures.
    const Timings& t = timings[i];
    std::printf("| %s | %lld x %d x %d | %lld | %s | %s | %s | %s | %s |\n",
                scenes[i].name.c_str(), LongLong{shape.batch}, shape.height,
                shape.width, LongLong{shape.num_triangles},
                Cell(t.cpu_forward / b, "%.3f").c_str(),
                Cell(t.cpu_both / b, "%.3f").c_str(),
                Cell(t.gpu_forward / b, "%.4f").c_str(),
                Cell(t.gpu_both / b, "%.4f").c_str(),
                Cell(t.cpu_both / t.gpu_both, "%.0fx").c_str());
  }
  std::printf("\nms per image, median; CPU: one thread; GPU: cudaEvent time "
              "of the launches, no host<->device copies.\n");
}

bool HasCudaDevice() {
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    std::printf("cudaGetDeviceCount: %s, %d devices\n",
                cudaGetErrorString(status), count);
    return false;
  }
  cudaDeviceProp properties;
  CUDA_CHECK(cudaGetDeviceProperties(&properties, 0));
  std::printf("device 0 of %d: %s, sm_%d%d\n", count, properties.name,
              properties.major, properties.minor);
  return true;
}

int Main(int argc, char** argv) {
  const int repeats = ParseRepeats(argc, argv);
  const std::vector<Scene> scenes = {MakeTriangleSoup(), MakeGrid()};
  const bool has_gpu = HasCudaDevice();
  bool pass = true;
  std::vector<Timings> timings;
  for (const Scene& scene : scenes) {
    timings.push_back(RunScene(scene, has_gpu, repeats, &pass));
  }
  PrintTable(scenes, timings);
  if (!has_gpu) {
    std::printf("no CUDA device: CPU path checked, GPU parity not run\n");
  }
  std::printf("%s\n", pass ? "ALL PASS" : "SOME CHECKS FAILED");
  return pass ? 0 : 1;
}

}  // namespace
}  // namespace mgc

int main(int argc, char** argv) { return mgc::Main(argc, argv); }
