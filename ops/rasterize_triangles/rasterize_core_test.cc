// Unit tests of the TensorFlow-free rasterizer core (rasterize_triangles.h):
// coverage on shared edges for both windings, full-screen coverage, empty and
// degenerate input, depth order and ties, non-finite vertices, index checks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "rasterize_triangles.h"

namespace mgc {
namespace {

// Output buffers of one forward pass, pre-filled with garbage so that a test
// notices pixels the core forgets to write.
struct Raster {
  RasterShape shape;
  std::vector<float> barycentrics;
  std::vector<int32_t> triangle_ids;
  std::vector<float> z_buffer;

  int64_t Pixel(int64_t image, int x, int y) const {
    return image * shape.PixelsPerImage() + int64_t{y} * shape.width + x;
  }
  int32_t Id(int x, int y, int64_t image = 0) const {
    return triangle_ids[Pixel(image, x, y)];
  }
  float Z(int x, int y, int64_t image = 0) const {
    return z_buffer[Pixel(image, x, y)];
  }
  float B(int x, int y, int k, int64_t image = 0) const {
    return barycentrics[3 * Pixel(image, x, y) + k];
  }
};

// Rasterizes every image of the batch, rows split into bands of `band` rows.
Raster Rasterize(const std::vector<float>& clip_vertices,
                 const std::vector<int32_t>& triangles, int64_t batch,
                 int width, int height, int band = 0) {
  Raster r;
  const int64_t num_vertices =
      batch == 0 ? 0 : static_cast<int64_t>(clip_vertices.size()) / (4 * batch);
  r.shape = RasterShape{batch, num_vertices,
                        static_cast<int64_t>(triangles.size()) / 3, width,
                        height};
  const int64_t pixels = batch * r.shape.PixelsPerImage();
  r.barycentrics.assign(3 * pixels, 7.0f);
  r.triangle_ids.assign(pixels, 42);
  r.z_buffer.assign(pixels, -3.0f);
  if (band <= 0) band = height;
  static const float kNoVertex[4] = {0, 0, 0, 1};
  const float* vertices =
      clip_vertices.empty() ? kNoVertex : clip_vertices.data();
  static const int32_t kNoTriangle[3] = {0, 0, 0};
  const int32_t* tris = triangles.empty() ? kNoTriangle : triangles.data();
  // Step 1 projects each image's vertices, step 2 rasterizes row bands.
  std::vector<ScreenVertex> screen(std::max<int64_t>(1, batch * num_vertices));
  for (int64_t image = 0; image < batch; ++image) {
    ProjectVerticesCpu(vertices, r.shape, image, screen.data());
    for (int row = 0; row < height; row += band) {
      RasterizeRowsCpu(vertices, screen.data(), tris, r.shape, image, row,
                       std::min(row + band, height), r.barycentrics.data(),
                       r.triangle_ids.data(), r.z_buffer.data());
    }
  }
  return r;
}

// Clip vertices (x, y, z, w=1) from 2D NDC points at depth z.
std::vector<float> Flat(const std::vector<std::pair<float, float>>& points,
                        float z = 0.0f) {
  std::vector<float> v;
  for (const auto& p : points) {
    v.insert(v.end(), {p.first, p.second, z, 1.0f});
  }
  return v;
}

void ExpectEmpty(const Raster& r) {
  for (int64_t image = 0; image < r.shape.batch; ++image) {
    for (int y = 0; y < r.shape.height; ++y) {
      for (int x = 0; x < r.shape.width; ++x) {
        ASSERT_EQ(r.Id(x, y, image), -1) << "pixel " << x << "," << y;
        ASSERT_EQ(r.Z(x, y, image), 1.0f) << "pixel " << x << "," << y;
        for (int k = 0; k < 3; ++k) {
          ASSERT_EQ(r.B(x, y, k, image), 0.0f) << "pixel " << x << "," << y;
        }
      }
    }
  }
}

void ExpectCovered(const Raster& r, int x, int y, int32_t id) {
  EXPECT_EQ(r.Id(x, y), id) << "pixel " << x << "," << y;
  const float sum = r.B(x, y, 0) + r.B(x, y, 1) + r.B(x, y, 2);
  EXPECT_NEAR(sum, 1.0f, 1e-6f) << "pixel " << x << "," << y;
  for (int k = 0; k < 3; ++k) {
    EXPECT_GE(r.B(x, y, k), 0.0f) << "pixel " << x << "," << y;
  }
}

// Image 641 x 10: the centre of column 320 is exactly NDC x = 0, on the edge
// shared by the two triangles.
constexpr int kEdgeWidth = 641;
constexpr int kEdgeHeight = 10;
constexpr int kEdgeColumn = 320;

TEST(RasterizeRowsCpu, PixelCenterOnSharedEdgeIsExact) {
  EXPECT_EQ(PixelCenterNdc(kEdgeColumn, kEdgeWidth), 0.0f);
  EXPECT_EQ(PixelCenterNdc(0, 2), -0.5f);
  EXPECT_EQ(PixelCenterNdc(0, 1), 0.0f);
}

TEST(RasterizeRowsCpu, SharedEdgeCoveredByLeftTriangleBothWindings) {
  const auto left = Flat({{-1, -1}, {0, -1}, {0, 1}});
  for (const std::vector<int32_t>& winding :
       {std::vector<int32_t>{0, 1, 2}, std::vector<int32_t>{0, 2, 1}}) {
    const Raster r = Rasterize(left, winding, 1, kEdgeWidth, kEdgeHeight);
    ExpectCovered(r, kEdgeColumn, 5, 0);
    EXPECT_EQ(r.Id(kEdgeColumn + 1, 5), -1);  // right of the edge
    ExpectCovered(r, kEdgeColumn - 1, 5, 0);
    // On the edge x = 0 the weight of vertex 0 (at x = -1) is zero.
    EXPECT_EQ(r.B(kEdgeColumn, 5, 0), 0.0f);
  }
}

TEST(RasterizeRowsCpu, SharedEdgeCoveredByRightTriangleBothWindings) {
  const auto right = Flat({{0, -1}, {1, -1}, {0, 1}});
  for (const std::vector<int32_t>& winding :
       {std::vector<int32_t>{0, 1, 2}, std::vector<int32_t>{0, 2, 1}}) {
    const Raster r = Rasterize(right, winding, 1, kEdgeWidth, kEdgeHeight);
    ExpectCovered(r, kEdgeColumn, 5, 0);
    EXPECT_EQ(r.Id(kEdgeColumn - 1, 5), -1);  // left of the edge
    ExpectCovered(r, kEdgeColumn + 1, 5, 0);
  }
}

TEST(RasterizeRowsCpu, SharedEdgeCoveredWithBothTriangles) {
  // Left triangle 0 and right triangle 1 at the same depth: the edge pixel is
  // covered (no gap), by the later triangle on the tie.
  const auto v = Flat({{-1, -1}, {0, -1}, {0, 1}, {1, -1}});
  for (const std::vector<int32_t>& tris :
       {std::vector<int32_t>{0, 1, 2, 1, 3, 2},
        std::vector<int32_t>{0, 2, 1, 1, 2, 3}}) {
    const Raster r = Rasterize(v, tris, 1, kEdgeWidth, kEdgeHeight);
    ExpectCovered(r, kEdgeColumn, 5, 1);
    ExpectCovered(r, kEdgeColumn - 1, 5, 0);
    ExpectCovered(r, kEdgeColumn + 1, 5, 1);
  }
}

TEST(RasterizeRowsCpu, FullScreenQuadCoversCorners) {
  const auto v = Flat({{-1, -1}, {1, -1}, {1, 1}, {-1, 1}}, 0.25f);
  const std::vector<int32_t> tris = {0, 1, 2, 0, 2, 3};
  const int width = 64, height = 48;
  const Raster r = Rasterize(v, tris, 1, width, height);
  for (int x : {0, width - 1}) {
    for (int y : {0, height - 1}) {
      EXPECT_NE(r.Id(x, y), -1) << "corner " << x << "," << y;
      EXPECT_EQ(r.Z(x, y), 0.25f) << "corner " << x << "," << y;
    }
  }
  // Bottom-right corner is only in triangle 0, top-left only in triangle 1
  // (row 0 is the bottom, NDC y = -1).
  ExpectCovered(r, width - 1, 0, 0);
  ExpectCovered(r, 0, height - 1, 1);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      ASSERT_NE(r.Id(x, y), -1) << "pixel " << x << "," << y;
    }
  }
  // Perspective-correct barycentrics of an affine triangle (w = 1) are the
  // plain ones: at the bottom-left pixel centre of triangle 0, b = M^-1 p.
  const float px = PixelCenterNdc(width - 1, width);
  const float py = PixelCenterNdc(0, height);
  EXPECT_NEAR(r.B(width - 1, 0, 0), (1.0f - px) / 2.0f, 1e-6f);
  EXPECT_NEAR(r.B(width - 1, 0, 2), (py + 1.0f) / 2.0f, 1e-6f);
}

