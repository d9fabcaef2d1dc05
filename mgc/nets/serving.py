"""A self-contained SavedModel of MGCNet's inference: uint8 crops in,
coefficients, model-frame vertices and 2-D landmarks out.

The module holds only the encoder's variables, the face model's bases (as
graph constants, through mgc.facemodel.decode_shape) and plain TF math, so
that `tf.saved_model.load` works in a process without mgc: a function using
the rasterizer op, even one no signature calls, would make loading fail with
"Op type not registered". export_saved_model checks the written graph for it.

Unlike the rest of mgc.nets this module sits at the top of the import ladder
(it needs facemodel, geometry and render's landmark gathering).
"""
import os

import tensorflow as tf

from mgc import geometry
from mgc.facemodel import MGCNET_LAYOUT, CoefficientLayout, decode_shape
from mgc.nets.encoder import IMAGE_SIZE, images_to_unit, load_encoder
from mgc.render.face import gather_landmarks

SIGNATURE = "serving_default"
INPUT_NAME = "images"
FORBIDDEN_OPS = ("RasterizeTriangles", "RasterizeTrianglesGrad")


class ServingError(ValueError):
    """The export cannot be done; the message is one line saying why."""


def check_layout(model):
    """ServingError unless the face model's ranks give the encoder's 257 layout."""
    layout = CoefficientLayout.for_model(model)
    if layout != MGCNET_LAYOUT:
        raise ServingError(
            f"face model {model.name!r} has ranks identity {layout.identity}, albedo "
            f"{layout.albedo}, expression {layout.expression} ({layout.size} coefficients); "
            f"the encoder's {MGCNET_LAYOUT.size} need identity {MGCNET_LAYOUT.identity}, "
            f"albedo {MGCNET_LAYOUT.albedo}, expression {MGCNET_LAYOUT.expression}")


class ServingModel(tf.Module):
    """uint8 RGB crops [B, 224, 224, 3] -> dict of coefficients [B, 257],
    vertices [B, N, 3] (mm, model frame, no pose) and landmarks_2d [B, 68, 2]
    (crop pixels), as mgc.render.render_face computes them."""

    def __init__(self, encoder, model, intrinsics=geometry.MGCNET_INTRINSICS):
        super().__init__(name="mgcnet_serving")
        check_layout(model)
        self.encoder = encoder
        self._face_model = model     # numpy arrays: traced into constants, not tracked
        self._intrinsics = intrinsics

    def geometry(self, coefficients):
        """(vertices, landmarks_2d) of coefficients [B, 257]: render_face's
        decode, pose and projection, without any rendering."""
        parts = MGCNET_LAYOUT.split(coefficients)
        vertices = decode_shape(self._face_model, parts["identity"], parts["expression"])
        pose = geometry.absolute_pose(parts["pose"])
        landmarks_3d = gather_landmarks(vertices, self._face_model.landmarks)
        landmarks_2d = geometry.project_to_image(geometry.transform_points(landmarks_3d, pose),
                                                 self._intrinsics)
        return vertices, landmarks_2d

    @tf.function(input_signature=[
        tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.uint8, name=INPUT_NAME)])
    def serve(self, images):
        coefficients = self.encoder(images_to_unit(images))
        vertices, landmarks_2d = self.geometry(coefficients)
        return {"coefficients": coefficients, "vertices": vertices,
                "landmarks_2d": landmarks_2d}


def saved_ops(saved_model_dir):
    """Every op type in a SavedModel's graphs and function library."""
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel
    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as file:
        saved.ParseFromString(file.read())
    ops = set()
    for meta in saved.meta_graphs:
        ops.update(node.op for node in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def export_saved_model(checkpoint, face_model, output):
    """Writes a ServingModel of `checkpoint` (a checkpoint prefix or a loaded
    Encoder) and `face_model` (a FaceModel with the 257 layout) as a
    SavedModel to the folder `output`, its serve function the only signature.

    Returns the ServingModel. Raises CheckpointError (a bad checkpoint),
    ServingError (another layout; a rasterizer op in the written graph).
    """
    check_layout(face_model)
    encoder = load_encoder(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) \
        else checkpoint
    serving = ServingModel(encoder, face_model)
    tf.saved_model.save(serving, os.fspath(output), signatures={SIGNATURE: serving.serve})
    found = sorted(saved_ops(output) & set(FORBIDDEN_OPS))
    if found:
        raise ServingError(f"{output}: the SavedModel holds {', '.join(found)}, which a process "
                           "without mgc cannot load")
    return serving


def _select_as_where(ctx, node, name, args):  # pylint: disable=unused-argument
    """tf2onnx turns SelectV2 into cond*x + (!cond)*y, which is NaN wherever
    the unused branch is NaN (gather_landmarks' fill for absent landmarks);
    ONNX's Where broadcasts as SelectV2 does."""
    node.type = "Where"


def export_onnx(serving, output, opset=17):
    """Writes a ServingModel's serve function as an ONNX model to the file
    `output` (needs the optional tf2onnx)."""
    import tf2onnx  # pylint: disable=import-outside-toplevel
    tf2onnx.convert.from_function(serving.serve, input_signature=serving.serve.input_signature,
                                  opset=opset, output_path=os.fspath(output),
                                  custom_op_handlers={"SelectV2": (_select_as_where, [])})
    return output
