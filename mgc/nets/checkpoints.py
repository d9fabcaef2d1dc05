"""Name-based loading of original TF1 checkpoints into plain tf.Variables.

The original saves `tf.train.Saver(tf.global_variables())` files: a V2
checkpoint keyed by graph variable names ("resnet_v1_50/conv1/weights").
Our networks keep those names, so loading is a one-to-one lookup with
`tf.train.load_checkpoint`; no object graph and no `global_step` is needed.
"""
import dataclasses

import numpy as np
import tensorflow as tf


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the variables; the
    message is one line naming the checkpoint and the variable."""


@dataclasses.dataclass
class LoadReport:
    """What a restore left over, by checkpoint name.

    unused: checkpoint tensors under the requested scopes that no variable
        took (e.g. Adam slots `.../weights/Adam`); tensors outside the scopes
        (`global_step`, other networks) are not listed.
    missing: variable names the checkpoint lacks.
    mismatched: (name, checkpoint_shape, variable_shape) of tensors whose
        shape or dtype differs from the variable's.
    """
    unused: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    mismatched: list = dataclasses.field(default_factory=list)

    def lines(self):
        out = [f"unused: {name}" for name in self.unused]
        out += [f"missing: {name}" for name in self.missing]
        out += [f"mismatched: {name} checkpoint {list(c)} variable {list(v)}"
                for name, c, v in self.mismatched]
        return out

    def __str__(self):
        return "\n".join(self.lines()) or "all variables restored, nothing unused"


def _first_line(error):
    text = getattr(error, "message", None) or str(error)
    return (text.strip().splitlines() or [type(error).__name__])[0]


def open_checkpoint(checkpoint_path):
    """A CheckpointReader for a prefix (or a folder with a `checkpoint`
    file); CheckpointError naming the path instead of TF's traceback."""
    path = str(checkpoint_path)
    try:
        return tf.train.load_checkpoint(path)
    except (tf.errors.OpError, ValueError, OSError) as error:
        reason = _first_line(error)
        raise CheckpointError(f"{path}: cannot read the checkpoint ({reason})") from None


def _in_scopes(name, scopes):
    return any(name == s or name.startswith(s + "/") for s in scopes)


def _compare(named_variables, shapes, dtypes):
    """(missing, mismatched) of the variables against the checkpoint."""
    missing, mismatched = [], []
    for name, variable in named_variables.items():
        if name not in shapes:
            missing.append(name)
            continue
        want = tuple(variable.shape.as_list())
        have = tuple(shapes[name])
        if have != want or dtypes[name] != variable.dtype.base_dtype:
            mismatched.append((name, have, want))
    return missing, mismatched


def _raise_first(path, missing, mismatched, dtypes, named_variables):
    more = len(missing) + len(mismatched) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more > 0 else ""
    if missing:
        raise CheckpointError(f"{path}: the checkpoint lacks variable '{missing[0]}'{tail}")
    name, have, want = mismatched[0]
    if have == want:
        expected = named_variables[name].dtype.base_dtype.name
        raise CheckpointError(f"{path}: variable '{name}' is {dtypes[name].name} in the "
                              f"checkpoint, the network expects {expected}{tail}")
    raise CheckpointError(f"{path}: variable '{name}' has shape {list(have)} in the checkpoint, "
                          f"the network expects {list(want)}{tail}")


def restore_variables(named_variables, checkpoint_path, scopes, required=True):
    """Assign checkpoint tensors to variables by their original names.

    named_variables: mapping checkpoint name -> tf.Variable.
    scopes: a scope name or names ("resnet_v1_50"); only tensors under them
        count as unused in the report.
    required: raise CheckpointError for a missing or mis-shaped variable
        (nothing is assigned then); otherwise restore what fits and report
        the rest.
    """
    scopes = (scopes,) if isinstance(scopes, str) else tuple(scopes)
    path = str(checkpoint_path)
    reader = open_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    dtypes = reader.get_variable_to_dtype_map()
    missing, mismatched = _compare(named_variables, shapes, dtypes)
    if required and (missing or mismatched):
        _raise_first(path, missing, mismatched, dtypes, named_variables)
    skip = set(missing) | {name for name, _, _ in mismatched}
    for name, variable in named_variables.items():
        if name not in skip:
            variable.assign(_read(reader, path, name))
    unused = sorted(n for n in shapes if _in_scopes(n, scopes) and n not in named_variables)
    return LoadReport(unused=unused, missing=missing, mismatched=mismatched)


def _read(reader, path, name):
    try:
        return np.asarray(reader.get_tensor(name))
    except (tf.errors.OpError, ValueError) as error:   # a cut-off data file
        reason = _first_line(error)
        raise CheckpointError(f"{path}: cannot read variable '{name}' ({reason})") from None