TEST(RasterizeRowsCpu, DegenerateTriangleCoversNothing) {
  // Collinear vertices through the pixel centres on the diagonal, and a
  // triangle with a repeated vertex.
  const auto v = Flat({{-1, -1}, {0, 0}, {1, 1}, {0.5f, -0.5f}});
  for (const std::vector<int32_t>& tris :
       {std::vector<int32_t>{0, 1, 2}, std::vector<int32_t>{0, 2, 1},
        std::vector<int32_t>{0, 3, 3}, std::vector<int32_t>{1, 1, 1}}) {
    ExpectEmpty(Rasterize(v, tris, 1, 1, 1));
    ExpectEmpty(Rasterize(v, tris, 1, 16, 16));
  }
}

TEST(RasterizeRowsCpu, NoTrianglesGivesEmptyImage) {
  ExpectEmpty(Rasterize(Flat({{-1, -1}, {1, -1}, {0, 1}}), {}, 2, 8, 6));
  ExpectEmpty(Rasterize({}, {}, 1, 5, 3));  // V = 0 and T = 0
}

TEST(RasterizeRowsCpu, NearestDepthWinsAndLaterTriangleWinsTies) {
  const auto far_first = Flat({{-1, -1}, {3, -1}, {-1, 3}}, 0.5f);
  const auto near = Flat({{-1, -1}, {3, -1}, {-1, 3}}, -0.25f);
  std::vector<float> v = far_first;
  v.insert(v.end(), near.begin(), near.end());
  // Far triangle 0, near triangle 1, and the other order.
  Raster r = Rasterize(v, {0, 1, 2, 3, 4, 5}, 1, 8, 8);
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) {
      ASSERT_EQ(r.Id(x, y), 1);
      ASSERT_EQ(r.Z(x, y), -0.25f);
    }
  }
  r = Rasterize(v, {3, 4, 5, 0, 1, 2}, 1, 8, 8);
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) {
      ASSERT_EQ(r.Id(x, y), 0);
      ASSERT_EQ(r.Z(x, y), -0.25f);
    }
  }
  // Equal depth: the later triangle wins, whichever winding.
  r = Rasterize(far_first, {0, 1, 2, 0, 2, 1, 1, 2, 0}, 1, 8, 8);
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) {
      ASSERT_EQ(r.Id(x, y), 2);
      ASSERT_EQ(r.Z(x, y), 0.5f);
    }
  }
}

