"""mgc.nets: MGCNet's networks (the ResNet-50 encoder, FaceNet identity) as
tf.Modules whose variables carry the original checkpoint names, and loading
of original TF1 checkpoints by name.

Import ladder (docs/ARCHITECTURE.md): nets needs only TensorFlow; it sits
above mgc.paths and imports nothing of geometry, facemodel or render, so
those never depend on it and later losses/training code can import it.
"""
from mgc.nets.checkpoints import CheckpointError, LoadReport, restore_variables
from mgc.nets.encoder import load_encoder
from mgc.nets.identity import IdentityNetwork, load_identity_network

__all__ = ["CheckpointError", "IdentityNetwork", "LoadReport", "load_encoder",
           "load_identity_network", "restore_variables"]
