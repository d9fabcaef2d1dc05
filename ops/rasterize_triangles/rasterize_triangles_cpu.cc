// CPU implementation of the core (see rasterize_triangles.h). The per-pixel
// math and the pixel scan live in rasterize_math.h, shared with the CUDA
// kernels.
//
// Forward: project the vertices, then rasterize blocks of rows (a whole
// image, or ceil(threads / batch) blocks of it), each testing every
// triangle in order against its rows. Per triangle the pixel rectangle is
// tested first, so the many triangles of a face mesh that cover no pixel
// centre cost a few comparisons. (Binning triangles into bands first was
// tried: on the 70,789-triangle face it cost more than it saved.)
//
// Backward: each unit (a whole image, or a block of rows when the batch is
// smaller than the number of threads) reads the triangle ids of its rows and,
// for covered pixels only, adds k lambda^T to a 3x3 sum while the triangle
// id stays the same; when it changes, the sum becomes vertex gradients (one
// triangle setup per run). Units of one image write separate buffers that a
// parallel pass over the vertices adds up in a fixed order.
#include <algorithm>
#include <string>
#include <vector>

#include "rasterize_math.h"
#include "rasterize_triangles.h"

namespace mgc {
namespace {

constexpr int64_t kVerticesPerChunk = 4096;
constexpr int kComponent[3] = {kX, kY, kW};

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

const float* Corner(const float* image_vertices, const int32_t* triangle,
                    int corner) {
  return image_vertices + 4 * int64_t{triangle[corner]};
}

// Rows [row_begin, row_end) of `image`: every triangle is tested against
// the rows, in order, so a band needs nothing from the others.
void RasterizeRows(const RasterizeArgs& args, const ScreenVertex* screen, int64_t image,
                   int row_begin, int row_end) {
  const RasterShape& shape = args.shape;
  const int64_t first_pixel = image * shape.PixelsPerImage() + int64_t{row_begin} * shape.width;
  const int64_t num_pixels = int64_t{row_end - row_begin} * shape.width;
  std::fill_n(args.barycentrics + 3 * first_pixel, 3 * num_pixels, 0.0f);
  std::fill_n(args.triangle_ids + first_pixel, num_pixels, -1);
  std::fill_n(args.z_buffer + first_pixel, num_pixels, 1.0f);

  const float* vertices = args.clip_vertices + image * shape.num_vertices * 4;
  screen += image * shape.num_vertices;
  float* barycentrics = args.barycentrics + 3 * image * shape.PixelsPerImage();
  int32_t* ids = args.triangle_ids + image * shape.PixelsPerImage();
  float* z_buffer = args.z_buffer + image * shape.PixelsPerImage();
  for (int64_t t = 0; t < shape.num_triangles; ++t) {
    const int32_t* corners = args.triangles + 3 * t;
    int x_first, x_last, y_first, y_last;
    if (!PixelBounds(screen[corners[0]], screen[corners[1]], screen[corners[2]], shape.width,
                     shape.height, &x_first, &x_last, &y_first, &y_last)) {
      continue;
    }
    y_first = std::max(y_first, row_begin);
    y_last = std::min(y_last, row_end - 1);
    if (y_first > y_last) continue;
    const float* v0 = Corner(vertices, corners, 0);
    const float* v1 = Corner(vertices, corners, 1);
    const float* v2 = Corner(vertices, corners, 2);
    TriangleSetup setup;
    if (!SetupTriangle(v0, v1, v2, &setup)) continue;
    ScanTrianglePixels(setup, v0, v1, v2, shape.width, shape.height, x_first, x_last, y_first,
                       y_last, [&](int x, int y, const float* b, float z) {
                         const int64_t pixel = int64_t{y} * shape.width + x;
                         // "<=": on equal depth the later triangle wins.
                         if (z > z_buffer[pixel]) return;
                         z_buffer[pixel] = z;
                         ids[pixel] = static_cast<int32_t>(t);
                         std::copy_n(b, 3, barycentrics + 3 * pixel);
                       });
  }
}

// Blocks of rows per image so that a batch smaller than the thread count
// still keeps every thread busy.
int64_t BlocksPerImage(const RasterShape& shape, int num_threads) {
  return std::min<int64_t>(shape.height,
                           std::max<int64_t>(1, CeilDiv(num_threads, shape.batch)));
}

// Adds the gradient of one run of pixels of `triangle` (their summed
// k lambda^T) to d_vertices [V, 4] of the image.
void FlushRun(const float* vertices, const int32_t* triangles, int32_t triangle,
              const float k_lambda[3][3], float* d_vertices) {
  const int32_t* corners = triangles + 3 * int64_t{triangle};
  TriangleSetup setup;
  if (!SetupTriangle(Corner(vertices, corners, 0), Corner(vertices, corners, 1),
                     Corner(vertices, corners, 2), &setup)) {
    return;  // Covers nothing, so no pixel can hold it; kept for safety.
  }
  float d_vertex[3][3];
  VertexGradients(setup, k_lambda, d_vertex);
  for (int c = 0; c < 3; ++c) {
    float* d = d_vertices + 4 * int64_t{corners[c]};
    for (int j = 0; j < 3; ++j) d[kComponent[j]] += d_vertex[c][j];
  }
}

// Gradient of pixels [begin, end) of `image` into d_vertices [V, 4] (zeroed
// here). Returns -1 or the flat index of the first invalid triangle id.
int64_t GradientOfPixels(const RasterizeGradArgs& args, int64_t image, int64_t begin,
                         int64_t end, float* d_vertices) {
  const RasterShape& shape = args.shape;
  std::fill_n(d_vertices, 4 * shape.num_vertices, 0.0f);
  const float* vertices = args.clip_vertices + image * shape.num_vertices * 4;
  float k_lambda[3][3] = {};
  int32_t run = -1;
  for (int64_t pixel = begin; pixel < end; ++pixel) {
    const int32_t id = args.triangle_ids[pixel];
    if (id != run) {
      if (id < -1 || id >= shape.num_triangles) return pixel;
      if (run >= 0) FlushRun(vertices, args.triangles, run, k_lambda, d_vertices);
      run = id;
      std::fill_n(&k_lambda[0][0], 9, 0.0f);
    }
    if (id >= 0) {
      AccumulatePixelGradient(args.barycentrics + 3 * pixel, args.d_barycentrics + 3 * pixel,
                              k_lambda);
    }
  }
  if (run >= 0) FlushRun(vertices, args.triangles, run, k_lambda, d_vertices);
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
  for (int64_t i = 0; i < 3 * num_triangles; ++i) {
    if (triangles[i] < 0 || triangles[i] >= num_vertices) return i;
  }
  return -1;
}

void SerialFor(int64_t count, int64_t, const std::function<void(int64_t, int64_t)>& body) {
  if (count > 0) body(0, count);
}

void RasterizeCpu(const RasterizeArgs& args, const ParallelFor& parallel_for,
                  int num_threads) {
  const RasterShape& shape = args.shape;
  if (shape.batch * shape.PixelsPerImage() == 0) return;
  const int64_t V = shape.num_vertices;
  std::vector<ScreenVertex> screen(shape.batch * V);
  const int64_t vertex_chunks = std::max<int64_t>(1, CeilDiv(V, kVerticesPerChunk));
  parallel_for(shape.batch * vertex_chunks, 20 * kVerticesPerChunk,
               [&](int64_t begin, int64_t end) {
                 for (int64_t unit = begin; unit < end; ++unit) {
                   const int64_t image = unit / vertex_chunks;
                   const int64_t first = image * V + (unit % vertex_chunks) * kVerticesPerChunk;
                   const int64_t last = std::min(first + kVerticesPerChunk, (image + 1) * V);
                   for (int64_t i = first; i < last; ++i) {
                     screen[i] = ProjectToScreen(args.clip_vertices + 4 * i, shape.width,
                                                 shape.height);
                   }
                 }
               });
  const int64_t blocks = BlocksPerImage(shape, num_threads);
  // Cost hint: every block tests every triangle.
  parallel_for(shape.batch * blocks,
               10 * shape.num_triangles + 100 * shape.PixelsPerImage() / blocks,
               [&](int64_t begin, int64_t end) {
                 for (int64_t unit = begin; unit < end; ++unit) {
                   const int64_t image = unit / blocks, block = unit % blocks;
                   RasterizeRows(args, screen.data(), image,
                                 static_cast<int>(block * shape.height / blocks),
                                 static_cast<int>((block + 1) * shape.height / blocks));
                 }
               });
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