TEST(RasterizeRowsCpu, NonFiniteVertexCoversNothing) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (int component = 0; component < 4; ++component) {
    for (float bad : {nan, inf, -inf}) {
      auto v = Flat({{-1, -1}, {3, -1}, {-1, 3}});
      v[4 * 1 + component] = bad;
      ExpectEmpty(Rasterize(v, {0, 1, 2}, 1, 8, 8));
    }
  }
  // A bad triangle does not stop a good one behind it.
  auto v = Flat({{-1, -1}, {3, -1}, {-1, 3}, {-1, -1}, {3, -1}, {-1, 3}});
  v[4 * 0 + 0] = nan;
  v[4 * 3 + 2] = 0.5f;
  v[4 * 4 + 2] = 0.5f;
  v[4 * 5 + 2] = 0.5f;
  const Raster r = Rasterize(v, {0, 1, 2, 3, 4, 5}, 1, 8, 8);
  for (int y = 0; y < 8; ++y) {
    for (int x = 0; x < 8; ++x) {
      ASSERT_EQ(r.Id(x, y), 1);
      ASSERT_EQ(r.Z(x, y), 0.5f);
    }
  }
}

TEST(RasterizeRowsCpu, RowBandsAndBatchAreIndependent) {
  // Image 0: triangle on the left half; image 1: the same shifted right.
  auto v = Flat({{-1, -1}, {0, -1}, {-1, 1}});
  const auto shifted = Flat({{0, -1}, {1, -1}, {0, 1}}, 0.5f);
  v.insert(v.end(), shifted.begin(), shifted.end());
  const std::vector<int32_t> tris = {0, 1, 2};
  const Raster whole = Rasterize(v, tris, 2, 31, 17);
  const Raster bands = Rasterize(v, tris, 2, 31, 17, 3);
  EXPECT_EQ(whole.triangle_ids, bands.triangle_ids);
  EXPECT_EQ(whole.z_buffer, bands.z_buffer);
  EXPECT_EQ(whole.barycentrics, bands.barycentrics);
  EXPECT_EQ(whole.Id(2, 2, 0), 0);
  EXPECT_EQ(whole.Id(2, 2, 1), -1);
  EXPECT_EQ(whole.Id(17, 2, 1), 0);
  EXPECT_EQ(whole.Z(17, 2, 1), 0.5f);
}

