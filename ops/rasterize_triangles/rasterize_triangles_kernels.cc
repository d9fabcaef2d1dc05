// OpKernels of RasterizeTriangles and RasterizeTrianglesGrad: validate the
// inputs on the host, allocate the outputs, and hand raw pointers to the
// TensorFlow-free core (rasterize_triangles.h). CPU work is split over
// (image, row band) units on TensorFlow's intra-op thread pool.
#if GOOGLE_CUDA
#define EIGEN_USE_GPU  // Must precede every TensorFlow include.
#endif

#include <algorithm>
#include <string>

#include "rasterize_triangles.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/platform/threadpool.h"

namespace mgc {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::Status;
using ::tensorflow::TensorShape;
using ::tensorflow::errors::InvalidArgument;

using CpuDevice = Eigen::ThreadPoolDevice;
#if GOOGLE_CUDA
using ::tensorflow::DEVICE_GPU;
using GpuDevice = Eigen::GpuDevice;
#endif

// Reads and checks the image_width / image_height attributes.
void ReadImageSize(OpKernelConstruction* context, int* width, int* height) {
  OP_REQUIRES_OK(context, context->GetAttr("image_width", width));
  OP_REQUIRES_OK(context, context->GetAttr("image_height", height));
  OP_REQUIRES(context, *width > 0 && *height > 0,
              InvalidArgument("image_width and image_height must be positive, "
                              "got ", *width, " x ", *height));
}

// Refuses an image too large for the op before anything is allocated. Even
// for a batch of 0 one image must fit, as in the shape function, which may
// not know the batch.
Status CheckOutputSize(const RasterShape& shape) {
  const std::string problem = OutputSizeProblem(shape.batch, shape.width, shape.height);
  return problem.empty() ? Status() : InvalidArgument(problem);
}

// Checks clip_vertices [B, V, 4], triangles [T, 3] and the triangles' vertex
// indices (on the host: `triangles` is host memory on every device), and
// returns the shape of the work.
Status ValidateMesh(const Tensor& clip_vertices, const Tensor& triangles,
                    int width, int height, RasterShape* shape) {
  const TensorShape& v = clip_vertices.shape();
  const TensorShape& t = triangles.shape();
  if (v.dims() != 3 || v.dim_size(2) != 4) {
    return InvalidArgument("clip_vertices must have shape [B, V, 4], got ",
                           v.DebugString());
  }
  if (t.dims() != 2 || t.dim_size(1) != 3) {
    return InvalidArgument("triangles must have shape [T, 3], got ",
                           t.DebugString());
  }
  if (v.dim_size(1) > INT32_MAX || t.dim_size(0) > INT32_MAX) {
    return InvalidArgument("at most 2^31 - 1 vertices and triangles, got ",
                           v.dim_size(1), " and ", t.dim_size(0));
  }
  *shape = {v.dim_size(0), v.dim_size(1), t.dim_size(0), width, height};
  TF_RETURN_IF_ERROR(CheckOutputSize(*shape));
  const int32_t* indices = triangles.flat<int32_t>().data();
  const int64_t bad = FindInvalidTriangleIndex(indices, shape->num_triangles,
                                               shape->num_vertices);
  if (bad >= 0) {
    return InvalidArgument("triangles[", bad / 3, ", ", bad % 3, "] = ",
                           indices[bad], " is not a vertex index in [0, ",
                           shape->num_vertices, ")");
  }
  return Status();
}

// Runs fn(image, row_begin, row_end) over every image, split into row bands
// so that even a single image keeps every thread busy.
template <typename Fn>
void ForEachRowBand(OpKernelContext* context, const RasterShape& shape,
                    int64_t cost_per_row, const Fn& fn) {
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  const int64_t threads = std::max(1, pool->NumThreads());
  const int64_t bands = std::min<int64_t>(
      shape.height, std::max<int64_t>(1, (threads + shape.batch - 1) /
                                             std::max<int64_t>(1, shape.batch)));
  pool->ParallelFor(
      shape.batch * bands, cost_per_row * shape.height / bands,
      [&](int64_t begin, int64_t end) {
        for (int64_t unit = begin; unit < end; ++unit) {
          const int64_t image = unit / bands, band = unit % bands;
          fn(image, static_cast<int>(band * shape.height / bands),
             static_cast<int>((band + 1) * shape.height / bands));
        }
      });
}

template <typename Device>
struct Backend;

template <>
struct Backend<CpuDevice> {
  static void Rasterize(OpKernelContext* context, const RasterShape& shape,
                        const float* clip_vertices, const int32_t* triangles,
                        float* barycentrics, int32_t* triangle_ids,
                        float* z_buffer) {
    static_assert(sizeof(ScreenVertex) == 3 * sizeof(int32_t), "layout");
    Tensor screen_tensor;
    OP_REQUIRES_OK(context, context->allocate_temp(
                                tensorflow::DT_INT32,
                                TensorShape({shape.batch * shape.num_vertices * 3}),
                                &screen_tensor));
    auto* screen =
        reinterpret_cast<ScreenVertex*>(screen_tensor.flat<int32_t>().data());
    auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(shape.batch, 10 * shape.num_vertices,
                      [&](int64_t begin, int64_t end) {
                        for (int64_t image = begin; image < end; ++image) {
                          ProjectVerticesCpu(clip_vertices, shape, image,
                                             screen);
                        }
                      });
    // Cost hint: every band scans every triangle.
    ForEachRowBand(context, shape, 100 * shape.width + shape.num_triangles,
                   [&](int64_t image, int row_begin, int row_end) {
                     RasterizeRowsCpu(clip_vertices, screen, triangles, shape,
                                      image, row_begin, row_end, barycentrics,
                                      triangle_ids, z_buffer);
                   });
  }

