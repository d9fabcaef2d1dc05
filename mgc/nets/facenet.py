"""FaceNet Inception-ResNet-v1 (davidsandberg, 20180402-114759, 512-d), inference only.

The original builds it with slim under the scope `InceptionResnetV1` and
restores it frozen (spec §4.2). Here every tensor of that checkpoint is a
plain tf.Variable keyed by its original name (`variables_by_name`), and the
forward pass is written with tf.nn ops on NHWC images, so loading is a
one-to-one name lookup (490 tensors).

Conventions of the original (slim arg_scope of `inference`):
- every conv has no bias and is followed by batch norm with beta only
  (center=True, scale=False), eps 1e-3, moving statistics (is_training
  False), then ReLU; default padding SAME, stride 1;
- the residual up-projection `Conv2d_1x1` of each block has a bias and
  neither batch norm nor activation;
- dropout before the bottleneck is inactive at inference;
- `Bottleneck` is a fully connected layer (no bias) + batch norm, no ReLU.
"""
import tensorflow as tf

SCOPE = "InceptionResnetV1"
BN_EPSILON = 1e-3
EMBEDDING_SIZE = 512


class _Conv:
    """A conv (+ batch norm + optional ReLU), or with `bias=True` a conv with
    bias only: the residual up-projection."""

    def __init__(self, net, name, kernel, cin, cout, stride=1, padding="SAME", bias=False):
        self.stride, self.padding, self.bias = stride, padding, bias
        self.weights = net.variable(f"{name}/weights", [*kernel, cin, cout])
        if bias:
            self.biases = net.variable(f"{name}/biases", [cout])
        else:
            self.bn = net.batch_norm(f"{name}/BatchNorm", cout)

    def __call__(self, x, relu=True):
        y = tf.nn.conv2d(x, self.weights, self.stride, self.padding)
        if self.bias:
            return tf.nn.bias_add(y, self.biases)
        y = self.bn(y)
        return tf.nn.relu(y) if relu else y


class _BatchNorm:
    def __init__(self, net, name, channels):
        self.beta = net.variable(f"{name}/beta", [channels])
        self.mean = net.variable(f"{name}/moving_mean", [channels])
        self.variance = net.variable(f"{name}/moving_variance", [channels], init=1.0)

    def __call__(self, x):
        return tf.nn.batch_normalization(x, self.mean, self.variance, self.beta, None, BN_EPSILON)


def _max_pool(x):
    return tf.nn.max_pool2d(x, 3, 2, "VALID")


class _Block:
    """Inception-ResNet block: branches -> concat -> 1x1 up-projection (with
    bias) -> x + scale * up -> ReLU (not for the final Block8)."""

    def __init__(self, net, name, channels, branches, scale, relu=True):
        # branches: list of lists of (layer name, kernel, cout)
        self.scale, self.relu = scale, relu
        self.branches = []
        for b, layers in enumerate(branches):
            cin, convs = channels, []
            for layer, kernel, cout in layers:
                convs.append(_Conv(net, f"{name}/Branch_{b}/{layer}", kernel, cin, cout))
                cin = cout
            self.branches.append(convs)
        mixed = sum(layers[-1][2] for layers in branches)
        self.up = _Conv(net, f"{name}/Conv2d_1x1", (1, 1), mixed, channels, bias=True)

    def __call__(self, x):
        y = x + self.scale * self.up(tf.concat(_run_branches(self.branches, x), axis=3))
        return tf.nn.relu(y) if self.relu else y


def _run_branches(branches, x):
    """Each branch's chain of convolutions applied to x: a list of outputs."""
    outputs = []
    for convs in branches:
        y = x
        for conv in convs:
            y = conv(y)
        outputs.append(y)
    return outputs


def _block35(net, name, scale):
    return _Block(net, name, 256, [
        [("Conv2d_1x1", (1, 1), 32)],
        [("Conv2d_0a_1x1", (1, 1), 32), ("Conv2d_0b_3x3", (3, 3), 32)],
        [("Conv2d_0a_1x1", (1, 1), 32), ("Conv2d_0b_3x3", (3, 3), 32), ("Conv2d_0c_3x3", (3, 3), 32)],
    ], scale)


def _block17(net, name, scale):
    return _Block(net, name, 896, [
        [("Conv2d_1x1", (1, 1), 128)],
        [("Conv2d_0a_1x1", (1, 1), 128), ("Conv2d_0b_1x7", (1, 7), 128), ("Conv2d_0c_7x1", (7, 1), 128)],
    ], scale)


