"""Renders demo scenes with the rasterizer op and writes PNGs to --output.

    python -m experiments.render_demo --output=out/demo

Writes, all top-down (the op's bottom-up rows flipped for viewing):
  face_shaded.png        BFM mean face, Lambertian shading, MGCNet's default camera
  face_triangle_ids.png  the visible triangle of every pixel, one colour per id
  face_depth.png         NDC depth of the visible surface, near = bright
  cubes.png              the two unlit cubes of the golden scene E, side by side

--output defaults to out/demo. Pictures already there are kept (a second
`make demo` leaves them) unless --overwrite.
"""
import os

import numpy as np
import tensorflow as tf
from absl import app, flags

from experiments import common_flags, scenes
from mgc.export import save_image, to_uint8
from mgc.geometry import look_at, perspective, transform_homogeneous
from mgc.render import rasterize, rasterize_triangles

FLAGS = flags.FLAGS
common_flags.use("output", "data_root", "overwrite")
OUTPUT = "out/demo"
flags.DEFINE_integer("size", 448, "Width and height of the face renders in pixels.")

SKIN = np.array([0.87, 0.70, 0.60], np.float32)
LIGHT_DIRECTION = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])


def id_colors(triangle_ids):
    """A stable pseudo-random colour per triangle id, black for -1."""
    hashed = (triangle_ids.astype(np.uint64) * np.uint64(2654435761)) % np.uint64(2**24)
    rgb = np.stack([(hashed >> np.uint64(s)) & np.uint64(255) for s in (16, 8, 0)], -1)
    return np.where(triangle_ids[..., None] >= 0, rgb / 255.0, 0.0)


def render_face(size, data_root):
    vertices, triangles = scenes.bfm_mean_face(data_root)
    normals = scenes.vertex_normals(vertices, triangles)
    shade = 0.25 + 0.75 * np.clip(normals @ LIGHT_DIRECTION, 0.0, 1.0)
    colors = (shade[:, None] * SKIN).astype(np.float32)
    camera = scenes.default_camera_matrix(size, size)[np.newaxis]
    image, _, ids = rasterize(vertices[np.newaxis], colors[np.newaxis], triangles, camera,
                              size, size, background_value=[1.0, 1.0, 1.0])
    clip = transform_homogeneous(camera, vertices[np.newaxis])
    _, _, z_buffer = rasterize_triangles(clip, triangles, size, size)
    ids, z_buffer = ids.numpy()[0], z_buffer.numpy()[0]
    covered = ids >= 0
    near, far = z_buffer[covered].min(), z_buffer[covered].max()
    depth = np.where(covered, 1.0 - 0.8 * (z_buffer - near) / max(far - near, 1e-12), 0.0)
    return {
        "face_shaded.png": image.numpy()[0],
        "face_triangle_ids.png": id_colors(ids),
        "face_depth.png": np.repeat(depth[..., None], 3, axis=-1),
    }, covered.mean()


def render_cubes(width=640, height=480):
    cube = np.array([[-1, -1, 1], [-1, -1, -1], [-1, 1, -1], [-1, 1, 1],
                     [1, -1, 1], [1, -1, -1], [1, 1, -1], [1, 1, 1]], np.float32)
    triangles = np.array([[0, 1, 2], [2, 3, 0], [3, 2, 6], [6, 7, 3], [7, 6, 5], [5, 4, 7],
                          [4, 5, 1], [1, 0, 4], [5, 6, 2], [2, 1, 5], [7, 4, 0], [0, 3, 7]],
                         np.int32)
    eyes = np.array([[2.0, 3.0, 6.0], [-3.0, 1.0, 6.0]], np.float32)
    camera = perspective([width / height] * 2, [40.0] * 2, [0.01] * 2, [10.0] * 2) @ look_at(
        eyes, tf.zeros_like(eyes), np.tile([[0.0, 1.0, 0.0]], [2, 1]))
    colors = np.stack([0.5 * cube + 0.5] * 2).astype(np.float32)
    images, _, _ = rasterize(np.stack([cube] * 2), colors, triangles, camera, width, height,
                             background_value=[0.0, 0.0, 0.0])
    return np.concatenate(list(images.numpy()), axis=1)


def save(path, image, overwrite):
    if os.path.exists(path) and not overwrite:
        print(f"  {path} exists: kept (--overwrite replaces it)")
        return
    # The op's images are bottom-up; pictures are stored top-down.
    save_image(path, to_uint8(image[::-1]))
    print(f"  {path}")


def main(argv):
    del argv
    output = common_flags.value_or("output", OUTPUT)
    os.makedirs(output, exist_ok=True)
    pictures, coverage = render_face(FLAGS.size, FLAGS.data_root)
    pictures["cubes.png"] = render_cubes()
    print(f"Rendered the BFM mean face ({100 * coverage:.0f} % of the image) and the cube scene:")
    for name, image in pictures.items():
        save(os.path.join(output, name), image, FLAGS.overwrite)
    print(f"Open the PNGs in {os.path.abspath(output)} to look at them.")


if __name__ == "__main__":
    app.run(main, flags_parser=common_flags.parse)
