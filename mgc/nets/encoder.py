"""MGCNet's encoder: slim resnet_v1_50(num_classes=257) without resnet_arg_scope
(spec §4.1).

Without the arg scope slim's defaults hold: every conv has weights and biases
and a ReLU, there is no batch norm, and pool1 is 3x3/2 VALID (224 -> 112 ->
55 -> 28 -> 14 -> 7). The stride sits in the last unit of blocks 1-3. Input:
RGB in [0, 1], no mean subtraction. Variables are plain tf.Variables keyed by
their checkpoint names, so an original checkpoint loads one to one.
"""
import tensorflow as tf

from mgc.nets.checkpoints import restore_variables

SCOPE = "resnet_v1_50"
NUM_OUTPUTS = 257
IMAGE_SIZE = 224
# (block, base depth, units, stride of the last unit)
BLOCKS = (("block1", 64, 3, 2), ("block2", 128, 4, 2), ("block3", 256, 6, 2), ("block4", 512, 3, 1))


def _unit_convs(prefix, depth_in, base, with_shortcut):
    """(name, kernel shape) of one bottleneck unit's convs."""
    convs = [(prefix + "shortcut", (1, 1, depth_in, 4 * base))] if with_shortcut else []
    return convs + [(prefix + "conv1", (1, 1, depth_in, base)),
                    (prefix + "conv2", (3, 3, base, base)),
                    (prefix + "conv3", (1, 1, base, 4 * base))]


def conv_shapes():
    """(scope name, kernel shape) of every conv, in network order."""
    convs = [(f"{SCOPE}/conv1", (7, 7, 3, 64))]
    depth = 64
    for block, base, units, _ in BLOCKS:
        for unit in range(1, units + 1):
            prefix = f"{SCOPE}/{block}/unit_{unit}/bottleneck_v1/"
            # slim adds a projection only where the depth changes (unit_1)
            convs += _unit_convs(prefix, depth, base, with_shortcut=depth != 4 * base)
            depth = 4 * base
    return convs + [(f"{SCOPE}/logits", (1, 1, depth, NUM_OUTPUTS))]


def variable_shapes():
    """checkpoint name -> shape of every encoder variable (108)."""
    shapes = {}
    for name, kernel in conv_shapes():
        shapes[name + "/weights"] = kernel
        shapes[name + "/biases"] = kernel[-1:]
    return shapes


def _pad(x, before, after):
    return tf.pad(x, [[0, 0], [before, after], [before, after], [0, 0]])


class Encoder(tf.Module):
    """images [B, 224, 224, 3] float32 RGB in [0, 1] -> coefficients [B, 257]."""

    def __init__(self, name="mgcnet_encoder"):
        super().__init__(name=name)
        # zeros: the weights always come from a checkpoint
        self.variables_by_name = {
            key: tf.Variable(tf.zeros(shape), name=key) for key, shape in variable_shapes().items()}

    def _conv(self, x, scope, stride=1, relu=True):
        """slim.conv2d: SAME padding, bias, ReLU unless told otherwise. A
        strided k>1 conv is slim's conv2d_same: symmetric explicit pad, VALID."""
        kernel = self.variables_by_name[scope + "/weights"]
        size = kernel.shape[0]
        padding = "SAME"
        if stride > 1 and size > 1:
            x = _pad(x, (size - 1) // 2, size - 1 - (size - 1) // 2)
            padding = "VALID"
        x = tf.nn.bias_add(tf.nn.conv2d(x, kernel, stride, padding),
                           self.variables_by_name[scope + "/biases"])
        return tf.nn.relu(x) if relu else x

    def _bottleneck(self, x, prefix, stride):
        if prefix + "shortcut/weights" in self.variables_by_name:
            shortcut = self._conv(x, prefix + "shortcut", stride, relu=False)
        else:
            # slim's subsample: 1x1 max pool (VALID), i.e. every stride-th pixel
            shortcut = x if stride == 1 else tf.nn.max_pool2d(x, 1, stride, "VALID")
        residual = self._conv(x, prefix + "conv1")
        residual = self._conv(residual, prefix + "conv2", stride)
        residual = self._conv(residual, prefix + "conv3", relu=False)
        return tf.nn.relu(shortcut + residual)

    def features(self, images):
        """The 2048-channel 7x7 map before global pooling."""
        x = self._conv(images, f"{SCOPE}/conv1", stride=2)
        x = tf.nn.max_pool2d(x, 3, 2, "VALID")          # no arg scope: VALID pool1
        for block, _, units, stride in BLOCKS:
            for unit in range(1, units + 1):
                prefix = f"{SCOPE}/{block}/unit_{unit}/bottleneck_v1/"
                x = self._bottleneck(x, prefix, stride if unit == units else 1)
        return x

    @tf.function(input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32)])
    def __call__(self, images):
        pooled = tf.reduce_mean(self.features(images), axis=[1, 2], keepdims=True)
        logits = self._conv(pooled, f"{SCOPE}/logits", relu=False)
        return tf.squeeze(logits, axis=[1, 2])


def images_to_unit(images_uint8):
    """uint8 RGB -> float32 [0, 1] exactly as the original feeds the network:
    convert_image_dtype multiplies by float32(1/255), which differs from /255
    by one ulp on some values."""
    return tf.image.convert_image_dtype(tf.convert_to_tensor(images_uint8, tf.uint8), tf.float32)


def load_encoder(checkpoint_path):
    """An Encoder with the resnet_v1_50/* weights of an original checkpoint.
    Raises CheckpointError (naming the file and the variable) for an
    unreadable checkpoint or a missing or mis-shaped variable."""
    encoder = Encoder()
    encoder.load_report = restore_variables(encoder.variables_by_name, checkpoint_path, SCOPE)
    return encoder
