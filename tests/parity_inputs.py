"""The inputs of the original MGCNet's outputs in shared/parity, regenerated
by its own generator (make_inputs.py) into build/ and checked against the
oracle's manifest of them before any comparison.

Each kind has its own folder, because make_inputs.py rewrites the whole
manifest of the folder it writes into:
    build/parity_inputs           the synthetic h5 (--skip-ckpt)
    build/parity_inputs_encoder   the ResNet checkpoint and the crops (--skip-h5)
    build/parity_inputs_facenet   the checkpoint with FaceNet and the shared
                                  training tuple (--facenet --tuple shared)
"""
import fcntl
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mgc import paths

BUILD = os.path.join(paths.REPO_ROOT, "build")
H5_NAME = "bfm09_synth_presplit.h5"


def parity_root():
    root = os.environ.get("MGC_PARITY") or os.path.join(paths.data_root(), "..", "parity")
    return os.path.abspath(root)


def load_oracle():
    """The original's outputs (expected_outputs_images01.npz) as a dict."""
    path = os.path.join(parity_root(), "expected_outputs_images01.npz")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: the parity oracle lives in shared/parity (or $MGC_PARITY)")
    return dict(np.load(path))


def _arrays(manifest):
    # make_inputs' manifest nests the hashes under "arrays"; the oracle's
    # FaceNet manifest is that flat dict.
    return manifest.get("arrays", manifest)


def _regenerated(folder, options, expected, keep):
    """Runs make_inputs.py into `folder` unless its manifest already holds
    the `expected` hashes of the entries `keep` selects; returns the folder."""
    manifest_path = os.path.join(folder, "manifest.json")

    def cached():
        if not os.path.exists(manifest_path):
            return None
        with open(manifest_path) as stream:
            return {k: v for k, v in _arrays(json.load(stream)).items() if keep(k)}

    # One writer at a time: parallel test workers share build/.
    os.makedirs(BUILD, exist_ok=True)
    with open(folder.rstrip("/") + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cached() != expected:
            subprocess.run([sys.executable, os.path.join(parity_root(), "make_inputs.py"),
                            "--out", folder, "--data-root", paths.data_root(), *options],
                           check=True, stdout=subprocess.DEVNULL)
            assert cached() == expected, (f"the inputs regenerated into {folder} differ from "
                                          "those the oracle was computed from")
    return folder


def _expected(oracle, keep, key="meta/input_manifest_json"):
    return {k: v for k, v in _arrays(json.loads(str(oracle[key]))).items() if keep(k)}


def synthetic_h5(oracle):
    """Path of the synthetic face model in the original's h5 layout."""
    keep = lambda name: name.startswith("h5:")  # noqa: E731
    folder = _regenerated(os.path.join(BUILD, "parity_inputs"), ["--skip-ckpt"],
                          _expected(oracle, keep), keep)
    return os.path.join(folder, H5_NAME)


def encoder_checkpoint(oracle):
    """(checkpoint prefix with the seeded resnet_v1_50/* weights, the 4 input
    crops uint8 [4, 224, 224, 3])."""
    keep = lambda name: name.startswith("ckpt:resnet_v1_50/") or name == "inputs:input_uint8"  # noqa: E731,E501
    folder = _regenerated(os.path.join(BUILD, "parity_inputs_encoder"), ["--skip-h5"],
                          _expected(oracle, keep), keep)
    crops = np.load(os.path.join(folder, "inputs.npz"))["input_uint8"]
    return os.path.join(folder, "ckpt", "model-400000"), crops


def facenet_checkpoint(oracle):
    """Checkpoint prefix holding the seeded InceptionResnetV1/* weights too."""
    keep = lambda name: name.startswith("ckpt:InceptionResnetV1/")  # noqa: E731
    folder = _regenerated(os.path.join(BUILD, "parity_inputs_facenet"),
                          ["--skip-h5", "--facenet", "--tuple", "shared"],
                          _expected(oracle, keep, "meta/input_manifest_facenet_json"), keep)
    return os.path.join(folder, "ckpt", "model-400000")


def save_checkpoint(prefix, arrays):
    """Writes a TF1-style name-based checkpoint (what the original's Saver
    writes, without the meta graph) of name -> array; returns the prefix."""
    import tensorflow as tf  # only the tests that write checkpoints need it
    names = list(arrays)
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(arrays[name]) for name in names])
    return str(prefix)
