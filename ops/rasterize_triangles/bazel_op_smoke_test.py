"""Loads the Bazel-built _rasterize_triangles_ops.so with the installed
TensorFlow and checks the simple triangle against tf_mesh_renderer's golden
image (Simple_Triangle.png, barycentrics as RGB, uint8 = trunc(255 * b)).

The data root comes from $MGC_DATA (bazel test --test_env=MGC_DATA=/abs/root),
else ../shared/data beside the repository.
"""
import os
import unittest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf

_LIBRARY = "ops/rasterize_triangles/_rasterize_triangles_ops.so"
_GOLDEN = "tf_mesh_renderer_golden/Simple_Triangle.png"


def _runfile(path):
  """Absolute path of `path` (workspace-relative) in this test's runfiles."""
  for root in (os.environ.get("TEST_SRCDIR"), os.environ.get("RUNFILES_DIR")):
    if root:
      candidate = os.path.join(root, os.environ.get("TEST_WORKSPACE", "mgc"),
                               path)
      if os.path.exists(candidate):
        return candidate
  candidate = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           os.path.basename(path))
  if os.path.exists(candidate):
    return candidate
  raise FileNotFoundError(f"{path} not found in the runfiles")


def _data_root():
  """$MGC_DATA, else ../shared/data beside the repository.

  The runfiles link this file to the source tree, so its real path tells
  where the repository is.
  """
  if os.environ.get("MGC_DATA"):
    return os.environ["MGC_DATA"]
  source = os.path.realpath(__file__)  # <repo>/ops/rasterize_triangles/x.py
  repo = os.path.dirname(os.path.dirname(os.path.dirname(source)))
  return os.path.join(os.path.dirname(repo), "shared", "data")


class BazelOpSmokeTest(unittest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.ops = tf.load_op_library(_runfile(_LIBRARY))

  def test_simple_triangle_matches_golden(self):
    golden_path = os.path.join(_data_root(), _GOLDEN)
    if not os.path.exists(golden_path):
      self.fail(f"missing {golden_path} (tf_mesh_renderer's golden images, "
                "see the data root's README.md; set the data root with "
                "bazel test --test_env=MGC_DATA=/abs/path)")
    golden = tf.io.decode_png(tf.io.read_file(golden_path), channels=3).numpy()
    self.assertEqual(golden.shape, (480, 640, 3))

    vertices = tf.constant([[-0.5, -0.5, 0.8, 1.0],
                            [0.0, 0.5, 0.3, 1.0],
                            [0.5, -0.5, 0.3, 1.0]], tf.float32)
    triangles = tf.constant([[0, 1, 2]], tf.int32)
    barycentrics, ids, z = self.ops.rasterize_triangles(
        vertices[None], triangles, image_width=640, image_height=480)
    self.assertEqual(tuple(barycentrics.shape), (1, 480, 640, 3))
    self.assertEqual(tuple(ids.shape), (1, 480, 640))
    self.assertEqual(tuple(z.shape), (1, 480, 640))

    # Row 0 of the PNG is row 0 (bottom) of the output.
    image = np.trunc(255.0 * barycentrics[0].numpy()).astype(np.uint8)
    mismatched = int(np.sum(np.any(image != golden, axis=-1)))
    self.assertEqual(mismatched, 0,
                     f"{mismatched} pixels differ from {golden_path}")

    covered = ids[0].numpy() >= 0
    self.assertGreater(int(covered.sum()), 1000)
    np.testing.assert_array_equal(ids[0].numpy()[~covered], -1)
    np.testing.assert_array_equal(z[0].numpy()[~covered], 1.0)
    self.assertTrue(np.all(z[0].numpy()[covered] >= 0.3 - 1e-6))
    self.assertTrue(np.all(z[0].numpy()[covered] <= 0.8 + 1e-6))


if __name__ == "__main__":
  unittest.main()
