"""FaceNet input pipeline of the original (`decoder_similar` / `facenet_align`
/ `pred_encoder_id`, spec §4.2): template, reflect padding, Horn similarity,
bilinear warp and FaceNet scaling.

Coordinates are crop pixels (x right, y down, integer = pixel centre), as
the landmarks of the crop and the image-transform op use them.
"""
import numpy as np
import tensorflow as tf

IMAGE_SIZE = 224          # FaceNet input side (and the crop side)
PAD = 56                  # reflect padding on each side: 224 -> 336
FACE_FRACTION = 96 / 110  # the template spans 96/110 of the output image

# OpenFace align_dlib TEMPLATE (spec Appendix B), 68 x (x, y), before min-max.
TEMPLATE_68 = np.array([
    (0.0792396913815, 0.339223741112), (0.0829219487236, 0.456955367943),
    (0.0967927109165, 0.575648016728), (0.122141515615, 0.691921601066),
    (0.168687863544, 0.800341263616), (0.239789390707, 0.895732504778),
    (0.325662452515, 0.977068762493), (0.422318282013, 1.04329000149),
    (0.531777802068, 1.06080371126), (0.641296298053, 1.03981924107),
    (0.738105872266, 0.972268833998), (0.824444363295, 0.889624082279),
    (0.894792677532, 0.792494155836), (0.939395486253, 0.681546643421),
    (0.96111933829, 0.562238253072), (0.970579841181, 0.441758925744),
    (0.971193274221, 0.322118743967), (0.163846223133, 0.249151738053),
    (0.21780354657, 0.204255863861), (0.291299351124, 0.192367318323),
    (0.367460241458, 0.203582210627), (0.4392945113, 0.233135599851),
    (0.586445962425, 0.228141644834), (0.660152671635, 0.195923841854),
    (0.737466449096, 0.182360984545), (0.813236546239, 0.192828009114),
    (0.8707571886, 0.235293377042), (0.51534533827, 0.31863546193),
    (0.516221448289, 0.396200446263), (0.517118861835, 0.473797687758),
    (0.51816430343, 0.553157797772), (0.433701156035, 0.604054457668),
    (0.475501237769, 0.62076344024), (0.520712933176, 0.634268222208),
    (0.565874114041, 0.618796581487), (0.607054002672, 0.60157671656),
    (0.252418718401, 0.331052263829), (0.298663015648, 0.302646354002),
    (0.355749724218, 0.303020650651), (0.403718978315, 0.33867711083),
    (0.352507175597, 0.349987615384), (0.296791759886, 0.350478978225),
    (0.631326076346, 0.334136672344), (0.679073381078, 0.29645404267),
    (0.73597236153, 0.294721285802), (0.782865376271, 0.321305281656),
    (0.740312274764, 0.341849376713), (0.68499850091, 0.343734332172),
    (0.353167761422, 0.746189164237), (0.414587777921, 0.719053835073),
    (0.477677654595, 0.706835892494), (0.522732900812, 0.717092275768),
    (0.569832064287, 0.705414478982), (0.635195811927, 0.71565572516),
    (0.69951672331, 0.739419187253), (0.639447159575, 0.805236879972),
    (0.576410514055, 0.835436670169), (0.525398405766, 0.841706377792),
    (0.47641545769, 0.837505914975), (0.41379548902, 0.810045601727),
    (0.380084785646, 0.749979603086), (0.477955996282, 0.74513234612),
    (0.523389793327, 0.748924302636), (0.571057789237, 0.74332894691),
    (0.672409137852, 0.744177032192), (0.572539621444, 0.776609286626),
    (0.5240106503, 0.783370783245), (0.477561227414, 0.778476346951),
], dtype=np.float64)


def facenet_template(size=IMAGE_SIZE, face_fraction=FACE_FRACTION):
    """[68,2] float32 template in output pixels: min-max normalised per axis,
    then centred with the face spanning `face_fraction` of `size`."""
    t = (TEMPLATE_68 - TEMPLATE_68.min(axis=0)) / (TEMPLATE_68.max(axis=0) - TEMPLATE_68.min(axis=0))
    return (size * t * face_fraction + size * (1 - face_fraction) / 2).astype(np.float32)


