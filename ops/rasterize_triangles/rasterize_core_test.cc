// Unit tests of the TensorFlow-free core (rasterize_triangles.h) for what
// the Python backend test base (tests/rasterizer_test_base.py, which runs
// the scenes, edges, ties and gradients on this core through its C
// interface) cannot see: how the work is split (row blocks and gradient
// units give the same result for any thread count, up to summation order),
// invalid-id reporting, index checks, the output-size limit and the
// thread-pool loop SharedCounterFor.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "rasterize_triangles.h"

namespace mgc {
namespace {

// A fixed scene: a 12 x 9 vertex grid with varying depth and w, 2 images.
struct Scene {
  RasterShape shape{2, 12 * 9, 2 * 11 * 8, 37, 23};
  std::vector<float> clip;
  std::vector<int32_t> triangles;
  std::vector<float> barycentrics, z, d_barycentrics;
  std::vector<int32_t> ids;

  Scene() {
    for (int image = 0; image < 2; ++image) {
      for (int row = 0; row < 9; ++row) {
        for (int col = 0; col < 12; ++col) {
          const float w = 1.0f + 0.1f * col + 0.2f * image;
          const float x = -0.9f + 0.16f * col + 0.03f * std::sin(3.0f * row);
          const float y = -0.9f + 0.21f * row;
          clip.insert(clip.end(), {x * w, y * w, 0.3f * std::cos(x + y) * w, w});
        }
      }
    }
    for (int row = 0; row < 8; ++row) {
      for (int col = 0; col < 11; ++col) {
        const int32_t a = row * 12 + col;
        triangles.insert(triangles.end(), {a, a + 1, a + 13, a, a + 13, a + 12});
      }
    }
    const int64_t pixels = shape.batch * shape.PixelsPerImage();
    barycentrics.assign(3 * pixels, 7.0f);  // garbage: every pixel is written
    z.assign(pixels, -3.0f);
    ids.assign(pixels, 42);
    for (int64_t i = 0; i < 3 * pixels; ++i) d_barycentrics.push_back(std::sin(0.37f * i));
  }

  void Rasterize(int num_threads, const ParallelFor& parallel_for = SerialFor) {
    RasterizeCpu({shape, clip.data(), triangles.data(), barycentrics.data(), ids.data(),
                  z.data(), nullptr},
                 parallel_for, num_threads);
  }

  std::vector<float> Gradient(int num_threads, int64_t* invalid) const {
    std::vector<float> d(clip.size(), 5.0f);
    *invalid = RasterizeGradCpu({shape, clip.data(), triangles.data(), barycentrics.data(),
                                 ids.data(), d_barycentrics.data(), d.data()},
                                SerialFor, num_threads);
    return d;
  }
};

TEST(RasterizeCpu, RowBlocksGiveTheSameImages) {
  Scene whole, blocks;
  whole.Rasterize(1);
  blocks.Rasterize(7);  // 4 blocks per image of 23 rows: uneven splits
  EXPECT_EQ(whole.ids, blocks.ids);
  EXPECT_EQ(whole.z, blocks.z);
  EXPECT_EQ(whole.barycentrics, blocks.barycentrics);
  EXPECT_GT(std::count(whole.ids.begin(), whole.ids.end(), -1), 0);
  EXPECT_GT(std::count_if(whole.ids.begin(), whole.ids.end(), [](int32_t i) { return i >= 0; }),
            500);
}

TEST(RasterizeGradCpu, GradientUnitsAgreeUpToRounding) {
  Scene scene;
  scene.Rasterize(1);
  int64_t invalid = 0;
  const std::vector<float> one = scene.Gradient(1, &invalid);
  EXPECT_EQ(invalid, -1);
  float largest = 0.0f;
  for (float value : one) largest = std::max(largest, std::fabs(value));
  ASSERT_GT(largest, 0.1f);
  for (int threads : {2, 5, 64}) {
    const std::vector<float> split = scene.Gradient(threads, &invalid);
    EXPECT_EQ(invalid, -1);
    EXPECT_EQ(split, scene.Gradient(threads, &invalid)) << "repeats exactly";
    for (size_t i = 0; i < one.size(); ++i) {
      ASSERT_NEAR(split[i], one[i], 1e-5f * largest) << "threads " << threads << " at " << i;
      if (i % 4 == kZ) ASSERT_EQ(split[i], 0.0f);
    }
  }
}

TEST(RasterizeGradCpu, ReportsTheFirstInvalidTriangleId) {
  Scene scene;
  scene.Rasterize(1);
  scene.ids[scene.ids.size() - 3] = static_cast<int32_t>(scene.shape.num_triangles);
  scene.ids[900] = -2;
  int64_t invalid = 0;
  scene.Gradient(4, &invalid);
  EXPECT_EQ(invalid, 900);
  scene.ids[900] = -1;
  scene.Gradient(1, &invalid);
  EXPECT_EQ(invalid, static_cast<int64_t>(scene.ids.size()) - 3);
}

// Helpers on threads of their own, joined when the test is done.
class ThreadSchedule {
 public:
  ~ThreadSchedule() {
    for (std::thread& thread : threads_) thread.join();
  }
  Schedule schedule() {
    return [this](std::function<void()> task) { threads_.emplace_back(std::move(task)); };
  }

