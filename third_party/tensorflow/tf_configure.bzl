"""Repository rule that finds the installed TensorFlow (and nvcc) offline.

Runs `$PYTHON_BIN_PATH -c` (default: `python3` on the PATH) against
`tf.sysconfig`, symlinks the include tree and libtensorflow_framework.so.2
into the external repository and writes:

  BUILD      :tf_header_lib (headers + defines from the compile flags),
             :libtensorflow_framework (cc_import), :cuda_headers (the local
             CUDA headers, also mapped as third_party/gpus/cuda/include so
             they win over the CUDA 12.5 copies bundled with the wheel),
             :py_toolchain (py_runtime pointing at the same interpreter, so
             py_test runs with the Python that has TensorFlow).
  defs.bzl   HAS_NVCC, NVCC, CUDA_HOME, PYTHON_BIN_PATH.

Environment: PYTHON_BIN_PATH (pass --repo_env=PYTHON_BIN_PATH=/abs/python or
export it; default: <workspace>/.venv/bin/python if it exists, else python3 on
the PATH), CUDA_HOME (default /usr/local/cuda, else nvcc on the PATH).
"""

load("//ops:build_config.bzl", "TENSORFLOW_REQUIREMENT")

_PY_SCRIPT = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tensorflow as tf
print("VERSION=" + tf.__version__)
print("INCLUDE=" + tf.sysconfig.get_include())
print("LIB=" + tf.sysconfig.get_lib())
print("EXECUTABLE=" + sys.executable)
for flag in tf.sysconfig.get_compile_flags():
    print("CFLAG=" + flag)
for flag in tf.sysconfig.get_link_flags():
    print("LFLAG=" + flag)
"""

def _fail(msg):
    fail("\n[tf_configure] %s\n" % msg)

def _check_version(version):
    """Refuses a TensorFlow other than ops/build_config.bzl's pin
    ("tensorflow==X.Y.*" or "tensorflow==X.Y.Z")."""
    wanted = TENSORFLOW_REQUIREMENT.split("==", 1)[1]
    if wanted.endswith(".*"):
        matches = version.startswith(wanted[:-1])
    else:
        matches = version == wanted
    if not matches:
        _fail("the Python's TensorFlow is %s; ops/build_config.bzl pins %s (set " % (
            version,
            TENSORFLOW_REQUIREMENT,
        ) + "PYTHON_BIN_PATH to a Python with that TensorFlow)")

def _find_python(ctx):
    python = ctx.os.environ.get("PYTHON_BIN_PATH", "").strip()
    if not python:
        # The project's virtual environment, else python3 on the PATH.
        venv = ctx.path(Label("//:WORKSPACE")).dirname.get_child(".venv").get_child("bin").get_child("python")
        python = str(venv) if venv.exists else "python3"
    if not python.startswith("/"):
        found = ctx.which(python)
        if not found:
            _fail("cannot find '%s' on the PATH; set PYTHON_BIN_PATH to the " % python +
                  "Python that has TensorFlow (--repo_env=PYTHON_BIN_PATH=/abs/python)")
        python = str(found)
    return python

def _find_nvcc(ctx):
    cuda_home = ctx.os.environ.get("CUDA_HOME", "").strip() or "/usr/local/cuda"
    candidate = ctx.path(cuda_home + "/bin/nvcc")
    if candidate.exists:
        return cuda_home, str(candidate)
    found = ctx.which("nvcc")
    if found:
        # <cuda_home>/bin/nvcc, possibly through a wrapper script: keep the
        # default CUDA home when the wrapper lives elsewhere.
        parent = found.dirname.dirname
        if ctx.path(str(parent) + "/include/cuda_runtime.h").exists:
            return str(parent), str(found)
        return cuda_home, str(found)
    return None, None

def _tf_configure_impl(ctx):
    python = _find_python(ctx)
    result = ctx.execute([python, "-c", _PY_SCRIPT], timeout = 600, quiet = True)
    if result.return_code != 0:
        _fail("'%s -c import tensorflow' failed (set PYTHON_BIN_PATH to the " % python +
              "Python that has TensorFlow):\n" + result.stderr)

    info = {"CFLAG": [], "LFLAG": []}
    for line in result.stdout.splitlines():
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        if key in ("CFLAG", "LFLAG"):
            info[key].append(value)
        elif key in ("VERSION", "INCLUDE", "LIB", "EXECUTABLE"):
            info[key] = value
    for key in ("VERSION", "INCLUDE", "LIB"):
        if key not in info:
            _fail("unexpected output of %s:\n%s" % (python, result.stdout))
    _check_version(info["VERSION"])

    ctx.symlink(info["INCLUDE"], "include")
    framework = info["LIB"] + "/libtensorflow_framework.so.2"
    if not ctx.path(framework).exists:
        _fail("missing " + framework)
    ctx.symlink(framework, "libtensorflow_framework.so.2")

    # Compile flags as they are (never a hard-coded ABI flag): -D become
    # defines, -I is the include tree linked above, the rest become copts.
    defines = []
    copts = []
    for flag in info["CFLAG"]:
        if flag.startswith("-D"):
            defines.append(flag[2:])
        elif flag.startswith("-I") or flag.startswith("--std=") or flag.startswith("-std="):
            continue  # include dir linked above; the C++ standard is set in .bazelrc
        else:
            copts.append(flag)

    cuda_home, nvcc = _find_nvcc(ctx)
    has_cuda_headers = False
    if cuda_home and ctx.path(cuda_home + "/include/cuda_runtime.h").exists:
        # cuda_map/third_party/gpus/cuda/include -> <cuda_home>/include: put
        # ahead of the wheel's include dir with -I, TensorFlow's own
        # "third_party/gpus/cuda/include/..." includes get the local headers.
        ctx.symlink(cuda_home + "/include", "cuda_map/third_party/gpus/cuda/include")
        has_cuda_headers = True
    cudart = (cuda_home or "/usr/local/cuda") + "/lib64/libcudart_static.a"
    if ctx.path(cudart).exists:
        ctx.symlink(cudart, "cuda_lib/libcudart_static.a")
        cudart_rule = """cc_import(
    name = "cudart_static",
    static_library = "cuda_lib/libcudart_static.a",
)"""
    else:
        cudart_rule = """# No libcudart_static.a was found (CUDA_HOME=%s): --config=cuda cannot link.