def _block8(net, name, scale, relu=True):
    return _Block(net, name, 1792, [
        [("Conv2d_1x1", (1, 1), 192)],
        [("Conv2d_0a_1x1", (1, 1), 192), ("Conv2d_0b_1x3", (1, 3), 192), ("Conv2d_0c_3x1", (3, 1), 192)],
    ], scale, relu)


class _Reduction:
    """Mixed_6a / Mixed_7a: stride-2 VALID conv branches plus a max-pool branch."""

    def __init__(self, net, name, cin, branches):
        self.branches = []
        for b, layers in enumerate(branches):
            c, convs = cin, []
            for i, (layer, kernel, cout) in enumerate(layers):
                last = i == len(layers) - 1
                convs.append(_Conv(net, f"{name}/Branch_{b}/{layer}", kernel, c, cout,
                                   stride=2 if last else 1, padding="VALID" if last else "SAME"))
                c = cout
            self.branches.append(convs)

    def __call__(self, x):
        return tf.concat(_run_branches(self.branches, x) + [_max_pool(x)], axis=3)


class InceptionResnetV1(tf.Module):
    """images [B,H,W,3] float32, already scaled to (x*255-127.5)/128 ->
    prelogits [B,512] (not normalised). H = W = 224 gives 5x5 before the
    global average pool (the network was trained at 160, spec B8)."""

    def __init__(self, scope=SCOPE):
        super().__init__(name=scope)
        self.scope = scope
        self.variables_by_name = {}
        self._build()

    def variable(self, name, shape, init=0.0):
        # Frozen in the original (filtered out of the optimizer): not trainable.
        full = f"{self.scope}/{name}"
        v = tf.Variable(tf.fill(shape, tf.constant(init, tf.float32)), trainable=False,
                        name=full.replace("/", "__"))
        self.variables_by_name[full] = v
        return v

    def batch_norm(self, name, channels):
        return _BatchNorm(self, name, channels)

    def _build(self):
        c = lambda *a, **k: _Conv(self, *a, **k)  # noqa: E731
        self.stem = [
            c("Conv2d_1a_3x3", (3, 3), 3, 32, stride=2, padding="VALID"),
            c("Conv2d_2a_3x3", (3, 3), 32, 32, padding="VALID"),
            c("Conv2d_2b_3x3", (3, 3), 32, 64),
            _max_pool,                                  # MaxPool_3a_3x3
            c("Conv2d_3b_1x1", (1, 1), 64, 80, padding="VALID"),
            c("Conv2d_4a_3x3", (3, 3), 80, 192, padding="VALID"),
            c("Conv2d_4b_3x3", (3, 3), 192, 256, stride=2, padding="VALID"),
        ]
        self.repeat = [_block35(self, f"Repeat/block35_{i}", 0.17) for i in range(1, 6)]
        self.mixed_6a = _Reduction(self, "Mixed_6a", 256, [
            [("Conv2d_1a_3x3", (3, 3), 384)],
            [("Conv2d_0a_1x1", (1, 1), 192), ("Conv2d_0b_3x3", (3, 3), 192), ("Conv2d_1a_3x3", (3, 3), 256)],
        ])
        self.repeat_1 = [_block17(self, f"Repeat_1/block17_{i}", 0.10) for i in range(1, 11)]
        self.mixed_7a = _Reduction(self, "Mixed_7a", 896, [
            [("Conv2d_0a_1x1", (1, 1), 256), ("Conv2d_1a_3x3", (3, 3), 384)],
            [("Conv2d_0a_1x1", (1, 1), 256), ("Conv2d_1a_3x3", (3, 3), 256)],
            [("Conv2d_0a_1x1", (1, 1), 256), ("Conv2d_0b_3x3", (3, 3), 256), ("Conv2d_1a_3x3", (3, 3), 256)],
        ])
        self.repeat_2 = [_block8(self, f"Repeat_2/block8_{i}", 0.20) for i in range(1, 6)]
        self.block8 = _block8(self, "Block8", 1.0, relu=False)
        self.bottleneck = self.variable("Bottleneck/weights", [1792, EMBEDDING_SIZE])
        self.bottleneck_bn = self.batch_norm("Bottleneck/BatchNorm", EMBEDDING_SIZE)

    def __call__(self, images):
        x = images
        for layer in self.stem:
            x = layer(x)
        for block in self.repeat:
            x = block(x)
        x = self.mixed_6a(x)
        for block in self.repeat_1:
            x = block(x)
        x = self.mixed_7a(x)
        for block in self.repeat_2:
            x = block(x)
        x = self.block8(x)
        # AvgPool_1a_8x8 is a VALID pool over the whole map, i.e. a global mean.
        x = tf.reduce_mean(x, axis=[1, 2])
        return self.bottleneck_bn(tf.matmul(x, self.bottleneck))