 private:
  std::vector<std::thread> threads_;
};

TEST(SharedCounterFor, RunsEveryUnitOnce) {
  for (int threads : {1, 2, 3, 8}) {
    for (int64_t count : {0, 1, 2, 7, 1000}) {
      for (int64_t cost : {1, 100000}) {
        std::vector<std::atomic<int>> runs(count);
        {
          ThreadSchedule helpers;
          SharedCounterFor(helpers.schedule(), threads, count, cost,
                           [&](int64_t begin, int64_t end) {
                             ASSERT_LT(begin, end);
                             for (int64_t i = begin; i < end; ++i) runs[i]++;
                           });
          // Done when the call returns, not only once the helpers are joined.
          for (int64_t i = 0; i < count; ++i) {
            ASSERT_EQ(runs[i].load(), 1) << threads << " threads, unit " << i << " of " << count;
          }
        }
      }
    }
  }
}

TEST(SharedCounterFor, DoesNotWaitForHelpersThatStartLate) {
  // The pool starts no helper until the call has returned: the calling
  // thread does every unit, and the helpers then find nothing to do.
  std::vector<std::function<void()>> waiting;
  std::atomic<int> units{0}, calls_after_return{0};
  bool returned = false;
  SharedCounterFor([&](std::function<void()> task) { waiting.push_back(std::move(task)); }, 4,
                   64, 100000, [&](int64_t begin, int64_t end) {
                     if (returned) calls_after_return++;
                     units += static_cast<int>(end - begin);
                   });
  returned = true;
  EXPECT_EQ(units.load(), 64);
  EXPECT_EQ(waiting.size(), 3u);
  for (auto& task : waiting) task();
  EXPECT_EQ(calls_after_return.load(), 0);
  EXPECT_EQ(units.load(), 64);
}

TEST(RasterizeCpu, ThreadsOfSharedCounterForGiveTheSerialImages) {
  Scene serial, threaded;
  serial.Rasterize(7);
  ThreadSchedule helpers;
  const Schedule schedule = helpers.schedule();
  threaded.Rasterize(7, [&](int64_t count, int64_t cost,
                            const std::function<void(int64_t, int64_t)>& body) {
    SharedCounterFor(schedule, 7, count, cost, body);
  });
  EXPECT_EQ(serial.ids, threaded.ids);
  EXPECT_EQ(serial.z, threaded.z);
  EXPECT_EQ(serial.barycentrics, threaded.barycentrics);
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