  static void RasterizeGrad(OpKernelContext* context, const RasterShape& shape,
                            const float* clip_vertices,
                            const int32_t* triangles,
                            const float* barycentrics,
                            const int32_t* triangle_ids,
                            const float* d_barycentrics,
                            float* d_clip_vertices) {
    const int64_t num_pixels = shape.batch * shape.PixelsPerImage();
    for (int64_t i = 0; i < num_pixels; ++i) {
      const int32_t id = triangle_ids[i];
      OP_REQUIRES(context, id >= -1 && id < shape.num_triangles,
                  InvalidArgument("triangle_ids holds ", id, " at flat index ",
                                  i, ", not in [-1, ", shape.num_triangles,
                                  ")"));
    }
    Tensor pixel_gradients;
    OP_REQUIRES_OK(context, context->allocate_temp(
                                tensorflow::DT_FLOAT,
                                TensorShape({num_pixels * 9}),
                                &pixel_gradients));
    float* gradients = pixel_gradients.flat<float>().data();
    ForEachRowBand(context, shape, 100 * shape.width,
                   [&](int64_t image, int row_begin, int row_end) {
                     PixelGradientsCpu(clip_vertices, triangles, shape, image,
                                       row_begin, row_end, barycentrics,
                                       triangle_ids, d_barycentrics,
                                       gradients);
                   });
    auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
    pool->ParallelFor(shape.batch, 20 * shape.PixelsPerImage(),
                      [&](int64_t begin, int64_t end) {
                        for (int64_t image = begin; image < end; ++image) {
                          ScatterPixelGradientsCpu(triangles, shape, image,
                                                   triangle_ids, gradients,
                                                   d_clip_vertices);
                        }
                      });
  }
};

#if GOOGLE_CUDA
// `triangles` arrives in host memory (validated there); the kernels need a
// device copy.
Status CopyTrianglesToDevice(OpKernelContext* context,
                             const Tensor& triangles,
                             Tensor* device_triangles) {
  TF_RETURN_IF_ERROR(context->allocate_temp(
      tensorflow::DT_INT32, triangles.shape(), device_triangles));
  if (triangles.NumElements() > 0) {
    context->eigen_gpu_device().memcpyHostToDevice(
        device_triangles->flat<int32_t>().data(),
        triangles.flat<int32_t>().data(), triangles.TotalBytes());
  }
  return Status();
}

template <>
struct Backend<GpuDevice> {
  static void Rasterize(OpKernelContext* context, const RasterShape& shape,
                        const float* clip_vertices, const Tensor& triangles,
                        float* barycentrics, int32_t* triangle_ids,
                        float* z_buffer) {
    Tensor device_triangles, keys;
    OP_REQUIRES_OK(context,
                   CopyTrianglesToDevice(context, triangles, &device_triangles));
    OP_REQUIRES_OK(context, context->allocate_temp(
                                tensorflow::DT_INT64,
                                TensorShape({shape.batch * shape.PixelsPerImage()}),
                                &keys));
    const int status = RasterizeCuda(
        clip_vertices, device_triangles.flat<int32_t>().data(), shape,
        reinterpret_cast<uint64_t*>(keys.flat<int64_t>().data()), barycentrics,
        triangle_ids, z_buffer, context->eigen_gpu_device().stream());
    OP_REQUIRES(context, status == 0,
                tensorflow::errors::Internal("RasterizeCuda failed: CUDA error ",
                                             status));
  }

