"""The frozen identity network of the original (spec §4.2): FaceNet on the
face aligned to the OpenFace template, L2-normalised 512-d embedding."""
import tensorflow as tf

from mgc.nets.checkpoints import restore_variables
from mgc.nets.facenet import EMBEDDING_SIZE, SCOPE, InceptionResnetV1
from mgc.nets.identity_input import IMAGE_SIZE, align_for_facenet


class IdentityNetwork(tf.Module):
    """images [B,224,224,3] float32 in [0,1] and their landmarks [B,68,2]
    (crop pixels; ground truth for real images, projected ones for renders)
    -> unit embeddings [B,512]. Differentiable w.r.t. the images only (no
    gradient through the alignment, as in the original)."""

    def __init__(self, facenet=None):
        super().__init__(name="identity")
        self.facenet = facenet or InceptionResnetV1()

    @tf.function(input_signature=[
        tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32),
        tf.TensorSpec([None, 68, 2], tf.float32)])
    def __call__(self, images, landmarks):
        prelogits = self.facenet(align_for_facenet(images, landmarks))
        return tf.math.l2_normalize(prelogits, axis=1, epsilon=1e-10)


def load_identity_network(checkpoint_path):
    """IdentityNetwork with the InceptionResnetV1/* tensors of a checkpoint
    (a FaceNet one or a whole MGCNet one; other tensors are ignored).
    Raises CheckpointError naming the file and the first missing or
    mis-shaped variable."""
    network = IdentityNetwork()
    restore_variables(network.facenet.variables_by_name, checkpoint_path, SCOPE, required=True)
    return network


__all__ = ["EMBEDDING_SIZE", "IdentityNetwork", "load_identity_network"]