def reflect_pad(images, landmarks, pad=PAD):
    """images [B,H,W,C] -> [B,H+2p,W+2p,C] (REFLECT: no edge repeat), and
    landmarks [B,N,2] shifted by +pad into the padded frame."""
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    return padded, landmarks + pad


def _horn_n_matrix(m):
    """Horn's 4x4 symmetric matrix from M = sum_i l_i r_i^T, [B,3,3] -> [B,4,4]."""
    sxx, sxy, sxz = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2]
    syx, syy, syz = m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    szx, szy, szz = m[:, 2, 0], m[:, 2, 1], m[:, 2, 2]
    rows = [
        [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
        [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
        [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
        [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
    ]
    return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)


def _quaternion_to_matrix(q):
    """Unit quaternions [B,4] (w, x, y, z) -> rotation matrices [B,3,3]."""
    w, x, y, z = tf.unstack(q, axis=-1)
    rows = [
        [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (y * x + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
        [2 * (z * x - w * y), 2 * (z * y + w * x), w * w - x * x - y * y + z * z],
    ]
    return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)


def similarity_horn(source, target):
    """Least-squares similarity source -> target by Horn's closed form.

    source, target: [B,N,2] points. Returns [B,2,3] float32 A = [s*R | t]
    with target ~ A @ (x, y, 1). As the original, the 2-D points are
    embedded in 3-D with z = 0, the scale is Horn's symmetric one,
    sqrt(sum |r|^2 / (sum |l|^2 + 1e-6)) of the centred sets, and the
    rotation is the eigenvector of the largest eigenvalue of N (so a
    reflection would win if it fitted better, as in the original).
    """
    source = tf.convert_to_tensor(source, tf.float32)
    target = tf.convert_to_tensor(target, tf.float32)
    zeros = tf.zeros_like(source[..., :1])
    l3 = tf.concat([source, zeros], axis=-1)
    r3 = tf.concat([target, zeros], axis=-1)
    cl = tf.reduce_mean(l3, axis=1, keepdims=True)
    cr = tf.reduce_mean(r3, axis=1, keepdims=True)
    lc, rc = l3 - cl, r3 - cr
    scale = tf.sqrt(tf.reduce_sum(rc * rc, axis=[1, 2]) / (tf.reduce_sum(lc * lc, axis=[1, 2]) + 1e-6))
    _, vectors = tf.linalg.eigh(_horn_n_matrix(tf.matmul(lc, rc, transpose_a=True)))
    rotation = _quaternion_to_matrix(vectors[:, :, -1])   # eigh sorts ascending
    sr = scale[:, None, None] * rotation
    t = cr[:, 0, :] - tf.linalg.matvec(sr, cl[:, 0, :])
    return tf.concat([sr[:, :2, :2], t[:, :2, None]], axis=-1)


def warp_bilinear(images, matrices, size=IMAGE_SIZE):
    """Output pixel (x, y) samples `images` [B,H,W,C] at A @ (x, y, 1),
    bilinear, 0 outside (tf.contrib.image.transform). matrices [B,2,3].
    As in the original there is no gradient into the matrices; the image
    gradient is the op's own (approximate inverse warp)."""
    a = tf.stop_gradient(tf.cast(matrices, tf.float32))
    flat = tf.concat([tf.reshape(a, [-1, 6]), tf.zeros_like(a[:, 0, :2])], axis=-1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=flat, output_shape=tf.constant([size, size], tf.int32),
        fill_value=tf.constant(0.0, images.dtype), interpolation="BILINEAR", fill_mode="CONSTANT")


def facenet_scaling(images):
    """[0,1] images -> FaceNet's input range: x*255, then (x - 127.5)/128."""
    return (images * 255.0 - 127.5) / 128.0


def align_for_facenet(images, landmarks):
    """images [B,224,224,3] float32 in [0,1], landmarks [B,68,2] crop pixels
    -> FaceNet input [B,224,224,3]: reflect-padded, warped onto the template
    by the similarity template -> padded landmarks, scaled."""
    images = tf.convert_to_tensor(images, tf.float32)
    padded, shifted = reflect_pad(images, tf.convert_to_tensor(landmarks, tf.float32))
    template = tf.broadcast_to(facenet_template(), tf.shape(shifted))
    aligned = warp_bilinear(padded, similarity_horn(template, shifted))
    return facenet_scaling(aligned)