  static void RasterizeGrad(OpKernelContext* context, const RasterShape& shape,
                            const float* clip_vertices,
                            const Tensor& triangles,
                            const float* barycentrics,
                            const int32_t* triangle_ids,
                            const float* d_barycentrics,
                            float* d_clip_vertices) {
    Tensor device_triangles;
    OP_REQUIRES_OK(context,
                   CopyTrianglesToDevice(context, triangles, &device_triangles));
    const int status = RasterizeGradCuda(
        clip_vertices, device_triangles.flat<int32_t>().data(), shape,
        barycentrics, triangle_ids, d_barycentrics, d_clip_vertices,
        context->eigen_gpu_device().stream());
    OP_REQUIRES(context, status == 0,
                tensorflow::errors::Internal(
                    "RasterizeGradCuda failed: CUDA error ", status));
  }
};
#endif  // GOOGLE_CUDA

// The CPU backend takes raw triangle pointers, the GPU one the host tensor.
inline const int32_t* TrianglesArg(const Tensor& t, CpuDevice*) {
  return t.flat<int32_t>().data();
}
#if GOOGLE_CUDA
inline const Tensor& TrianglesArg(const Tensor& t, GpuDevice*) { return t; }
#endif

template <typename Device>
class RasterizeTrianglesOp : public OpKernel {
 public:
  explicit RasterizeTrianglesOp(OpKernelConstruction* context)
      : OpKernel(context) {
    ReadImageSize(context, &width_, &height_);
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& clip_vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    RasterShape shape;
    OP_REQUIRES_OK(context, ValidateMesh(clip_vertices, triangles, width_,
                                         height_, &shape));
    Tensor *barycentrics, *triangle_ids, *z_buffer;
    const TensorShape image({shape.batch, height_, width_});
    OP_REQUIRES_OK(context, context->allocate_output(
                                0, TensorShape({shape.batch, height_, width_, 3}),
                                &barycentrics));
    OP_REQUIRES_OK(context, context->allocate_output(1, image, &triangle_ids));
    OP_REQUIRES_OK(context, context->allocate_output(2, image, &z_buffer));
    if (barycentrics->NumElements() == 0) return;
    Backend<Device>::Rasterize(
        context, shape, clip_vertices.flat<float>().data(),
        TrianglesArg(triangles, static_cast<Device*>(nullptr)),
        barycentrics->flat<float>().data(),
        triangle_ids->flat<int32_t>().data(), z_buffer->flat<float>().data());
  }

 private:
  int width_ = 0;
  int height_ = 0;
};

template <typename Device>
class RasterizeTrianglesGradOp : public OpKernel {
 public:
  explicit RasterizeTrianglesGradOp(OpKernelConstruction* context)
      : OpKernel(context) {
    ReadImageSize(context, &width_, &height_);
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& clip_vertices = context->input(0);
    const Tensor& triangles = context->input(1);
    const Tensor& barycentrics = context->input(2);
    const Tensor& triangle_ids = context->input(3);
    const Tensor& d_barycentrics = context->input(4);
    RasterShape shape;
    OP_REQUIRES_OK(context, ValidateMesh(clip_vertices, triangles, width_,
                                         height_, &shape));
    const TensorShape image({shape.batch, height_, width_});
    const TensorShape image3({shape.batch, height_, width_, 3});
    OP_REQUIRES(context, barycentrics.shape() == image3 &&
                             d_barycentrics.shape() == image3 &&
                             triangle_ids.shape() == image,
                InvalidArgument(
                    "barycentrics and d_barycentrics must have shape ",
                    image3.DebugString(), " and triangle_ids ",
                    image.DebugString(), "; got ",
                    barycentrics.shape().DebugString(), ", ",
                    d_barycentrics.shape().DebugString(), ", ",
                    triangle_ids.shape().DebugString()));
    Tensor* d_clip_vertices;
    OP_REQUIRES_OK(context, context->allocate_output(0, clip_vertices.shape(),
                                                     &d_clip_vertices));
    if (d_clip_vertices->NumElements() == 0) return;
    Backend<Device>::RasterizeGrad(
        context, shape, clip_vertices.flat<float>().data(),
        TrianglesArg(triangles, static_cast<Device*>(nullptr)),
        barycentrics.flat<float>().data(),
        triangle_ids.flat<int32_t>().data(),
        d_barycentrics.flat<float>().data(),
        d_clip_vertices->flat<float>().data());
  }

 private:
  int width_ = 0;
  int height_ = 0;
};

REGISTER_KERNEL_BUILDER(
    Name("RasterizeTriangles").Device(DEVICE_CPU),
    RasterizeTrianglesOp<CpuDevice>);
REGISTER_KERNEL_BUILDER(
    Name("RasterizeTrianglesGrad").Device(DEVICE_CPU),
    RasterizeTrianglesGradOp<CpuDevice>);

#if GOOGLE_CUDA
REGISTER_KERNEL_BUILDER(
    Name("RasterizeTriangles").Device(DEVICE_GPU).HostMemory("triangles"),
    RasterizeTrianglesOp<GpuDevice>);
REGISTER_KERNEL_BUILDER(
    Name("RasterizeTrianglesGrad").Device(DEVICE_GPU).HostMemory("triangles"),
    RasterizeTrianglesGradOp<GpuDevice>);
#endif  // GOOGLE_CUDA

}  // namespace
}  // namespace mgc
