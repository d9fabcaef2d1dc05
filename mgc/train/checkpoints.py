"""Training checkpoints both worlds read: name-based TF1-style V2 files.

    save(checkpoint_dir, step, tensors_by_name) -> "<dir>/model-<step>"
    latest(checkpoint_dir) -> prefix or None
    read(prefix, names) -> {name: numpy array}

The keys `tf.train.list_variables` lists are the original graph's names
(`resnet_v1_50/**`, their Adam slots `<var>/Adam`, `<var>/Adam_1`,
`train_op/beta1_power`, `train_op/beta2_power`, `global_step` int32), not
tf.train.Checkpoint object paths, so mgc.nets.load_encoder and the original
TF1 Saver load them.

Atomicity: the tensors are written with SaveV2 under a temporary prefix
(`<dir>/.model-<step>.tmp-<pid>`), its data file then its index are renamed to
`model-<step>.*`, and only then is the `checkpoint` state file replaced
(written whole under a temporary name, then os.replace). A run killed at any
point leaves the state file naming the previous checkpoint, whose files are
untouched; a left-over temporary prefix is never named by the state file, so
`tf.train.latest_checkpoint(dir)` ignores it (and the next save removes it).
"""
import glob
import os
import re

import numpy as np
import tensorflow as tf

from mgc.nets.checkpoints import CheckpointError, open_checkpoint

STATE_FILE = "checkpoint"
PREFIX = "model"
_DATA_SUFFIX = ".data-00000-of-00001"
_STEP = re.compile(r"^model-(\d+)$")


def checkpoint_prefix(checkpoint_dir, step):
    return os.path.join(checkpoint_dir, f"{PREFIX}-{int(step)}")


def _listed(checkpoint_dir):
    """Checkpoint basenames the state file lists, oldest first."""
    path = os.path.join(checkpoint_dir, STATE_FILE)
    if not os.path.exists(path):
        return []
    names = []
    with open(path) as stream:
        for line in stream:
            match = re.match(r'^\s*all_model_checkpoint_paths:\s*"(.*)"\s*$', line)
            if match:
                names.append(os.path.basename(match.group(1)))
    return names


def _write_state(checkpoint_dir, names):
    """The `checkpoint` state file (text protobuf of CheckpointState), atomically."""
    lines = [f'model_checkpoint_path: "{names[-1]}"']
    lines += [f'all_model_checkpoint_paths: "{name}"' for name in names]
    path = os.path.join(checkpoint_dir, STATE_FILE)
    partial = f"{path}.tmp-{os.getpid()}"
    with open(partial, "w") as stream:
        stream.write("\n".join(lines) + "\n")
        stream.flush()
        os.fsync(stream.fileno())
    os.replace(partial, path)


def _remove_stale_temporaries(checkpoint_dir):
    for path in glob.glob(os.path.join(checkpoint_dir, f".{PREFIX}-*.tmp-*")):
        try:
            os.remove(path)
        except OSError:
            pass


def save(checkpoint_dir, step, tensors_by_name, max_to_keep=None):
    """Writes tensors_by_name (name -> tensor/variable/array) as
    `<dir>/model-<step>` and makes it the latest. max_to_keep: None keeps
    every checkpoint (the original's Saver keeps 5; we keep all by default
    because save_freq is large). Returns the prefix."""
    os.makedirs(checkpoint_dir, exist_ok=True)
    _remove_stale_temporaries(checkpoint_dir)
    names = sorted(tensors_by_name)
    tensors = [tf.convert_to_tensor(tensors_by_name[name]) for name in names]
    final = checkpoint_prefix(checkpoint_dir, step)
    temporary = os.path.join(checkpoint_dir, f".{PREFIX}-{int(step)}.tmp-{os.getpid()}")
    tf.raw_ops.SaveV2(prefix=temporary, tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=tensors)
    os.replace(temporary + _DATA_SUFFIX, final + _DATA_SUFFIX)
    os.replace(temporary + ".index", final + ".index")
    basename = os.path.basename(final)
    listed = [name for name in _listed(checkpoint_dir) if name != basename
              and os.path.exists(os.path.join(checkpoint_dir, name + ".index"))]
    listed.append(basename)
    if max_to_keep:
        for old in listed[:-max_to_keep]:
            for path in glob.glob(os.path.join(checkpoint_dir, old + ".*")):
                os.remove(path)
        listed = listed[-max_to_keep:]
    _write_state(checkpoint_dir, listed)
    return final


def latest(checkpoint_dir):
    """The newest complete checkpoint prefix of the folder, or None."""
    if not os.path.isdir(checkpoint_dir):
        return None
    return tf.train.latest_checkpoint(checkpoint_dir)


def step_of(prefix):
    """The step in a `model-<step>` name, or None."""
    match = _STEP.match(os.path.basename(str(prefix)))
    return int(match.group(1)) if match else None


def read(prefix, names=None):
    """{name: numpy array} of the named tensors (all when names is None);
    CheckpointError for an unreadable checkpoint or a missing name."""
    reader = open_checkpoint(prefix)
    available = reader.get_variable_to_shape_map()
    names = sorted(available) if names is None else list(names)
    out = {}
    for name in names:
        if name not in available:
            raise CheckpointError(f"{prefix}: the checkpoint lacks variable '{name}'")
        try:
            out[name] = np.asarray(reader.get_tensor(name))
        except (tf.errors.OpError, ValueError) as error:
            raise CheckpointError(f"{prefix}: cannot read variable '{name}' "
                                  f"({str(error).splitlines()[0]})") from None
    return out


def names_and_shapes(prefix):
    """{name: shape list} of a checkpoint (tf.train.list_variables)."""
    return {name: list(shape) for name, shape in tf.train.list_variables(str(prefix))}
