// CPU implementation of the core (see rasterize_triangles.h). The per-pixel
// math lives in rasterize_math.h, shared with the CUDA kernels.
#include <algorithm>
#include <string>

#include "rasterize_math.h"
#include "rasterize_triangles.h"

namespace mgc {
namespace {

constexpr int kGradientsPerPixel = 9;  // 3 vertices x (x, y, w).

const float* Vertex(const float* image_vertices, const int32_t* triangle,
                    int corner) {
  return image_vertices + 4 * int64_t{triangle[corner]};
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

void ProjectVerticesCpu(const float* clip_vertices, const RasterShape& shape,
                        int64_t image, ScreenVertex* screen_vertices) {
  const int64_t first = image * shape.num_vertices;
  for (int64_t i = first; i < first + shape.num_vertices; ++i) {
    screen_vertices[i] =
        ProjectToScreen(clip_vertices + 4 * i, shape.width, shape.height);
  }
}

void RasterizeRowsCpu(const float* clip_vertices,
                      const ScreenVertex* screen_vertices,
                      const int32_t* triangles, const RasterShape& shape,
                      int64_t image, int row_begin, int row_end,
                      float* barycentrics, int32_t* triangle_ids,
                      float* z_buffer) {
  const int width = shape.width;
  const int64_t first_pixel = image * shape.PixelsPerImage() +
                              int64_t{row_begin} * width;
  const int64_t num_pixels = int64_t{row_end - row_begin} * width;
  std::fill_n(barycentrics + 3 * first_pixel, 3 * num_pixels, 0.0f);
  std::fill_n(triangle_ids + first_pixel, num_pixels, -1);
  std::fill_n(z_buffer + first_pixel, num_pixels, 1.0f);

  const float* vertices = clip_vertices + image * shape.num_vertices * 4;
  const ScreenVertex* screen = screen_vertices + image * shape.num_vertices;
  for (int64_t t = 0; t < shape.num_triangles; ++t) {
    const int32_t* triangle = triangles + 3 * t;
    int x_first, x_last, y_first, y_last;
    if (!PixelBounds(screen[triangle[0]], screen[triangle[1]],
                     screen[triangle[2]], width, shape.height, &x_first,
                     &x_last, &y_first, &y_last)) {
      continue;
    }
    y_first = std::max(y_first, row_begin);
    y_last = std::min(y_last, row_end - 1);
    if (y_first > y_last) continue;
    const float* v0 = Vertex(vertices, triangle, 0);
    const float* v1 = Vertex(vertices, triangle, 1);
    const float* v2 = Vertex(vertices, triangle, 2);
    TriangleSetup setup;
    if (!SetupTriangle(v0, v1, v2, &setup)) continue;

    for (int y = y_first; y <= y_last; ++y) {
      const float py = PixelCenterNdc(y, shape.height);
      const int64_t row_pixel = image * shape.PixelsPerImage() +
                                int64_t{y} * width;
      for (int x = x_first; x <= x_last; ++x) {
        float b[3], z;
        if (!CoverPixel(setup, v0, v1, v2, PixelCenterNdc(x, width), py, b,
                        &z)) {
          continue;
        }
        const int64_t pixel = row_pixel + x;
        // "<=": on equal depth the later triangle wins.
        if (z > z_buffer[pixel]) continue;
        z_buffer[pixel] = z;
        triangle_ids[pixel] = static_cast<int32_t>(t);
        std::copy_n(b, 3, barycentrics + 3 * pixel);
      }
    }
  }
}

void PixelGradientsCpu(const float* clip_vertices, const int32_t* triangles,
                       const RasterShape& shape, int64_t image, int row_begin,
                       int row_end, const float* barycentrics,
                       const int32_t* triangle_ids,
                       const float* d_barycentrics, float* pixel_gradients) {
  const float* vertices = clip_vertices + image * shape.num_vertices * 4;
  const int64_t begin = image * shape.PixelsPerImage() +
                        int64_t{row_begin} * shape.width;
  const int64_t end = image * shape.PixelsPerImage() +
                      int64_t{row_end} * shape.width;
  for (int64_t pixel = begin; pixel < end; ++pixel) {
    float(*out)[3] =
        reinterpret_cast<float(*)[3]>(pixel_gradients + kGradientsPerPixel * pixel);
    const int32_t id = triangle_ids[pixel];
    TriangleSetup setup;
    if (id < 0 || !SetupTriangle(Vertex(vertices, triangles + 3 * int64_t{id}, 0),
                                 Vertex(vertices, triangles + 3 * int64_t{id}, 1),
                                 Vertex(vertices, triangles + 3 * int64_t{id}, 2),
                                 &setup)) {
      std::fill_n(&out[0][0], kGradientsPerPixel, 0.0f);
      continue;
    }
    PixelBarycentricGradient(setup, barycentrics + 3 * pixel,
                             d_barycentrics + 3 * pixel, out);
  }
}

void ScatterPixelGradientsCpu(const int32_t* triangles,
                              const RasterShape& shape, int64_t image,
                              const int32_t* triangle_ids,
                              const float* pixel_gradients,
                              float* d_clip_vertices) {
  static constexpr int kComponent[3] = {kX, kY, kW};
  float* d_vertices = d_clip_vertices + image * shape.num_vertices * 4;
  std::fill_n(d_vertices, shape.num_vertices * 4, 0.0f);
  const int64_t begin = image * shape.PixelsPerImage();
  const int64_t end = begin + shape.PixelsPerImage();
  for (int64_t pixel = begin; pixel < end; ++pixel) {
    const int32_t id = triangle_ids[pixel];
    if (id < 0) continue;
    const float* gradient = pixel_gradients + kGradientsPerPixel * pixel;
    for (int corner = 0; corner < 3; ++corner) {
      float* d_vertex = d_vertices + 4 * int64_t{triangles[3 * int64_t{id} + corner]};
      for (int j = 0; j < 3; ++j) {
        d_vertex[kComponent[j]] += gradient[3 * corner + j];
      }
    }
  }
}

}  // namespace mgc