TEST(FindInvalidTriangleIndex, FindsOutOfRangeIndices) {
  const std::vector<int32_t> valid = {0, 1, 2, 2, 1, 0};
  EXPECT_EQ(FindInvalidTriangleIndex(valid.data(), 2, 3), -1);
  EXPECT_EQ(FindInvalidTriangleIndex(valid.data(), 0, 0), -1);

  const std::vector<int32_t> negative = {0, 1, 2, 0, -1, 2};
  EXPECT_EQ(FindInvalidTriangleIndex(negative.data(), 2, 3), 4);

  const std::vector<int32_t> too_big = {0, 1, 2, 0, 1, 3, -1, 0, 0};
  EXPECT_EQ(FindInvalidTriangleIndex(too_big.data(), 3, 3), 5);  // first bad
  EXPECT_EQ(FindInvalidTriangleIndex(too_big.data(), 3, 4), 6);
  EXPECT_EQ(FindInvalidTriangleIndex(valid.data(), 2, 0), 0);  // V = 0
}

TEST(OutputSizeProblem, RefusesOutputsBeyondInt32Values) {
  EXPECT_EQ(OutputSizeProblem(8, 224, 224), "");
  EXPECT_EQ(OutputSizeProblem(-1, 26754, 26754), "");  // 2147329548 values
  EXPECT_EQ(OutputSizeProblem(1, 26755, 26755),
            "image of 26755 x 26755 pixels x batch 1 has 2147490075 barycentric "
            "values, more than the op supports (2147483647)");
  EXPECT_EQ(OutputSizeProblem(0, 65536, 65536),
            "image of 65536 x 65536 pixels has 12884901888 barycentric values, "
            "more than the op supports (2147483647)");
  // Each image fits; the batch does not, and the product does not wrap.
  EXPECT_NE(OutputSizeProblem(4096, 16384, 16384), "");
  EXPECT_NE(OutputSizeProblem(INT64_MAX, INT32_MAX, INT32_MAX).find("at least 2^64"),
            std::string::npos);
}

}  // namespace
}  // namespace mgc
