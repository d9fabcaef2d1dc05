"""mgc.nets: MGCNet's networks (the ResNet-50 encoder, FaceNet identity) as
tf.Modules whose variables carry the original checkpoint names, and loading
of original TF1 checkpoints by name.

Import ladder (docs/ARCHITECTURE.md): the networks need only TensorFlow and
import nothing of geometry, facemodel or render, so those never depend on
them. The one exception is mgc.nets.serving (the exported SavedModel: the
encoder plus the decoding), which sits at the top of the ladder and is not
imported here.
"""
from mgc.nets.checkpoints import CheckpointError, LoadReport, restore_variables
from mgc.nets.encoder import load_encoder
from mgc.nets.identity import IdentityNetwork, load_identity_network

__all__ = ["CheckpointError", "IdentityNetwork", "LoadReport", "load_encoder",
           "load_identity_network", "restore_variables"]
