"""Reads ops/build_config.bzl, the one build configuration, for setup.py, the
Makefile and ops/check_build_flags.py (Bazel loads the .bzl itself).

    python3 ops/build_config.py host_flags|nvcc_flags|cuda_archs|tensorflow_requirement

prints the value, space-separated, for the Makefile. Standard library only:
it runs before any virtual environment exists.
"""
import os
import sys

CONFIG_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build_config.bzl")


def load():
    """The configuration's names and values (the .bzl is plain assignments,
    valid Python as well as Starlark)."""
    values = {}
    with open(CONFIG_FILE) as stream:
        exec(compile(stream.read(), CONFIG_FILE, "exec"), {}, values)  # noqa: S102
    return values


def gencode_flags(archs=None):
    """nvcc's -gencode flags for the configured architectures (real code for
    each, so no JIT compilation at start-up)."""
    archs = load()["CUDA_ARCHS"] if archs is None else archs
    return [f"-gencode=arch=compute_{a},code=sm_{a}" for a in archs]


def host_flags():
    config = load()
    return config["HOST_FLAGS"] + config["HOST_WARNING_FLAGS"]


def nvcc_flags():
    return load()["NVCC_FLAGS"] + gencode_flags()


def tensorflow_requirement():
    return load()["TENSORFLOW_REQUIREMENT"]


_PRINTABLE = {
    "host_flags": host_flags,
    "nvcc_flags": nvcc_flags,
    "cuda_archs": lambda: load()["CUDA_ARCHS"],
    "tensorflow_requirement": lambda: [tensorflow_requirement()],
}


def main(argv):
    if len(argv) != 2 or argv[1] not in _PRINTABLE:
        sys.stderr.write(f"usage: {argv[0]} {'|'.join(_PRINTABLE)}\n")
        return 2
    print(" ".join(_PRINTABLE[argv[1]]()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
