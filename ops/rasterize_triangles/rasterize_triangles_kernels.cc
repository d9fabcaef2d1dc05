// OpKernels of RasterizeTriangles and RasterizeTrianglesGrad: validate the
// inputs on the host, allocate the outputs, and hand raw pointers to the
// TensorFlow-free core (rasterize_triangles.h) through one backend
// signature per device. CPU work runs on TensorFlow's intra-op thread pool.
#if GOOGLE_CUDA
#define EIGEN_USE_GPU  // Must precede every TensorFlow include.
#endif

#include <algorithm>
#include <functional>
#include <string>
#include <utility>

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

// The CPU core's ParallelFor on TensorFlow's intra-op thread pool: the
// core's SharedCounterFor with helpers scheduled on the pool (the pool's own
// ParallelFor splits the work up front and waits for every part, also for
// a worker that is slow to wake).
ParallelFor ThreadPoolFor(OpKernelContext* context, int* num_threads) {
  auto* pool = context->device()->tensorflow_cpu_worker_threads()->workers;
  const int threads = std::max(1, pool->NumThreads());
  *num_threads = threads;
  return [pool, threads](int64_t count, int64_t cost_per_unit,
                         const std::function<void(int64_t, int64_t)>& body) {
    SharedCounterFor([pool](std::function<void()> task) { pool->Schedule(std::move(task)); },
                     threads, count, cost_per_unit, body);
  };
}

// One signature for every device: `triangles` is the host tensor (validated
// there), `args` the outputs' and inputs' pointers, args.triangles the host
// copy. A backend returns the status of the pass.
template <typename Device>
struct Backend;

template <>
struct Backend<CpuDevice> {
  static Status Rasterize(OpKernelContext* context, const Tensor&,
                          const RasterizeArgs& args) {
    int num_threads;
    const ParallelFor parallel_for = ThreadPoolFor(context, &num_threads);
    RasterizeCpu(args, parallel_for, num_threads);
    return Status();
  }

  static Status RasterizeGrad(OpKernelContext* context, const Tensor&,
                              const RasterizeGradArgs& args) {
    int num_threads;
    const ParallelFor parallel_for = ThreadPoolFor(context, &num_threads);
    const int64_t bad = RasterizeGradCpu(args, parallel_for, num_threads);
    if (bad < 0) return Status();
    return InvalidArgument("triangle_ids holds ", args.triangle_ids[bad],
                           " at flat index ", bad, ", not in [-1, ",
                           args.shape.num_triangles, ")");
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

Status CudaStatus(const char* pass, int status) {
  return status == 0 ? Status()
                     : tensorflow::errors::Internal(pass, " failed: CUDA error ", status);
}

template <>
struct Backend<GpuDevice> {
  static Status Rasterize(OpKernelContext* context, const Tensor& triangles,
                          RasterizeArgs args) {
    Tensor device_triangles, keys;
    TF_RETURN_IF_ERROR(CopyTrianglesToDevice(context, triangles, &device_triangles));
    TF_RETURN_IF_ERROR(context->allocate_temp(
        tensorflow::DT_INT64, TensorShape({args.shape.batch * args.shape.PixelsPerImage()}),
        &keys));
    args.triangles = device_triangles.flat<int32_t>().data();
    args.depth_id_keys = reinterpret_cast<uint64_t*>(keys.flat<int64_t>().data());
    return CudaStatus("RasterizeCuda",
                      RasterizeCuda(args, context->eigen_gpu_device().stream()));
  }

  static Status RasterizeGrad(OpKernelContext* context, const Tensor& triangles,
                              RasterizeGradArgs args) {
    Tensor device_triangles;
    TF_RETURN_IF_ERROR(CopyTrianglesToDevice(context, triangles, &device_triangles));
    args.triangles = device_triangles.flat<int32_t>().data();
    return CudaStatus("RasterizeGradCuda",
                      RasterizeGradCuda(args, context->eigen_gpu_device().stream()));
  }
};
#endif  // GOOGLE_CUDA

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
    const RasterizeArgs args{shape,
                             clip_vertices.flat<float>().data(),
                             triangles.flat<int32_t>().data(),
                             barycentrics->flat<float>().data(),
                             triangle_ids->flat<int32_t>().data(),
                             z_buffer->flat<float>().data(),
                             nullptr};
    OP_REQUIRES_OK(context, Backend<Device>::Rasterize(context, triangles, args));
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
    const RasterizeGradArgs args{shape,
                                 clip_vertices.flat<float>().data(),
                                 triangles.flat<int32_t>().data(),
                                 barycentrics.flat<float>().data(),
                                 triangle_ids.flat<int32_t>().data(),
                                 d_barycentrics.flat<float>().data(),
                                 d_clip_vertices->flat<float>().data()};
    OP_REQUIRES_OK(context, Backend<Device>::RasterizeGrad(context, triangles, args));
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