cc_library(name = "cudart_static")""" % (cuda_home or "")

    ctx.file("BUILD", """# Generated by //third_party/tensorflow:tf_configure.bzl. TensorFlow {version}
# from {include}
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

cc_library(
    name = "tf_header_lib",
    # external/ (bundled third-party sources, 250 MB) is left out: the ops
    # do not include it, and every header listed here is staged per action.
    hdrs = glob(["include/**"], exclude = ["include/external/**"]),
    includes = ["include"],
    defines = {defines},
    copts = {copts},
)

cc_import(
    name = "libtensorflow_framework",
    shared_library = "libtensorflow_framework.so.2",
)

# Local CUDA headers: -isystem <...>/include and, through copts of the users
# (CUDA_MAP_COPTS in defs.bzl), -I for the third_party/gpus mapping.
cc_library(
    name = "cuda_headers",
    hdrs = glob(["cuda_map/third_party/gpus/cuda/include/**"]),
    includes = ["cuda_map/third_party/gpus/cuda/include"],
)

# The static CUDA runtime. Users list it ahead of :libtensorflow_framework in
# deps (the GPU build of libtensorflow_framework exports some CUDA runtime
# symbols, which must not be taken from there) and link with
# -Wl,--exclude-libs,libcudart_static.a so its symbols stay local.
{cudart_rule}

py_runtime(
    name = "python3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
    # Bazel 4.2's default stub shebang is "#!/usr/bin/env python", which
    # Debian does not have without python-is-python3.
    stub_shebang = "#!{python}",
)

py_runtime_pair(
    name = "python_runtime_pair",
    py3_runtime = ":python3_runtime",
)

toolchain(
    name = "py_toolchain",
    toolchain = ":python_runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(
        version = info["VERSION"],
        include = info["INCLUDE"],
        defines = repr(defines),
        copts = repr(copts),
        python = python,
        cudart_rule = cudart_rule,
    ))

    ctx.file("defs.bzl", """# Generated by //third_party/tensorflow:tf_configure.bzl.
TF_VERSION = "{version}"
TF_INCLUDE = "{include}"
TF_LIB = "{lib}"
PYTHON_BIN_PATH = "{python}"
HAS_NVCC = {has_nvcc}
NVCC = "{nvcc}"
CUDA_HOME = "{cuda_home}"
CUDA_LIB = "{cuda_lib}"
# Add to copts of GPU host code (with a dep on @local_config_tf//:cuda_headers).
CUDA_MAP_COPTS = ["-Iexternal/local_config_tf/cuda_map"]
""".format(
        version = info["VERSION"],
        include = info["INCLUDE"],
        lib = info["LIB"],
        python = python,
        has_nvcc = repr(bool(nvcc) and has_cuda_headers),
        nvcc = nvcc or "",
        cuda_home = cuda_home or "",
        cuda_lib = (cuda_home + "/lib64") if cuda_home else "",
    ))

tf_configure = repository_rule(
    implementation = _tf_configure_impl,
    environ = ["PYTHON_BIN_PATH", "CUDA_HOME"],
    local = True,
)
