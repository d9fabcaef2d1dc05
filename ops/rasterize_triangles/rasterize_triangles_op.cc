// Interface of the RasterizeTriangles and RasterizeTrianglesGrad ops: inputs,
// outputs, attributes and static shapes. Kernels: rasterize_triangles_kernels.cc.
#include <string>

#include "rasterize_triangles.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace mgc {
namespace {

using ::tensorflow::Status;
using ::tensorflow::errors::InvalidArgument;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;

// False when `shape` is known not to have `rank` dimensions with the last
// one equal to `last_dim`.
bool MayHaveShape(InferenceContext* c, ShapeHandle shape, int rank,
                  int last_dim) {
  if (!c->RankKnown(shape)) return true;
  if (c->Rank(shape) != rank) return false;
  DimensionHandle last = c->Dim(shape, rank - 1);
  return !c->ValueKnown(last) || c->Value(last) == last_dim;
}

// Refuses barycentrics [batch, height, width, 3] too large for the kernels:
// the batch when known, else one image.
Status CheckOutputSize(InferenceContext* c, DimensionHandle batch, int width,
                       int height) {
  const int64_t known_batch = c->ValueKnown(batch) ? c->Value(batch) : -1;
  const std::string problem = OutputSizeProblem(known_batch, width, height);
  return problem.empty() ? Status() : InvalidArgument(problem);
}

// Checks clip_vertices [B, V, 4], triangles [T, 3] and the image size, and
// returns the shape [B, H, W] that every per-pixel output starts with.
Status ImageShape(InferenceContext* c, ShapeHandle* image) {
  int width, height;
  TF_RETURN_IF_ERROR(c->GetAttr("image_width", &width));
  TF_RETURN_IF_ERROR(c->GetAttr("image_height", &height));
  if (width <= 0 || height <= 0) {
    return InvalidArgument("image_width and image_height must be positive, got ",
                           width, " x ", height);
  }
  ShapeHandle vertices = c->input(0), triangles = c->input(1);
  if (!MayHaveShape(c, vertices, 3, 4)) {
    return InvalidArgument("clip_vertices must have shape [B, V, 4], got ",
                           c->DebugString(vertices));
  }
  if (!MayHaveShape(c, triangles, 2, 3)) {
    return InvalidArgument("triangles must have shape [T, 3], got ",
                           c->DebugString(triangles));
  }
  DimensionHandle batch =
      c->RankKnown(vertices) ? c->Dim(vertices, 0) : c->UnknownDim();
  TF_RETURN_IF_ERROR(CheckOutputSize(c, batch, width, height));
  *image = c->MakeShape({batch, height, width});
  return Status();
}

}  // namespace

REGISTER_OP("RasterizeTriangles")
    .Input("clip_vertices: float32")
    .Input("triangles: int32")
    .Attr("image_width: int")
    .Attr("image_height: int")
    .Output("barycentrics: float32")
    .Output("triangle_ids: int32")
    .Output("z_buffer: float32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle image, barycentrics;
      TF_RETURN_IF_ERROR(ImageShape(c, &image));
      TF_RETURN_IF_ERROR(
          c->Concatenate(image, c->Vector(3), &barycentrics));
      c->set_output(0, barycentrics);
      c->set_output(1, image);
      c->set_output(2, image);
      return Status();
    })
    .Doc(R"doc(
Rasterizes triangles given in clip space, one image per batch element.

clip_vertices: [B, V, 4] clip-space (x, y, z, w) vertices.
triangles: [T, 3] vertex indices shared by every image.
barycentrics: [B, H, W, 3] perspective-correct barycentrics of the visible
  triangle, (0, 0, 0) where nothing is drawn. Row 0 is the image bottom.
triangle_ids: [B, H, W] index of the visible triangle, -1 where none.
z_buffer: [B, H, W] NDC depth of the visible surface, 1 where none.
)doc");

// Gradient of RasterizeTriangles' barycentrics w.r.t. clip_vertices at fixed
// visibility: d_clip_vertices [B, V, 4], whose z column is always 0.
REGISTER_OP("RasterizeTrianglesGrad")
    .Input("clip_vertices: float32")
    .Input("triangles: int32")
    .Input("barycentrics: float32")
    .Input("triangle_ids: int32")
    .Input("d_barycentrics: float32")
    .Attr("image_width: int")
    .Attr("image_height: int")
    .Output("d_clip_vertices: float32")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle image;
      TF_RETURN_IF_ERROR(ImageShape(c, &image));
      c->set_output(0, c->input(0));
      return Status();
    })
    .Doc(R"doc(
Gradient of RasterizeTriangles' barycentrics w.r.t. its clip vertices, at the
visibility the forward pass found (which triangle covers which pixel does not
change).

clip_vertices: [B, V, 4] the forward pass's clip-space vertices.
triangles: [T, 3] the forward pass's vertex indices.
barycentrics: [B, H, W, 3] the forward pass's barycentrics.
triangle_ids: [B, H, W] the forward pass's triangle ids, each in [-1, T);
  other values are refused on the CPU and skipped on the GPU.
d_barycentrics: [B, H, W, 3] dL/dbarycentrics.
d_clip_vertices: [B, V, 4] dL/dclip_vertices, summed over the covered
  pixels; the z column is 0 (barycentrics do not depend on z).
)doc");

}  // namespace mgc
